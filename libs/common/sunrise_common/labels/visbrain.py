"""Visbrain / ELAN hypnograms: the ELAN ``.hyp`` file and Visbrain's stage-duration text.

ELAN ``.hyp``: four header lines ``time_base <s per value>``, ``sampling_period <raw-signal
period>``, ``epoch_nb <n values>``, ``epoch_list``, then one integer per line. Visbrain writes one
value per second (``time_base 1``): ``30 / time_base`` values make one 30-s epoch (the value at
the epoch's start is taken; an epoch whose values disagree is reported). Codes (ELAN): 0 W, 1 N1,
2 N2, 3 N3, 4 N4 (-> N3), 5 REM (not YASA's 4), -1 and -2 artefact/unscored (UNS, code kept)
[U: which of -1/-2 ELAN means unscored]. ``sampling_period`` is not used.

Stage-duration text (Visbrain's default since 0.4): no header, tab-separated ``Stage\\tEnd``
where ``End`` is the END of the run in seconds (cumulative; the last equals the recording
length); ``*`` lines are metadata (``*Duration_sec``). Labels ``Wake``, ``N1``-``N3``
(``N4`` -> N3), ``REM``, ``Art`` (UNS), ``Movement``/``Mt`` (UNS).

Neither carries a clock time: epoch 0 is the PSG start.

Sources: reference/label-formats.md §12 (visbrain ``rw_hypno.py``, docs).
"""

from __future__ import annotations

import re
from datetime import datetime

from .canonical import UNSCORED, LabelSet, map_stage
from .common import decode, encode, expand_spans, newline_of, number, per_epoch
from .errors import LabelError
from .registry import Format

TITLE_HYP = "ELAN .hyp hypnogram"
TITLE_SD = "Visbrain stage-duration hypnogram"
ELAN = {"0": "W", "1": "N1", "2": "N2", "3": "N3", "4": "N3", "5": "REM", "-1": UNSCORED, "-2": UNSCORED}
_HEAD = ("time_base", "sampling_period", "epoch_nb", "epoch_list")


def _hyp(data: bytes) -> tuple[float, list[tuple[int, str]], str, str, bytes, list[str]]:
    text, codec, bom = decode(data)
    lines = text.splitlines()
    if len(lines) < 4 or [ln.split()[0].lower() if ln.split() else "" for ln in lines[:4]] != list(_HEAD):
        raise LabelError("bad_table", f"{TITLE_HYP}: the first four lines are not time_base, sampling_period, epoch_nb, epoch_list")
    parts = lines[0].split()
    if len(parts) < 2:
        raise LabelError("bad_table", f"{TITLE_HYP}: line 1 has no time_base value")
    base = number(parts[1], "time_base", f"{TITLE_HYP}: line 1")
    if not 0.001 <= base <= 120:
        raise LabelError("absurd_value", f"{TITLE_HYP}: time_base {base:g} s outside 0.001..120")
    values = []
    for n, ln in enumerate(lines[4:], 5):
        s = ln.strip()
        if not s:
            continue
        if not re.fullmatch(r"-?\d+(?:\.0+)?", s):
            raise LabelError("bad_row", f"{TITLE_HYP}: line {n} is not an integer code")
        values.append((n, str(int(float(s)))))
    return base, values, codec, text, bom, lines


def parse_hyp(data: bytes) -> LabelSet:
    base, values, _, _, _, _ = _hyp(data)
    per = 30.0 / base
    if abs(per - round(per)) > 1e-6 or round(per) < 1:
        raise LabelError("absurd_value", f"{TITLE_HYP}: time_base {base:g} s does not divide a 30-s epoch")
    k = int(round(per))
    warnings = ["ELAN .hyp has no clock time: epoch 0 is the PSG start"]
    codes = []
    mixed = unknown = 0
    for i in range(0, len(values), k):
        chunk = [v for _, v in values[i : i + k]]
        if len(set(chunk)) > 1:
            mixed += 1
        stage = ELAN.get(chunk[0])
        if stage is None:
            unknown += 1
            stage = UNSCORED
        codes.append((stage, chunk[0]))
    if len(values) % k:
        warnings.append(f"{len(values) % k} trailing value(s) make a partial last epoch")
    if mixed:
        warnings.append(f"{mixed} epoch(s) whose values change within the epoch: the first value kept")
    if unknown:
        warnings.append(f"{unknown} epoch(s) with a code outside -2..5: {UNSCORED}")
    return LabelSet(start=None, hypnogram=per_epoch(codes, 30.0) if codes else None, events=[],
                    source_kind="elan_hyp", warnings=warnings)


