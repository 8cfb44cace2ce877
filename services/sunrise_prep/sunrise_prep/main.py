"""sunrise_prep service: ``POST /`` takes ``sunrise-anonymised`` messagePublished events."""

from sunrise_common.service import create_app

from sunrise_prep.handler import handle

app = create_app("sunrise_prep", handle)
