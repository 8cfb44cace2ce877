"""The gold layer read from a bucket that is not a local folder (emulators, cloud): the CLI
mirrors the parts it lacks, and the mirror reads like the bucket. Runs on every storage adapter."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sunrise_common import dataset as ds
from sunrise_cli.dataset import mirror_dataset

NIGHTS = ("sa" + "a" * 11 + "-naaaaaaaa", "sb" + "b" * 11 + "-nbbbbbbbb")


def _write(storage, bucket: str, night: str, key: str, run_at: datetime) -> None:
    lineage = ds.Lineage(night_id=night, algo_version="sunalgo-1.0+m-1", input_key=key,
                         subject_pseudonym=ds.subject_of_night(night), run_at=run_at, pipeline_version="test")
    for table in ds.TABLES:
        schema = ds.night_scores_schema() if table == ds.NIGHT_SCORES else ds.training_rows_schema([("f", "1", "x")])
        columns = {"n_epochs": [2]} if table == ds.NIGHT_SCORES else {"epoch": [0, 1], "f": [1.5, None]}
        n = 1 if table == ds.NIGHT_SCORES else 2
        ds.write_part(storage, bucket, table, ds.with_lineage(columns, n, lineage, schema), lineage)


def test_the_mirror_fetches_only_missing_parts_and_reads_like_the_bucket(storage, bucket, tmp_path):
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    _write(storage, bucket, NIGHTS[0], "k1", t0)
    _write(storage, bucket, NIGHTS[1], "k2", t0)
    storage.write_bytes(bucket, "dataset/README.txt", b"not a part")  # ignored
    mirror = tmp_path / "mirror"
    assert mirror_dataset(storage, bucket, mirror) == 4
    _write(storage, bucket, NIGHTS[0], "k3", t0 + timedelta(hours=1))  # a re-upload of the first night
    assert mirror_dataset(storage, bucket, mirror) == 2
    assert mirror_dataset(storage, bucket, mirror) == 0
    data = ds.Dataset(mirror / "dataset")
    assert [p.lineage.input_key for p in data.latest(ds.TRAINING_ROWS)] == ["k3", "k2"]
    rows = data.read(ds.TRAINING_ROWS)
    assert rows.num_rows == 4 and rows.column("f").to_pylist() == [1.5, None, 1.5, None]
    assert sorted(rows.column("night_id").to_pylist()) == sorted(NIGHTS * 2)
