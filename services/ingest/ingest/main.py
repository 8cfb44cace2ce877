"""ingest service: ``POST /`` takes ``google.cloud.storage.object.v1.finalized`` events."""

from sunrise_common.service import create_app

from ingest.handler import handle

# The pseudonym key is read at boot: a deploy without it fails to start instead of failing every event.
app = create_app("ingest", handle, startup_check=lambda settings: settings.key_bytes())
