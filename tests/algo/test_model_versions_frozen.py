"""A packaged model version never changes once released: results are stored under the version's
name (``algo_version = "sunalgo-1.0+<model>"``, the results path and the gold layer's partition),
and a night already scored under it is not scored again. A change of behaviour is a new version
(issue 24 review: logistic-3's respiratory rules were once changed in place).

The digests cover what decides the outputs: the ``sleep_wake``, ``stages`` and ``respiratory``
sections, canonical JSON. A description may be corrected; these may not. A new version adds its
line here.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from sunrise_algo.builtin.model import MODEL_VERSIONS, load_model

FROZEN = {
    "baseline-1": "65c0bab92c4f662f15dede86f43dd6fa103d665c47408dfbd0a8ab8aa0db8a06",
    "baseline-2": "01138b5ac31a8e4efe11c1a8674d9b935002de3a9fa0e22f51f0971835ca291d",
    "baseline-3": "fd03909c970bfaed5d0e560d910f4fec31c41262ffbf5b1486bfa9a6ec17e4d1",
    "baseline-4": "0f1fe6a26bccd1fc194352294e666eb517b4463df666138cfde0c2b2a26dff8f",
    "logistic-1": "167bf09c2b456f45973780b2c6156bf8cc72f533ceabc21d071b9104eab3c577",
    "logistic-2": "a462f41eee4515d81e944042285da8e0c4b539cc86467e947f6c324134bb7e5b",
    "logistic-3": "c12ff5cb25a68a8d42d982c1ff7947f87db52d2e91c872e935d27f0138a054ef",
    "logistic-4": "af5c4fa46b4bd870f247fa50201f9532c8b9002ff6872f8d353ceab82a9e65b3",
}


def behaviour_digest(version: str) -> str:
    spec = load_model(version).spec
    behaviour = {k: spec.get(k) for k in ("sleep_wake", "stages", "respiratory")}
    return hashlib.sha256(json.dumps(behaviour, sort_keys=True).encode()).hexdigest()


def test_every_packaged_version_has_a_frozen_digest():
    assert set(MODEL_VERSIONS) == set(FROZEN)


@pytest.mark.parametrize("version", sorted(FROZEN))
def test_a_released_version_decides_as_it_did_when_released(version):
    assert behaviour_digest(version) == FROZEN[version], (
        f"{version} changed its sleep_wake/stages/respiratory sections: release a new version instead")
