"""RELIABILITY.md's "forget under SIGKILL" rows: ``uv run python scripts/measure_forget.py
--backend embedded|emulators --hogs 0|2``.

Processes 4 nights of 3 subjects with the real pipeline (in-process apps, embedded backend; for
``emulators`` the objects and documents are then copied into fake-gcs-server and the Firestore
emulator), runs ``sunrise forget --apply`` as a subprocess that pauses at its middle deletion,
SIGKILLs it there, re-runs it by pseudonym, and prints one JSON line: peak RSS and wall time of
the re-run (``/usr/bin/time``), what is left of the subject, whether every other subject is
untouched, and a byte scan of the data folder. ``--hogs N`` runs N busy loops beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tests.cli.test_forget as T  # noqa: E402 - the test's stack, snapshot and scan
from sunrise_common.service import Context  # noqa: E402
from sunrise_devstack.settings import DevStackSettings  # noqa: E402
from sunrise_common.state import make_state  # noqa: E402
from tests.inprocess import Pipeline, synth  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("embedded", "emulators"), default="embedded")
    parser.add_argument("--hogs", type=int, default=0, help="CPU busy loops beside the forget")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="forget-measure-"))
    emu, hogs = None, []
    try:
        settings = T.embedded_settings(root / "data")
        pipeline = Pipeline(Context.from_settings(settings))
        for i, (subject, start) in enumerate(T.NIGHTS):
            pipeline.upload_night(synth(root / f"n{i}", 60 + i, start=start), site=T.SITE, subject=subject)
            pipeline.drain()
        pipeline.close()
        if args.backend == "emulators":
            from sunrise_devstack.emulators import Emulators

            emu = Emulators(root / "logs", project="sunrise-forget", prefix="sunrise-forget").start()
            target = DevStackSettings(backend="emulators", project=emu.project, prefix="sunrise-forget",
                                      data_dir=root / "emu", pseudonym_key=T.TEST_KEY, gcs_endpoint=emu.gcs_endpoint,
                                      pubsub_emulator_host=emu.pubsub_emulator_host,
                                      firestore_emulator_host=emu.firestore_emulator_host)
            T.copy_to_emulators(settings, target)
            settings = target
        before = T.snapshot(settings)
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)]
        env = {**os.environ, **T.settings_env(settings)}

        def forget(*extra: str) -> subprocess.Popen:
            cmd = ["/usr/bin/time", "-f", "TIME %M %e", sys.executable, "-m", "sunrise_cli.main", "forget", *extra]
            return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    start_new_session=True)

        out, _ = forget("--site", T.SITE, "--subject", T.GONE, "--json").communicate()
        total = sum(json.loads(out.strip().splitlines()[-1])["planned"].values())
        started = time.monotonic()
        proc = forget("--site", T.SITE, "--subject", T.GONE, "--apply", "--pause-after", str(total // 2))
        T.wait_for_progress(settings, total // 2, proc)
        killed_after = time.monotonic() - started
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        started = time.monotonic()
        out, err = forget("--pseudonym", T.PSEUDONYM, "--apply", "--json").communicate()
        rerun = time.monotonic() - started
        rss_kb = int([line for line in err.splitlines() if line.startswith("TIME")][-1].split()[1])
        after = T.snapshot(settings)
        print(json.dumps({
            "backend": args.backend, "hogs": args.hogs, "items": total,
            "objects_of_subject": len(T.of_subject(before)["objects"]), "rows": T.of_subject(before)["rows"],
            "killed_after_s": round(killed_after, 2), "rerun_wall_s": round(rerun, 2),
            "rerun_peak_rss_mb": round(rss_kb / 1024), "complete": json.loads(out.strip().splitlines()[-1])["complete"],
            "left": T.of_subject(after), "others_untouched": T.without_subject(after) == T.without_subject(before),
            "scan_hits": T.scan_files(Path(settings.data_dir), [T.GONE.encode(), f"{T.PSEUDONYM}-n".encode()]),
            "audit_runs": make_state(settings).get("forgets", T.PSEUDONYM)["runs"], "load": os.getloadavg(),
        }))
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        if emu is not None:
            emu.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
