"""When KPI facts are refreshed: every hour for the tenant spaces whose measurements moved, and after a run
that brings new measurements for a space.

The hourly schedule refreshes only the spaces whose measurements changed since their last facts, or changed
within ``ACTIVE_FOR``: time alone moves their facts on for a while (a window completes, readings go stale
or missing, an episode lasts or ends); a space whose measurements stand still longer, or that has none,
costs nothing. Changes are ``kpi_measurements`` events (an observation records only a new fingerprint; a
tenant's loader may materialize it), read from Dagster's event log in one query per event kind
(``nexus_pipelines.changes``). It batches: one run per stretch of at most ``KPI_BATCH_SIZE`` consecutive
changed partitions (the partition-range tags), and every space still gets its own materialization and
metadata. A space whose source cannot be read fails its own ``kpi_sources_readable`` check (one result per
space), not the batch. The tick's time is the runs' check time, so a re-executed run says the same.

The end-of-run sensor looks at each succeeded run (in any code location: the tenant's loaders may live
elsewhere) for observations or materializations of ``kpi_measurements`` and requests one run per space
that got them, keyed by the space and the source's data version, so the same measurements never trigger
twice.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from nexus_pipelines.catalog import OWNERS
from nexus_pipelines.changes import changed_after, changed_since_done
from nexus_pipelines.common.dagster_tags import DATA_VERSION_TAG
from nexus_pipelines.kpi.assets import KPI_BATCH_SIZE, kpi_fact_docs, kpi_measurements
from nexus_pipelines.partitions import changed_range_run_requests, tags_for_partition, tenant_spaces

BATCH_TAG = "nexus/kpi_batch"
# After its measurements last changed, a space is refreshed every hour for this long.
ACTIVE_FOR = timedelta(hours=24)
MEASUREMENT_EVENTS = (dg.DagsterEventType.ASSET_OBSERVATION, dg.DagsterEventType.ASSET_MATERIALIZATION)

kpi_facts_job = dg.define_asset_job("kpi_facts_job", selection=[kpi_fact_docs],
                                    description="Refresh the KPI facts of tenant spaces.")
kpi_observe_job = dg.define_asset_job("kpi_observe_measurements", selection=[kpi_measurements],
                                      description="Fingerprint every tenant space's KPI source; changed ones "
                                                  "trigger kpi_fact_docs through kpi_measurements_sensor.")


def spaces_to_refresh(instance: dg.DagsterInstance, now: datetime) -> set[str]:
    """Spaces whose measurements changed since their last facts, or within ``ACTIVE_FOR`` before ``now``."""
    changed = changed_since_done(instance, [kpi_measurements.key], kpi_fact_docs.key, MEASUREMENT_EVENTS)
    return changed | changed_after(instance, [kpi_measurements.key], now - ACTIVE_FOR, MEASUREMENT_EVENTS)


@dg.schedule(name="kpi_hourly_schedule", cron_schedule="5 * * * *", execution_timezone="UTC", job=kpi_facts_job,
             default_status=dg.DefaultScheduleStatus.RUNNING, owners=OWNERS,
             description="Five past every hour (the last hour is complete): refresh the facts of the tenant spaces "
                         f"whose measurements moved, {KPI_BATCH_SIZE} spaces per run.")
def kpi_hourly_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
    tick = context.scheduled_execution_time
    tick = tick if tick.tzinfo else tick.replace(tzinfo=UTC)
    due = spaces_to_refresh(context.instance, tick)
    if not due:
        return dg.SkipReason("no space's measurements changed since its last facts or within "
                             f"{ACTIVE_FOR.total_seconds() / 3600:.0f} h")
    keys = tenant_spaces.get_partition_keys(dynamic_partitions_store=context.instance)
    return changed_range_run_requests(keys, due, KPI_BATCH_SIZE, run_key=tick.isoformat(), batch_tag=BATCH_TAG,
                                      run_config={"ops": {"kpi_fact_docs": {"config": {"as_of": tick.isoformat()}}}})


kpi_observe_schedule = dg.ScheduleDefinition(
    name="kpi_observe_schedule", cron_schedule="*/15 * * * *", execution_timezone="UTC", job=kpi_observe_job,
    default_status=dg.DefaultScheduleStatus.RUNNING, owners=OWNERS,
    description="Every 15 minutes: observe kpi_measurements (a fingerprint per tenant space); a space whose "
                "measurements changed gets its facts refreshed by kpi_measurements_sensor, not only at :05.")


def measurement_events(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """Partition key → data version (or the run id when none was recorded) of every observation or
    materialization of kpi_measurements in the run."""
    found: dict[str, str] = {}
    kinds = {dg.DagsterEventType.ASSET_OBSERVATION, dg.DagsterEventType.ASSET_MATERIALIZATION}
    for record in instance.get_records_for_run(run_id, of_type=kinds).records:
        entry = record.event_log_entry
        event = entry.asset_observation or entry.asset_materialization
        if event is None or event.asset_key != kpi_measurements.key or event.partition is None:
            continue
        found[event.partition] = (event.tags or {}).get(DATA_VERSION_TAG, run_id)
    return found


@dg.run_status_sensor(name="kpi_measurements_sensor", run_status=dg.DagsterRunStatus.SUCCESS,
                      request_job=kpi_facts_job, monitor_all_code_locations=True,
                      default_status=dg.DefaultSensorStatus.RUNNING,
                      description="When a run that observes or loads a space's KPI measurements succeeds, refresh "
                                  "that space's facts (once per data version).")
def kpi_measurements_sensor(context: dg.RunStatusSensorContext):
    changed = measurement_events(context.instance, context.dagster_run.run_id)
    known = set(tenant_spaces.get_partition_keys(dynamic_partitions_store=context.instance))
    return [dg.RunRequest(run_key=f"{partition_key}@{version}", partition_key=partition_key,
                          tags=tags_for_partition(partition_key))
            for partition_key, version in sorted(changed.items()) if partition_key in known]
