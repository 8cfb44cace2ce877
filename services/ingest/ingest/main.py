"""ingest service: ``POST /`` takes ``google.cloud.storage.object.v1.finalized`` events."""

from sunrise_common.service import create_app

from ingest.handler import handle

app = create_app("ingest", handle)
