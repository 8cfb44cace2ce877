"""An event export that lists no event is a night without scored events, recorded as such on the labels
(a warning), not a rejection; a file with rows none of which reads is still refused (no_labels)."""

from __future__ import annotations

import pytest

from sunrise_common.labels import registry
from sunrise_common.labels.errors import LabelError

HEADER = (b"Signal ID: FlowD\\flow\r\nStart Time: 23.09.2020 01:00:00\r\nUnit: s\r\n"
          b"Signal Type: Impuls\r\n\r\n")


def test_a_flow_events_export_without_rows_is_an_event_free_night_with_a_warning():
    fmt = registry.detect(HEADER, "Flow Events - night.txt")
    labels = fmt.parse(HEADER)
    assert labels.events == [] and labels.hypnogram is None and labels.empty_export
    assert any("lists no event" in w for w in labels.warnings)


def test_a_flow_events_export_whose_rows_do_not_read_is_still_refused():
    fmt = registry.detect(HEADER, "Flow Events - night.txt")
    with pytest.raises(LabelError) as info:
        fmt.parse(HEADER + b"garbage without a time\r\nmore garbage\r\n")
    assert info.value.reason == "no_labels"
