"""The version calls an erasure uses (``sunrise forget``), on fake-gcs-server: every stored
version is listed with its generation, and one generation is deleted without touching another
object. (fake-gcs-server ignores the generation of a delete, so "another generation of the same
object is kept" cannot be shown here; Cloud Storage deletes exactly the generation named.)"""

from __future__ import annotations

import pytest

from sunrise_common.storage.gcs import GcsStorage
from tests.ports.conftest import PREFIX, PROJECT

pytestmark = pytest.mark.emulators


def test_list_versions_names_every_object_with_its_generation_and_delete_version_removes_one(emulators):
    store = GcsStorage.for_emulator(emulators.gcs_endpoint, PROJECT)
    bucket = f"{PREFIX}-raw"
    store.ensure_bucket(bucket)
    a = store.write_bytes(bucket, "psg/lab/P1/a.edf", b"a")
    b = store.write_bytes(bucket, "psg/lab/P2/b.edf", b"b")
    listed = {(o.name, o.generation) for o in store.list_versions(bucket, "psg/lab/")}
    assert listed == {(a.name, a.generation), (b.name, b.generation)}
    assert [o.name for o in store.list_versions(bucket, "psg/lab/P1/")] == [a.name]
    store.delete_version(bucket, a.name, a.generation)
    assert store.stat(bucket, a.name) is None and store.stat(bucket, b.name) is not None
    assert [o.name for o in store.list_versions(bucket, "")] == [b.name]
