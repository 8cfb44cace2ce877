"""psg_prep's permanent failures (bad input: record the reason, acknowledge, do not retry)."""

from __future__ import annotations

from sunrise_common.errors import PermanentError


class PrepError(PermanentError):
    """A PSG or label file that cannot be prepared.

    ``reason`` is a stable code: the EDF layer's (``truncated``, ``not_edf`` ...), the label
    layer's (``unknown_label_format``, ``bad_start_time`` ...) or psg_prep's own
    (``empty_recording``, ``no_signals``, ``absurd_gap``, and ``internal_length_mismatch``: a
    channel's output length differs from ``output_lengths``' prediction, a bug to fix, not to retry).
    """
