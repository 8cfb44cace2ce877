"""Builders of small EDF files, valid and malformed, for the EDF layer and for ingest's tests.

``build_edf`` writes a valid EDF/EDF+/BDF byte string from scratch (no third-party writer, so the
bytes are exactly what the test says). ``MALFORMED`` lists ``(name, bytes, expected_reason)``:
every entry must be rejected by ``anonymise_edf`` (and ingest) with ``EdfError.reason ==
expected_reason``. Entries whose defect sits in the data records (bad TALs) are only found by
the anonymiser, not by ``parse_header``: see ``HEADER_ONLY_VALID``.
"""

from __future__ import annotations

import numpy as np

from sunrise_common.edf.header import FIXED_FIELDS, signal_field_offset

PATIENT = "MCH-0234567 F 02-MAY-1951 Haagse_Harry"
RECORDING = "Startdate 24-MAR-2021 PSG-4711 Dr._Jane_Doe Somno_SN-998877"


def _pad(value: object, width: int) -> bytes:
    raw = value if isinstance(value, bytes) else str(value).encode("latin-1")
    return raw.ljust(width, b" ")[:width]


def tal(onset: str, texts: list[str], duration: str | None = None) -> bytes:
    """Encode one TAL (texts as UTF-8)."""
    head = onset.encode() + (b"\x15" + duration.encode() if duration is not None else b"")
    return head + b"\x14" + b"".join(t.encode("utf-8") + b"\x14" for t in texts) + b"\x00"


def build_edf(
    *,
    n_records: int = 4,
    record_duration: float | str = 1,
    labels: tuple[str, ...] = ("EEG C3-M2", "Resp nasal"),
    samples_per_record: tuple[int, ...] = (8, 4),
    fmt: str = "EDF",
    plus: str | None = "C",
    annotation_bytes: int = 120,
    annotations: dict[int, list[bytes]] | None = None,
    onsets: list[float] | None = None,
    patient: str | bytes = PATIENT,
    recording: str | bytes = RECORDING,
    startdate: str = "24.03.21",
    starttime: str = "22.41.07",
    transducer: str = "AgAgCl electrode",
    seed: int = 0,
) -> bytes:
    """A valid EDF(+)/BDF(+) file.

    Parameters
    ----------
    n_records : int
        Data records.
    labels, samples_per_record : tuple
        Ordinary signals and their samples per record.
    plus : {None, "C", "D"}
        EDF+ continuity; with a value, an annotation signal of ``annotation_bytes`` bytes is
        appended, holding a time-keeping TAL per record (onset ``onsets[r]``, default
        ``r * record_duration``) followed by ``annotations[r]`` (encoded TALs).
    seed : int
        Seed of the random digital samples.
    """
    sample_bytes = 2 if fmt == "EDF" else 3
    sig_labels = list(labels)
    sprs = list(samples_per_record)
    if plus is not None:
        sig_labels.append(f"{fmt} Annotations")
        sprs.append(annotation_bytes // sample_bytes)
    ns = len(sig_labels)
    dmin, dmax = (-32768, 32767) if fmt == "EDF" else (-8388608, 8388607)
    version = b"0       " if fmt == "EDF" else b"\xffBIOSEMI"
    header = (
        version
        + _pad(patient, 80)
        + _pad(recording, 80)
        + _pad(startdate, 8)
        + _pad(starttime, 8)
        + _pad(256 * (ns + 1), 8)
        + _pad(f"{fmt}+{plus}" if plus else "", 44)
        + _pad(n_records, 8)
        + _pad(record_duration, 8)
        + _pad(ns, 4)
    )
    columns = [
        (sig_labels, 16),
        ([transducer] * len(labels) + [""] * (ns - len(labels)), 80),
        (["uV"] * len(labels) + [""] * (ns - len(labels)), 8),
        (["-500"] * ns, 8),
        (["500"] * ns, 8),
        ([dmin] * ns, 8),
        ([dmax] * ns, 8),
        (["HP:0.3Hz LP:35Hz"] * len(labels) + [""] * (ns - len(labels)), 80),
        (sprs, 8),
        ([""] * ns, 32),
    ]
    for values, width in columns:
        header += b"".join(_pad(v, width) for v in values)

    rng = np.random.default_rng(seed)
    duration = float(record_duration)
    records = []
    for r in range(n_records):
        parts = []
        for spr in samples_per_record:
            digital = rng.integers(dmin, dmax, size=spr, endpoint=True, dtype=np.int32)
            parts.append(digital.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :sample_bytes].tobytes())
        if plus is not None:
            onset = onsets[r] if onsets is not None else r * duration
            ann = tal(f"+{onset:g}", [""]) + b"".join((annotations or {}).get(r, []))
            if len(ann) > sprs[-1] * sample_bytes:
                raise ValueError(f"record {r}: {len(ann)} annotation bytes exceed {sprs[-1] * sample_bytes}")
            parts.append(ann.ljust(sprs[-1] * sample_bytes, b"\x00"))
        records.append(b"".join(parts))
    return header + b"".join(records)


def set_field(data: bytes, name: str, value: bytes | str) -> bytes:
    """Overwrite a fixed-header field (space-padded)."""
    offset, width = FIXED_FIELDS[name]
    return (
        data[:offset]
        + _pad(value if isinstance(value, bytes) else value.encode("latin-1"), width)
        + data[offset + width :]
    )


