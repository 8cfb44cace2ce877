"""The one error raised by label detection, parsing and anonymisation."""

from __future__ import annotations

from sunrise_common.errors import PermanentError


class LabelError(PermanentError, ValueError):
    """A label file that cannot be used: a permanent failure (bad input, do not retry).

    Parameters
    ----------
    reason : str
        Short stable code recorded in state, e.g. ``unknown_label_format``, ``unsafe_xml``,
        ``bad_start_time``, ``empty_label_file``.
    detail : str
        Human-readable explanation that names the offending value.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail
