"""psg_prep service: ``POST /`` takes ``psg-anonymised`` messagePublished events."""

from sunrise_common.service import create_app

from psg_prep.alloc import tune_malloc
from psg_prep.handler import handle

# Process-wide glibc malloc settings belong to the process, not to prepare_psg (see alloc.py).
tune_malloc()

app = create_app("psg_prep", handle)
