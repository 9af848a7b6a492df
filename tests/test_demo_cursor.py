"""After `make demo`, `make dev`'s landing sweep finds nothing to ingest again."""

from __future__ import annotations

import dagster as dg

from nexus_pipelines import demo
from nexus_pipelines.definitions import defs
from nexus_pipelines.ingest.requests import FILES_STATE


def landed_examples() -> None:
    for key, folder in demo.SPACES.items():
        demo.land_examples(demo.nexus.files(key), key.space_id, demo.EXAMPLES / folder)


def sweep(instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    with dg.build_sensor_context(instance=instance, cursor=None, resources={"nexus": demo.nexus}) as context:
        return defs.get_sensor_def("landing_sweep_sensor")(context).run_requests


def test_what_the_demo_records_leaves_the_landing_sweep_nothing_to_run_and_only_that(nexus_home, tmp_path):
    landed_examples()
    recorded = demo.record_files_seen()
    assert sorted(recorded) == sorted(k.partition_key for k in demo.SPACES)
    with dg.DagsterInstance.local_temp(tempdir=str(tmp_path)) as instance:
        assert sweep(instance) == []
        forgotten = next(iter(demo.SPACES))  # without its record, that space would be ingested again
        demo.nexus.files(forgotten).fs.rm(demo.nexus.files(forgotten).path("landing", forgotten.space_id,
                                                                          FILES_STATE))
        assert [r.partition_key for r in sweep(instance)] == [forgotten.partition_key]
