"""sunalgo service: ``POST /`` takes ``sunrise-prepped`` and ``psg-prepped`` events."""

from sunrise_algo.settings import get_algorithm_settings
from sunrise_common.service import create_app

from sunalgo.handler import handle

app = create_app("sunalgo", handle, default_settings=get_algorithm_settings)
