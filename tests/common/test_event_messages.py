"""A malformed CloudEvent gets a 400 that names the missing header or attribute."""

from __future__ import annotations

import json

import pytest

from sunrise_common.errors import BadEvent
from sunrise_common.events import parse_event
from sunrise_common.names import STORAGE_FINALIZED

BODY = json.dumps({"bucket": "b", "name": "psg/s/p/f.edf", "generation": "1"}).encode()
BINARY = {"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "1",
          "ce-source": "//storage.googleapis.com/projects/_/buckets/b", "ce-type": STORAGE_FINALIZED}


@pytest.mark.parametrize("header", ["ce-id", "ce-source", "ce-type"])
def test_a_binary_event_without_a_required_header_names_that_header(header):
    headers = {k: v for k, v in BINARY.items() if k != header}
    with pytest.raises(BadEvent) as info:
        parse_event(headers, BODY)
    assert info.value.detail.startswith(f"missing header {header}: binary mode needs")
    assert "specversion" not in info.value.detail.split(":")[0]


def test_a_structured_event_without_an_id_names_the_attribute_and_the_required_ones():
    body = json.dumps({"specversion": "1.0", "type": STORAGE_FINALIZED, "source": "s", "data": {}}).encode()
    with pytest.raises(BadEvent) as info:
        parse_event({"Content-Type": "application/cloudevents+json"}, body)
    assert "'id'" in info.value.detail and "needs the attributes specversion, id, source and type" in info.value.detail