def set_signal_field(data: bytes, name: str, index: int, value: bytes | str, ns: int) -> bytes:
    """Overwrite one signal's header field (space-padded)."""
    offset, width = signal_field_offset(name, index, ns)
    return (
        data[:offset]
        + _pad(value if isinstance(value, bytes) else value.encode("latin-1"), width)
        + data[offset + width :]
    )


def _malformed() -> list[tuple[str, bytes, str]]:
    valid = build_edf()
    ns = 3  # two ordinary signals + annotations
    plain = build_edf(plus=None)
    rng = np.random.default_rng(1)
    out = [
        ("zero_bytes", b"", "empty_file"),
        ("random_100_bytes", b"\x01" + rng.bytes(99), "not_edf"),
        ("text_file", b"subject,night,ahi\nS01,1,12.5\n" * 40, "not_edf"),
        ("png_header", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(600), "not_edf"),
        ("version_one", set_field(valid, "version", "1"), "not_edf"),
        ("truncated_fixed_header", valid[:200], "truncated"),
        ("truncated_signal_header", valid[: 256 + 300], "truncated"),
        ("truncated_data_record", valid[:-10], "truncated"),
        ("extra_trailing_bytes", valid + b"\x00" * 7, "size_mismatch"),
        ("header_bytes_field_lies", set_field(valid, "header_bytes", "512"), "bad_header_field"),
        ("ns_negative", set_field(valid, "ns", "-3"), "absurd_value"),
        ("ns_zero", set_field(valid, "ns", "0"), "absurd_value"),
        ("ns_9999", set_field(valid, "ns", "9999"), "absurd_value"),
        ("ns_beyond_file", set_field(valid, "ns", "200"), "truncated"),
        ("ns_not_a_number", set_field(valid, "ns", "3a"), "bad_header_field"),
        ("samples_per_record_negative", set_signal_field(valid, "samples_per_record", 0, "-8", ns), "absurd_value"),
        ("samples_per_record_huge", set_signal_field(valid, "samples_per_record", 1, "99999999", ns), "absurd_value"),
        ("samples_per_record_blank", set_signal_field(valid, "samples_per_record", 1, "", ns), "bad_header_field"),
        ("n_records_huge", set_field(valid, "n_records", "99999999"), "absurd_value"),  # 12 GB of annotations
        # 2**31 does not fit the 8-byte field; 2**24 records of this layout claim ~1.5 GiB.
        ("n_records_claims_gigabytes", set_field(valid, "n_records", str(2**24)), "absurd_value"),
        ("n_records_not_a_number", set_field(valid, "n_records", "four"), "bad_header_field"),
        ("n_records_minus_two", set_field(valid, "n_records", "-2"), "absurd_value"),
        ("n_records_unknown_ragged", set_field(valid, "n_records", "-1") + b"\x00" * 5, "truncated"),
        ("digital_min_equals_max", set_signal_field(valid, "digital_min", 0, "32767", ns), "absurd_value"),
        (
            "digital_min_above_max",
            set_signal_field(set_signal_field(valid, "digital_min", 1, "40", ns), "digital_max", 1, "-40", ns),
            "absurd_value",
        ),
        ("digital_max_beyond_int16", set_signal_field(valid, "digital_max", 0, "40000", ns), "absurd_value"),
        ("physical_min_equals_max", set_signal_field(valid, "physical_min", 1, "500", ns), "absurd_value"),
        ("record_duration_negative", set_field(valid, "record_duration", "-1"), "absurd_value"),
        ("record_duration_zero_with_signals", set_field(valid, "record_duration", "0"), "absurd_value"),
        ("record_duration_inf", set_field(valid, "record_duration", "inf"), "bad_header_field"),
        ("nan_physical_min", set_signal_field(valid, "physical_min", 0, "nan", ns), "bad_header_field"),
        ("comma_decimal_physical_max", set_signal_field(valid, "physical_max", 0, "500,5", ns), "bad_header_field"),
        (
            "non_ascii_in_numeric_field",
            set_signal_field(valid, "samples_per_record", 0, b"8\xe9", ns),
            "bad_header_field",
        ),
        ("bdf_magic_with_edf_layout", b"\xffBIOSEMI" + plain[8:], "truncated"),
        ("edf_plus_d_without_annotations", set_field(plain, "reserved", "EDF+D"), "bad_header_field"),
        ("tal_without_sign", build_edf(annotations={1: [b"12\x14Lights off\x14\x00"]}), "bad_annotations"),
        ("tal_unterminated_text", build_edf(annotations={2: [b"+2\x14Lights off"]}), "bad_annotations"),
        ("tal_garbage_after_padding", _garbage_after_padding(valid), "bad_annotations"),
        ("tal_bad_duration", build_edf(annotations={0: [b"+0.5\x15-3\x14Hypopnea\x14\x00"]}), "bad_annotations"),
    ]
    return out


def _garbage_after_padding(valid: bytes) -> bytes:
    # Last byte of the annotation signal of the last record: a stray "Z" after the \x00 padding.
    return valid[:-1] + b"Z"


#: (name, file bytes, expected EdfError.reason) for every malformed input.
MALFORMED: list[tuple[str, bytes, str]] = _malformed()

#: Entries whose header is valid: the defect is in the data records (found by the anonymiser).
HEADER_ONLY_VALID = frozenset(name for name, _, reason in MALFORMED if reason == "bad_annotations")