def anonymise_hyp(data: bytes) -> tuple[bytes, datetime | None]:
    """Numbers only: the four header lines rewritten from their values, then the codes."""
    base, values, codec, text, bom, lines = _hyp(data)
    nl = newline_of(text)
    sp = lines[1].split()
    period = number(sp[1], "sampling_period", f"{TITLE_HYP}: line 2") if len(sp) > 1 else 0.0
    out = [f"time_base {base:f}", f"sampling_period {period:g}", f"epoch_nb {len(values)}", "epoch_list"]
    out += [v for _, v in values]
    return encode(nl.join(out) + nl, codec, bom), None


def _sd_rows(text: str) -> tuple[list[tuple[int, str, float]], list[tuple[str, float]]]:
    rows, meta = [], []
    for n, ln in enumerate(text.splitlines(), 1):
        s = ln.strip()
        if not s:
            continue
        cells = s.split("\t") if "\t" in s else s.split()
        if s.startswith("*"):
            if len(cells) == 2 and re.fullmatch(r"\*[A-Za-z_]{1,40}", cells[0].strip()):
                try:
                    meta.append((cells[0].strip(), number(cells[1], "metadata", f"line {n}")))
                except LabelError:
                    pass
            continue
        if len(cells) != 2:
            raise LabelError("bad_row", f"{TITLE_SD}: line {n} has {len(cells)} fields, expected stage and end time")
        rows.append((n, cells[0].strip(), number(cells[1], "end time", f"{TITLE_SD}: line {n}")))
    return rows, meta


def _sd_stage(label: str) -> tuple[str, bool]:
    return map_stage(label)


def parse_sd(data: bytes) -> LabelSet:
    text, _, _ = decode(data)
    rows, _ = _sd_rows(text)
    warnings = ["stage-duration hypnogram has no clock time: epoch 0 is the PSG start"]
    spans = []
    prev = 0.0
    unknown = 0
    for n, label, end in rows:
        if end < prev:
            raise LabelError("bad_row", f"{TITLE_SD}: line {n}: end time goes backwards")
        stage, known = _sd_stage(label)
        if not known:
            unknown += 1
        spans.append((prev, end - prev, stage, label))
        prev = end
    if unknown:
        warnings.append(f"{unknown} run(s) with an unknown stage label: {UNSCORED}")
    hyp = expand_spans(spans, 30.0, warnings, origin=0.0) if spans else None
    return LabelSet(start=None, hypnogram=hyp, events=[], source_kind="visbrain_stage_duration", warnings=warnings)


def anonymise_sd(data: bytes) -> tuple[bytes, datetime | None]:
    """Labels (stage vocabulary only, others -> ``Art``) and end times; numeric ``*`` metadata kept."""
    text, codec, bom = decode(data)
    nl = newline_of(text)
    rows, meta = _sd_rows(text)
    out = [f"{k}\t{v:g}" for k, v in meta]
    out += [f"{label if _sd_stage(label)[1] else 'Art'}\t{end:g}" for _, label, end in rows]
    return encode(nl.join(out) + nl, codec, bom), None


def sniff_hyp(head: bytes, name: str) -> int:
    return 2 if decode(head)[0].lstrip().lower().startswith("time_base") else 0


def sniff_sd(head: bytes, name: str) -> int:
    lines = [ln for ln in decode(head)[0].splitlines()[:-1] if ln.strip() and not ln.startswith("*")]
    if not lines:
        return 0
    for ln in lines[:200]:
        cells = ln.split("\t")
        if len(cells) != 2 or not map_stage(cells[0])[1] or not re.fullmatch(r"\s*\d+(?:[.,]\d+)?\s*", cells[1]):
            return 0
    return 2


FORMATS = (
    Format(
        kind="elan_hyp",
        title=TITLE_HYP,
        producer="Visbrain / ELAN",
        extensions=(".hyp",),
        out_extension="hyp",
        sniff=sniff_hyp,
        parse_fn=parse_hyp,
        anonymise_fn=anonymise_hyp,
        reads="one ELAN code per time_base seconds, collapsed to 30-s epochs",
        anonymised="rewritten as numbers only",
        assumptions="no clock time: epoch 0 = PSG start; -1 and -2 both UNS (code kept); REM = 5",
    ),
    Format(
        kind="visbrain_stage_duration",
        title=TITLE_SD,
        producer="Visbrain (Sleep GUI, default hypnogram export since 0.4)",
        extensions=(".txt", ".csv"),
        out_extension="txt",
        sniff=sniff_sd,
        parse_fn=parse_sd,
        anonymise_fn=anonymise_sd,
        reads="runs as (stage, END time in s), * metadata",
        anonymised="rewritten: stage labels and end times, numeric metadata",
        assumptions="no clock time: epoch 0 = PSG start; the first run starts at 0",
    ),
)
