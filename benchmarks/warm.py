"""Per-night cost in a warm process: imports done, one night already served (issue 25).

A service is a long-lived process: it pays its imports once per instance (at cold start, see
``benchmarks/coldstart.py``), not per night. So each variant here imports what it needs,
processes the night once untimed (the "night served before": caches, allocator arenas, BLAS
and thread pools all warm), then processes it ``repeats`` more times, each timed for wall and
the process's CPU seconds (all threads, ``getrusage``). Usage::

    uv run python -m benchmarks.warm VARIANT SRC [REPEATS]

prints one JSON line per timed night and a last line with the medians. Variants on the PSG:
``psg_prep`` (``prepare_psg``, as the service calls it), ``competent`` (edfio + ``resample_poly``
+ ``sosfiltfilt``), ``mne_polyphase``, ``mne_naive`` (``benchmarks.psg_prep_bench.run_baseline``),
``io_floor`` (read and convert every sample, numpy only) and ``ingest`` (the ingest service's
anonymisation and SHA-256 of its output); on the Sunrise EDF: ``sunrise_prep`` and ``sunalgo``
(on the output of one untimed ``sunrise_prep``).

Memory per request as Cloud Run counts it (``/tmp`` is memory there): the process's peak RSS plus
the largest number of bytes a night kept in its scratch folder, which for the stages that stage
their input (``STAGED_INPUT``: the handler downloads the object to ``/tmp`` before working; ingest
and psg_prep stream theirs, issue 26) counts the input file too (``tmp_mb``; ``request_mb`` = ``peak_rss_mb`` + ``tmp_mb``).
"""

from __future__ import annotations

import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _psg_prep() -> Callable[[Path, Path], object]:
    """psg_prep's work as it runs since issue 26: the PSG read as a seekable stream (what the
    embedded backend's ``open_read`` hands the handler: the object's open file; on Cloud Storage,
    range reads), the outputs written into the prepped bucket as they are produced
    (``BucketOutputs``: signals.npz in parts composed at the end), nothing in /tmp. The bucket is a
    folder outside the request's scratch folder, emptied after each night."""
    from psg_prep.outputs import BucketOutputs
    from psg_prep.prepare import prepare_psg
    from sunrise_common.storage.local import LocalStorage

    root = Path(tempfile.mkdtemp(prefix="warm-psg-prep-bucket-"))

    def work(src: Path, out: Path) -> None:
        storage = LocalStorage(root)
        storage.ensure_bucket("prepped")
        with open(src, "rb") as f:
            prepare_psg(f, [], BucketOutputs(storage, "prepped", "nights/n/psg/k/"))
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()

    return work


def _competent() -> Callable[[Path, Path], object]:
    from benchmarks import psg_baselines

    import edfio  # noqa: F401  imported before timing, as a warm script has
    import scipy.signal  # noqa: F401

    return psg_baselines.competent


def _mne_polyphase() -> Callable[[Path, Path], object]:
    import mne  # noqa: F401

    from benchmarks import psg_baselines

    return psg_baselines.mne_polyphase


def _mne_naive() -> Callable[[Path, Path], object]:
    import mne  # noqa: F401

    from benchmarks.psg_prep_bench import run_baseline

    return lambda src, out: run_baseline(src)


def _io_floor() -> Callable[[Path, Path], object]:
    from benchmarks import psg_baselines

    return psg_baselines.io_floor


def _ingest() -> Callable[[Path, Path], object]:
    """ingest's work as it runs since issue 26: the raw object streamed through the anonymiser into
    its bucket, SHA-256 on the way (``ingest.handler._write``'s path for a stream), nothing in /tmp.
    The "bucket" is a folder outside the request's scratch folder, emptied after each night."""
    import hashlib
    import shutil

    from sunrise_common.edf import anonymise_edf

    bucket = Path(tempfile.mkdtemp(prefix="warm-ingest-bucket-"))

    class Hashing:
        def __init__(self, inner) -> None:  # noqa: ANN001 - a binary file
            self.inner, self.sha = inner, hashlib.sha256()

        def write(self, data: bytes) -> int:
            self.sha.update(data)
            return self.inner.write(data)

    def work(src: Path, out: Path) -> None:
        with open(src, "rb") as raw, open(bucket / "anonymised.edf", "wb") as dst:
            hashing = Hashing(dst)
            anonymise_edf(raw, hashing, src.stat().st_size)
            hashing.sha.hexdigest()
        shutil.rmtree(bucket, ignore_errors=True)
        bucket.mkdir()

    return work


def _sunrise_prep() -> Callable[[Path, Path], object]:
    from sunrise_night.prepare import prepare_sunrise

    return prepare_sunrise


def _sunalgo() -> Callable[[Path, Path], object]:
    from sunalgo.run import run_sunalgo
    from sunrise_night.prepare import prepare_sunrise

    prepped: dict[Path, Path] = {}

    def work(src: Path, out: Path) -> None:
        if src not in prepped:  # sunalgo's input, prepared once, untimed with the warm-up night
            prepped[src] = Path(tempfile.mkdtemp(prefix="warm-sunalgo-"))
            prepare_sunrise(src, prepped[src])
        run_sunalgo(prepped[src], None, out)

    return work


VARIANTS: dict[str, Callable[[], Callable[[Path, Path], object]]] = {
    "psg_prep": _psg_prep,
    "competent": _competent,
    "mne_polyphase": _mne_polyphase,
    "mne_naive": _mne_naive,
    "io_floor": _io_floor,
    "ingest": _ingest,
    "sunrise_prep": _sunrise_prep,
    "sunalgo": _sunalgo,
}
#: The stages whose handler downloads its input object into its scratch folder before working.
STAGED_INPUT = frozenset({"sunrise_prep"})  # ingest and psg_prep stream (issue 26)


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def measure(variant: str, src: Path, repeats: int) -> dict:
    """Import, serve one night untimed, then time ``repeats`` nights: medians and every run."""
    work = VARIANTS[variant]()
    runs = []
    staged = src.stat().st_size if variant in STAGED_INPUT else 0
    tmp_bytes = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats + 1):
            out = Path(tmp) / f"night{i}"
            out.mkdir()
            c0, t0 = _cpu_s(), time.perf_counter()
            work(src, out)
            wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
            # The outputs only grow until the handler uploads them: their final size is the peak.
            tmp_bytes = max(tmp_bytes, staged + _folder_bytes(out))
            shutil.rmtree(out)
            if i:  # night 0 warms the process
                runs.append({"wall_s": wall, "cpu_s": cpu})
                print(json.dumps({"variant": variant, "night": i, "wall_s": wall, "cpu_s": cpu}), flush=True)
    return {
        "variant": variant,
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "peak_rss_mb": _peak_rss_mb(),
        "tmp_mb": tmp_bytes / 2**20,
        "request_mb": _peak_rss_mb() + tmp_bytes / 2**20,
        "runs": runs,
    }


def main(argv: list[str]) -> None:
    if len(argv) not in (2, 3) or argv[0] not in VARIANTS:
        raise SystemExit(f"usage: python -m benchmarks.warm {{{','.join(VARIANTS)}}} SRC [REPEATS]")
    print(json.dumps(measure(argv[0], Path(argv[1]), int(argv[2]) if len(argv) > 2 else 2)))


if __name__ == "__main__":
    main(sys.argv[1:])
