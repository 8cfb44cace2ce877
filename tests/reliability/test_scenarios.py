"""The reliability scenarios (reliability/scenarios.py) at CI size: nothing lost, nothing done twice.

``make reliability`` runs the same functions at full size and writes RELIABILITY.md.
"""

from __future__ import annotations

import pytest

from reliability import scenarios


def assert_clean(row: dict) -> None:
    assert row["lost"] == 0, row["details"]["lost"]
    assert row["duplicated"] == 0, row["details"].get("duplicated_runs")
    for scan in ("privacy", "privacy_a"):  # every store outside raw, scanned for personal data
        if scan in row["details"]:
            assert row["details"][scan]["total"] == 0, row["details"][scan]["hits"]
            assert row["details"][scan]["scanned"]["objects"] > 0
            assert row["details"][scan]["scanned"]["log_files"] > 0
            assert row["details"][scan]["scanned"]["status_json_bytes"] > 0


@pytest.mark.slow
def test_duplicated_shuffled_events_give_byte_identical_outputs_and_one_run_per_input(tmp_path):
    row = scenarios.duplicates_and_shuffle(tmp_path, 3)
    assert_clean(row)
    assert row["details"]["diffs"] == []
    assert row["details"]["compared_files"] > 0
    assert row["details"]["not_once"] == []  # attempts == 1 for every run
    assert row["details"]["non_busy_failures"] == {}  # duplicates answered 2xx or 429, nothing else
    assert set(row["details"]["delivery_states"]) <= {"delivered", "unrouted_messages"}


@pytest.mark.slow
def test_a_service_killed_mid_stage_is_taken_over_and_no_partial_output_is_used(tmp_path):
    row = scenarios.sigkill_mid_stage(tmp_path, 2, hours=8.0)
    assert_clean(row)
    killed = row["details"]["killed"]
    assert row["details"]["killed_mid_work"], killed
    # taken over at least once (more on a loaded machine: a takeover is safe, a second completion is not)
    assert killed["final_state"] == "done" and killed["final_attempts"] >= 2, killed
    assert row["details"]["manifest_problems"] == []
    assert row["details"]["downstream_not_once"] == []


@pytest.mark.slow
def test_transient_faults_lose_nothing_and_dead_letters_replay_to_completion(tmp_path):
    row = scenarios.transient_faults(tmp_path, 3)
    assert_clean(row)
    assert row["details"]["injected"] > 0
    # every publish fails in phase B: exactly one dead letter per raw input, deterministically
    assert row["details"]["dead_letters"] == row["details"]["expected_dead_letters"] == 9
    assert row["details"]["unexplained"] == []  # every unfinished input sits in the dead-letter store
    assert row["details"]["stuck"] == {}


# -- the fault scenarios on the emulators (fake-gcs-server, the Pub/Sub and Firestore emulators)


@pytest.mark.slow
@pytest.mark.emulators
def test_on_the_emulators_duplicated_shuffled_events_give_byte_identical_outputs(tmp_path):
    row = scenarios.duplicates_and_shuffle(tmp_path, 3, backend="emulators")
    assert row["backend"] == "emulators"
    assert_clean(row)
    assert row["details"]["diffs"] == []  # against a clean run on the emulators too
    assert row["details"]["compared_files"] > 0
    assert row["details"]["not_once"] == []
    assert row["details"]["non_busy_failures"] == {}
    assert set(row["details"]["delivery_states"]) <= {"delivered", "unrouted_messages"}
    # every finalize notification from fake-gcs-server was queued 3 times
    assert row["events"] >= 3 * row["files"]


@pytest.mark.slow
@pytest.mark.emulators
def test_on_the_emulators_a_service_killed_mid_stage_is_taken_over(tmp_path):
    row = scenarios.sigkill_mid_stage(tmp_path, 2, hours=8.0, backend="emulators")
    assert row["backend"] == "emulators"
    assert_clean(row)
    killed = row["details"]["killed"]
    assert row["details"]["killed_mid_work"], killed
    # taken over at least once (more on a loaded machine: a takeover is safe, a second completion is not)
    assert killed["final_state"] == "done" and killed["final_attempts"] >= 2, killed
    assert row["details"]["manifest_problems"] == []
    assert row["details"]["downstream_not_once"] == []


@pytest.mark.slow
@pytest.mark.emulators
def test_on_the_emulators_transient_faults_lose_nothing_and_dead_letters_replay(tmp_path):
    row = scenarios.transient_faults(tmp_path, 3, backend="emulators")
    assert row["backend"] == "emulators"
    assert_clean(row)
    assert row["details"]["injected"] > 0
    assert row["details"]["dead_letters"] == row["details"]["expected_dead_letters"] == 9
    assert row["details"]["unexplained"] == []
    assert row["details"]["stuck"] == {}


@pytest.mark.slow
def test_a_burst_of_nights_is_processed_with_bounded_memory(tmp_path):
    row = scenarios.burst(tmp_path, 60)
    assert_clean(row)
    assert row["details"]["not_once"] == []
    assert set(row["details"]["peak_rss_mb"]) == {"ingest", "sunrise_prep", "psg_prep", "sunalgo", "router"}
    assert max(row["details"]["peak_rss_mb"].values()) < row["details"]["rss_limit_mb"]


@pytest.mark.slow
def test_a_new_generation_is_reprocessed_beside_the_untouched_old_results(tmp_path):
    row = scenarios.new_generation(tmp_path, 1)
    assert_clean(row)
    assert row["details"]["problems"] == []
    assert row["details"]["changed_scores"] == 1


@pytest.mark.slow
def test_the_stack_listens_on_loopback_only_and_the_cloud_services_are_internal(tmp_path):
    row = scenarios.loopback_only(tmp_path)
    assert row["details"]["problems"] == []
    assert row["details"]["refused"] == 5
    assert len(row["details"]["sockets"]) == 4
    assert len(row["details"]["terraform_checks"]) == 4


@pytest.mark.slow
def test_no_personal_data_leaves_the_raw_bucket(tmp_path):
    scenarios.duplicates_and_shuffle(tmp_path / "earlier", 1)  # outputs of another scenario are scanned too
    row = scenarios.no_personal_data(tmp_path, 1)
    assert_clean(row)
    assert row["details"]["scanned"] > 0
    assert row["details"]["hits"] == []
    assert row["details"]["state_hits"] == []
    assert row["details"]["db_files"] >= 4  # state.db and router.db of both scenarios (and their WALs)
    scanned = row["details"]["privacy"]["scanned"]
    assert scanned["documents"] > 0 and scanned["database_files"] > 0 and scanned["log_files"] > 0
