"""After `make demo`, `make dev`'s landing sensor starts from a cursor that knows what the demo ingested."""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.selector import InstigatorSelector

from nexus_pipelines import demo
from nexus_pipelines.definitions import defs
from nexus_pipelines.ingest.sensors import LandingCursor


def landed_examples() -> None:
    for key, folder in demo.SPACES.items():
        demo.land_examples(demo.nexus.files(key), key.space_id, demo.EXAMPLES / folder)


def test_the_recorded_cursor_leaves_the_landing_sensor_nothing_to_run(nexus_home, tmp_path):
    landed_examples()
    sensor = defs.get_sensor_def("landing_sensor")
    with dg.DagsterInstance.local_temp(tempdir=str(tmp_path)) as instance:
        recorded = demo.record_landing_cursor(instance)
        # found where dagster dev's daemon looks: by the selector of location "nexus" (workspace.yaml)
        selector_id = InstigatorSelector(location_name="nexus", repository_name="__repository__",
                                         name="landing_sensor").get_id()
        state = instance.schedule_storage.get_instigator_state("unused-origin-id", selector_id)
        assert state.instigator_data.cursor == recorded
        assert state.status == dg._core.scheduler.instigation.InstigatorStatus.DECLARED_IN_CODE  # still on
        with dg.build_sensor_context(instance=instance, cursor=recorded,
                                     resources={"nexus": demo.nexus}) as context:
            quiet = sensor(context)
        assert quiet.run_requests == []
        with dg.build_sensor_context(instance=instance, cursor=None, resources={"nexus": demo.nexus}) as context:
            fresh = sensor(context)
    assert len(fresh.run_requests) == 3  # without it, all three example spaces would be ingested again
    assert LandingCursor.parse(recorded).files.keys() == {r.partition_key for r in fresh.run_requests}
