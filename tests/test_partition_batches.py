"""``run_partitions``: the loop of a run over many partitions that KPI refresh and maintenance share; and
``partition_checks``: a check result per partition of such a run."""

import dagster as dg
import pytest

from nexus_pipelines.common.batches import BatchOutcome, PartitionDone, partition_checks, run_partitions
from nexus_pipelines.common.dagster_tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from nexus_query.errors import InvalidRequest

letters = dg.StaticPartitionsDefinition(["a", "b", "c", "d"])
outcomes: list[BatchOutcome[int]] = []
failing = {"b"}


def work(partition_key: str) -> PartitionDone[int]:
    if partition_key in failing:
        raise InvalidRequest(f"space {partition_key}'s source cannot be read")
    if partition_key == "c":
        return PartitionDone(None, {"status": "nothing to do"})
    return PartitionDone(ord(partition_key), {"status": "done", "value": ord(partition_key)}, "done")


@dg.asset(partitions_def=letters, backfill_policy=dg.BackfillPolicy.single_run())
def lettered(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    outcomes.append(run_partitions(context, work))
    return dg.MaterializeResult()


@dg.asset(partitions_def=letters, backfill_policy=dg.BackfillPolicy.single_run(),
          check_specs=[dg.AssetCheckSpec("readable", asset="checked", partitions_def=letters)])
def checked(context: dg.AssetExecutionContext):
    outcome = run_partitions(context, work)
    yield from partition_checks(context, "readable", outcome, lambda value: {"value": value or 0})
    yield dg.MaterializeResult()


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    return {m.partition: {k: v.value for k, v in m.metadata.items()}
            for m in result.asset_materializations_for_node("lettered")}


@pytest.fixture(autouse=True)
def fresh_outcomes():
    outcomes.clear()
    yield
    failing.clear()
    failing.add("b")


def test_a_failing_partition_is_recorded_on_itself_and_the_others_of_the_run_go_on():
    result = dg.materialize([lettered], tags={ASSET_PARTITION_RANGE_START_TAG: "a", ASSET_PARTITION_RANGE_END_TAG: "d"})
    assert result.success
    (outcome,) = outcomes
    assert outcome.results == {"a": ord("a"), "d": ord("d")}  # c had nothing to do: no result, still recorded
    assert outcome.failed == {"b": "nexus.invalid_request: space b's source cannot be read"}
    assert outcome.partitions == 4 and not outcome.all_failed
    assert materializations(result) == {
        "a": {"status": "done", "value": ord("a")},
        "b": {"status": "failed", "error": "nexus.invalid_request: space b's source cannot be read"},
        "c": {"status": "nothing to do"},
        "d": {"status": "done", "value": ord("d")},
    }


def test_a_run_of_one_partition_fails_with_its_error():
    result = dg.materialize([lettered], partition_key="b", raise_on_error=False)
    assert not result.success and outcomes == []
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "space b's source cannot be read" in str(failure.step_failure_data.error)


def test_a_run_whose_every_partition_failed_says_so():
    failing.update({"a", "c", "d"})
    result = dg.materialize([lettered], tags={ASSET_PARTITION_RANGE_START_TAG: "a", ASSET_PARTITION_RANGE_END_TAG: "d"})
    (outcome,) = outcomes
    assert outcome.all_failed and outcome.results == {} and sorted(outcome.failed) == ["a", "b", "c", "d"]
    assert {m["status"] for m in materializations(result).values()} == {"failed"}


def test_a_run_over_many_partitions_records_a_check_result_on_each_of_them():
    with dg.instance_for_test() as instance:
        result = dg.materialize([checked], instance=instance,
                                tags={ASSET_PARTITION_RANGE_START_TAG: "a", ASSET_PARTITION_RANGE_END_TAG: "d"})
        history = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("checked"), "readable"), limit=10)
    assert result.success
    evaluations = {e.partition: (e.passed, {k: v.value for k, v in e.metadata.items()})
                   for e in result.get_asset_check_evaluations()}
    assert evaluations == {"a": (True, {"value": ord("a")}),
                           "b": (False, {"error": "nexus.invalid_request: space b's source cannot be read"}),
                           "c": (True, {"value": 0}), "d": (True, {"value": ord("d")})}
    assert sorted(record.partition for record in history) == ["a", "b", "c", "d"]  # each space's own history

