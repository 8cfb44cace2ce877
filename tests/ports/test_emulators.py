"""The emulators harness itself: clear errors when something is missing, a reset that empties."""

from __future__ import annotations

import httpx
import pytest

from sunrise_devstack.emulators import EmulatorsMissing, find_sdk_root
from sunrise_common.state.firestore import FirestoreState
from sunrise_common.storage.gcs import GcsStorage


def test_missing_gcloud_emulators_are_reported_with_the_install_command(tmp_path):
    with pytest.raises(EmulatorsMissing, match="gcloud components install pubsub-emulator"):
        find_sdk_root(tmp_path)


@pytest.mark.emulators
def test_reset_empties_documents_objects_and_subscriptions(emulators):
    from sunrise_devstack.router.subscriptions import subscriptions_for

    state = FirestoreState.for_emulator(emulators.firestore_emulator_host, emulators.project)
    storage = GcsStorage.for_emulator(emulators.gcs_endpoint, emulators.project)
    bucket = f"{emulators.prefix}-raw"
    state.set("nights", "n1", {"v": 1})
    storage.write_bytes(bucket, "a/b", b"x")
    subs_url = f"http://{emulators.pubsub_emulator_host}/v1/projects/{emulators.project}/subscriptions"
    topic = f"projects/{emulators.project}/topics/{emulators.notifications_topic}"
    httpx.put(f"{subs_url}/leftover-sub", json={"topic": topic}).raise_for_status()

    emulators.reset()

    assert state.get("nights", "n1") is None
    assert list(storage.list(bucket)) == []
    assert storage.stat(bucket, "a/b") is None
    left = sorted(s["name"].rsplit("/", 1)[1] for s in httpx.get(subs_url).json().get("subscriptions", []))
    # Only the trigger subscriptions, created again, empty: nothing else survives.
    assert left == sorted(s.name for s in subscriptions_for(emulators.settings()))
    pulled = httpx.post(f"{subs_url}/{left[0]}:pull", json={"maxMessages": 10, "returnImmediately": True})
    assert pulled.json().get("receivedMessages", []) == []
