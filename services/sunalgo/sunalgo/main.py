"""sunalgo service: ``POST /`` takes ``sunrise-prepped`` and ``psg-prepped`` events."""

from sunrise_common.service import create_app

from sunalgo.handler import handle

app = create_app("sunalgo", handle)
