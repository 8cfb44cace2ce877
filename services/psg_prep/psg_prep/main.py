"""psg_prep service: ``POST /`` takes ``psg-anonymised`` messagePublished events."""

from sunrise_common.service import create_app

from psg_prep.handler import handle

app = create_app("psg_prep", handle)
