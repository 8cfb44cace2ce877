"""sunrise_common.dataset: object names, the newest-part rule and subject-level splits."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from sunrise_common import dataset as ds
from sunrise_common.storage.local import LocalStorage

NIGHT = "sabcdefghijkl-nabcdefgh"


def test_object_names_round_trip_and_refuse_what_would_break_the_partitioning():
    name = ds.object_name(ds.NIGHT_SCORES, "sunalgo-1.0+mine-1", NIGHT, "k0123abcd")
    assert name == f"dataset/night_scores/algo_version=sunalgo-1.0+mine-1/night_id={NIGHT}/part-k0123abcd.parquet"
    assert ds.parse_object_name(name) == (ds.NIGHT_SCORES, "sunalgo-1.0+mine-1", NIGHT, "k0123abcd")
    for bad in ({"algo_version": "a/b"}, {"algo_version": "a=b"}, {"night_id": "x y"}, {"input_key": "../k"},
                {"table": "raw"}):
        args = {"table": ds.TRAINING_ROWS, "algo_version": "v", "night_id": NIGHT, "input_key": "k1", **bad}
        with pytest.raises(ValueError):
            ds.object_name(**args)
    assert ds.parse_object_name("dataset/training_rows/x/part-k.parquet") is None
    assert ds.parse_object_name(f"nights/{NIGHT}/v/k/training_rows.csv") is None


def _part(storage, night: str, key: str, run_at: datetime, algo: str = "sunalgo-1.0+m-1") -> None:
    lineage = ds.Lineage(night_id=night, algo_version=algo, input_key=key, subject_pseudonym=ds.subject_of_night(night),
                         run_at=run_at, pipeline_version="test")
    table = ds.with_lineage({"n_epochs": [1]}, 1, lineage, ds.night_scores_schema())
    ds.write_part(storage, "results", ds.NIGHT_SCORES, table, lineage)


def test_the_newest_part_is_the_latest_run_whatever_its_key_and_a_second_write_keeps_the_first(tmp_path):
    storage = LocalStorage(tmp_path)
    storage.ensure_bucket("results")
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    _part(storage, NIGHT, "kzzz", t0)
    _part(storage, NIGHT, "kaaa", t0 + timedelta(seconds=1))  # later run, smaller key: still the newest
    data = ds.Dataset(tmp_path / "results" / "dataset")
    [newest] = data.latest(ds.NIGHT_SCORES)
    assert newest.lineage.input_key == "kaaa" and len(data.parts(ds.NIGHT_SCORES)) == 2
    name = ds.object_name(ds.NIGHT_SCORES, "sunalgo-1.0+m-1", NIGHT, "kaaa")
    generation = storage.stat("results", name).generation
    _part(storage, NIGHT, "kaaa", t0 + timedelta(days=1))  # a redelivery: the first write stays
    assert storage.stat("results", name).generation == generation
    assert data.latest(ds.NIGHT_SCORES)[0].lineage.run_at == t0 + timedelta(seconds=1)
    assert [p.algo_version for p in data.latest(ds.NIGHT_SCORES, ["m-2"])] == []
    assert [p.algo_version for p in data.latest(ds.NIGHT_SCORES, ["m-1"])] == ["sunalgo-1.0+m-1"]


def test_a_part_in_the_wrong_folder_is_refused(tmp_path):
    storage = LocalStorage(tmp_path)
    storage.ensure_bucket("results")
    _part(storage, NIGHT, "k1", datetime(2026, 1, 1, tzinfo=timezone.utc))
    src = tmp_path / "results" / ds.object_name(ds.NIGHT_SCORES, "sunalgo-1.0+m-1", NIGHT, "k1")
    other = "szzzzzzzzzzzz-nzzzzzzzz"
    dest = tmp_path / "results" / ds.object_name(ds.NIGHT_SCORES, "sunalgo-1.0+m-1", other, "k1")
    dest.parent.mkdir(parents=True)
    src.rename(dest)
    with pytest.raises(ValueError, match="its lineage names"):
        ds.Dataset(tmp_path / "results" / "dataset").parts(ds.NIGHT_SCORES)


def test_no_subject_appears_in_two_splits_and_splits_do_not_depend_on_order():
    rng = random.Random(7)
    subjects = [f"s{i:012d}" for i in range(500)]
    nights = [(f"{s}-n{k:08d}", s) for s in subjects for k in range(rng.randint(1, 4))]
    for seed in range(5):
        splits = ds.subject_splits([s for _, s in nights], seed=seed, test_fraction=0.2, validation_fraction=0.1)
        shuffled = [s for _, s in rng.sample(nights, len(nights))]
        assert ds.subject_splits(shuffled, seed=seed, test_fraction=0.2, validation_fraction=0.1) == splits
        by_split: dict[str, set[str]] = {sp: set() for sp in ds.SPLITS}
        for _night, subject in nights:
            by_split[splits[subject]].add(subject)
        assert not (by_split["train"] & by_split["test"]) and not (by_split["train"] & by_split["validation"])
        assert not (by_split["validation"] & by_split["test"])
        assert [len(by_split[sp]) for sp in ds.SPLITS] == [350, 50, 100]
    assert ds.subject_splits(subjects, seed=0) != ds.subject_splits(subjects, seed=1)


def test_small_sets_keep_a_subject_to_train_on_and_one_to_hold_out():
    assert ds.subject_splits(["a"]) == {"a": "train"}
    assert sorted(ds.subject_splits(["a", "b"]).values()) == ["test", "train"]
    assert sorted(ds.subject_splits(["a", "b", "c"], validation_fraction=0.2).values()) == ["test", "train", "validation"]
    assert set(ds.subject_splits(["a", "b"], test_fraction=0.0).values()) == {"train"}
    with pytest.raises(ValueError, match="must be < 1"):
        ds.subject_splits(["a"], test_fraction=0.6, validation_fraction=0.5)
