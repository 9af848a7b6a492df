"""The ingest assets materialized per partition, in process, on real stores and the real model."""

import json

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nexus_pipelines.common.parquet_io import ArrowStream, write_parquet
from nexus_pipelines.common.tasks import TASK_TAG
from nexus_pipelines.definitions import defs
from nexus_pipelines.partitions import SpaceKey
from nexus_pipelines.resources import NexusResource
from nexus_query.context import RequestContext
from nexus_query.landing import landing_zone
from nexus_query.query import query
from nexus_query.store import SpaceStore

ACME = RequestContext("acme")
JOB = defs.resolve_job_def("ingest_space")

RUNBOOK = """# Returns runbook

## Tents
To return a tent, pack it dry in its stuff sack and bring the receipt to any store within 60 days.

## Stoves
Stoves are returned empty: no fuel canister may be attached, for the safety of the courier.
"""


@pytest.fixture
def instance(nexus_home):
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def drop(name: str, content: str | bytes, ctx: RequestContext = ACME, space: str = "main") -> None:
    data = content.encode() if isinstance(content, str) else content
    landing_zone(ctx).files.write_bytes_atomic(data, "landing", space, "files", name)


def remove(name: str, ctx: RequestContext = ACME, space: str = "main") -> None:
    files = landing_zone(ctx).files
    files.fs.rm(files.path("landing", space, "files", name))


def materialize(instance, partition_key: str = "acme.default.main", chunks: dict | None = None,
                **space_table_config) -> dict[str, dict]:
    """One run of the ingest job; the metadata of each asset's materialization, by asset name."""
    instance.add_dynamic_partitions("tenant_spaces", [partition_key])
    ops = {op: {"config": c} for op, c in (("chunks", chunks), ("space_table", space_table_config)) if c}
    config = {"ops": ops} if ops else None
    result = JOB.execute_in_process(partition_key=partition_key, instance=instance, run_config=config)
    assert result.success
    assert all(check.passed for check in result.get_asset_check_evaluations())
    materializations = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]
    return {m.asset_key.path[-1]: {k: v.value for k, v in m.metadata.items()} for m in materializations}


def rows(ctx: RequestContext = ACME, space: str = "main") -> list[dict]:
    return SpaceStore().open(ctx, space).table.to_arrow().drop_columns(["vector"]).to_pylist()


def test_a_partition_run_loads_every_landed_document_and_a_second_run_embeds_and_writes_nothing(instance, provider):
    drop("returns-runbook.md", RUNBOOK)
    drop("notes.txt", "The winter hours start on 1 November: stores open at 10:00.")
    drop("faq.jsonl", "\n".join(json.dumps(i) for i in [
        {"id": "faq-warranty", "type": "text", "content": "Warranty claims need the serial number.",
         "metadata": {"topic": "warranty"}},
        {"id": "faq-shipping", "type": "text", "content": "Standard shipping takes three working days."}]))
    landing_zone(ACME).land_batch("main", [{"type": "text", "id": "api-doc", "content": "Gift cards never expire.",
                                            "metadata": {"source": "api"}}])

    first = materialize(instance)
    assert first["raw_docs"]["documents"] == 5
    assert first["chunks"]["chunks"] == first["space_table"]["rows"] == first["space_table"]["rows_added"]
    assert first["embeddings"]["embedded"] == first["chunks"]["chunks"]
    stored = rows()
    assert {r["source"] for r in stored} == {"returns-runbook.md", "notes.txt", "faq-warranty", "faq-shipping",
                                            "api-doc"}
    runbook = [r for r in stored if r["source"] == "returns-runbook.md"]
    assert {json.loads(r["metadata"])["heading"] for r in runbook} >= {"Returns runbook > Tents",
                                                                      "Returns runbook > Stoves"}
    assert all(RUNBOOK[r["char_start"]:r["char_end"]] == r["text"] for r in runbook)
    assert query(ACME, "main", "do gift cards expire?", top_k=1).hits[0].doc_id == \
        [r["id"] for r in stored if r["source"] == "api-doc"][0]

    second = materialize(instance)
    assert second["chunks"]["reused_documents"] == 5 and second["chunks"]["chunks"] == first["chunks"]["chunks"]
    assert (second["embeddings"]["embedded"], second["embeddings"]["unchanged"]) == (0, first["chunks"]["chunks"])
    table = second["space_table"]
    assert (table["rows_added"], table["rows_updated"], table["rows_deleted"]) == (0, 0, 0)
    assert table["table_version"] == first["space_table"]["table_version"]


def test_changing_one_document_re_embeds_only_its_chunks(instance, provider):
    drop("returns-runbook.md", RUNBOOK)
    drop("notes.txt", "The winter hours start on 1 November.")
    first = materialize(instance)
    drop("notes.txt", "The winter hours start on 15 November.")
    second = materialize(instance)
    assert (second["chunks"]["documents"], second["chunks"]["reused_documents"]) == (2, 1)
    assert second["embeddings"]["embedded"] == 1
    assert second["embeddings"]["unchanged"] == first["chunks"]["chunks"] - 1
    assert (second["space_table"]["rows_updated"], second["space_table"]["rows_added"]) == (1, 0)
    assert [r["text"] for r in rows() if r["source"] == "notes.txt"] == ["The winter hours start on 15 November."]
    smaller = materialize(instance, chunks={"max_tokens": 16, "overlap_tokens": 4})  # other chunker: cut afresh
    assert smaller["chunks"]["reused_documents"] == 0 and smaller["chunks"]["chunks"] > second["chunks"]["chunks"]
    runbook = [r for r in rows() if r["source"] == "returns-runbook.md"]
    assert len(runbook) == smaller["chunks"]["chunks"] - 1
    assert all(r["char_end"] - r["char_start"] < 120 for r in runbook)


def test_a_removed_source_loses_its_rows_and_a_shorter_document_its_tail_chunks(instance, provider):
    long_text = " ".join(f"Sentence number {i} talks about tents and stoves." for i in range(120))
    drop("long.txt", long_text)
    drop("gone.txt", "This file will be removed from the landing zone.")
    first = materialize(instance)
    long_rows = [r for r in rows() if r["source"] == "long.txt"]
    assert len(long_rows) >= 3 and first["space_table"]["rows"] == len(long_rows) + 1

    remove("gone.txt")
    drop("long.txt", " ".join(f"Sentence number {i} talks about tents and stoves." for i in range(20)))
    second = materialize(instance)
    stored = rows()
    assert {r["source"] for r in stored} == {"long.txt"}
    assert len(stored) == 1 and stored[0]["chunk_index"] == 0
    assert second["space_table"]["rows_deleted"] == len(long_rows)  # the removed file's row and the tail chunks


def test_an_empty_source_never_wipes_a_space_unless_the_run_asks_for_it(instance, provider):
    drop("notes.txt", "Only document of the space.")
    materialize(instance)
    remove("notes.txt")
    kept = materialize(instance)
    assert kept["space_table"]["empty_source_kept_rows"] is True and len(rows()) == 1
    wiped = materialize(instance, allow_empty_source=True)
    assert wiped["space_table"]["rows_deleted"] == 1 and rows() == []


def test_images_are_media_refs_embedded_from_caption_alt_text_and_metadata(instance, provider):
    drop("tent.png", b"\x89PNG fake pixels")
    drop("tent.png.json", json.dumps({"caption": "A red two-person tent pitched on a beach",
                                      "alt_text": "red tent", "metadata": {"board": "camping"}}))
    zone = landing_zone(ACME)
    zone.files.write_bytes_atomic(b"\x89PNG", "media", "stove.png")
    zone.land_batch("main", [{"type": "image", "blob_path": "media/stove.png",
                              "content": "A camping stove boiling water", "metadata": {"source": "pinterest"}}])
    materialize(instance)
    images = {r["source"]: r for r in rows()}
    tent, stove = images["tent.png"], next(r for s, r in images.items() if s != "tent.png")
    assert tent["type"] == stove["type"] == "image"
    assert tent["blob_path"] == "landing/main/files/tent.png" and stove["blob_path"] == "media/stove.png"
    assert zone.files.exists(tent["blob_path"]) and zone.files.exists(stove["blob_path"])
    meta = json.loads(tent["metadata"])
    assert meta["embedded_from"] == ["caption", "alt_text", "metadata"] and meta["embedding_modality"] == "text"
    assert "board: camping" in tent["text"]
    assert json.loads(stove["metadata"])["embedded_from"] == ["caption", "metadata"]
    assert query(ACME, "main", "beach tent photo", top_k=1).hits[0].source == "tent.png"


def test_the_global_partition_writes_the_global_space_through_the_system_path(instance, provider):
    key = SpaceKey.global_space()
    NexusResource().files(key).write_bytes_atomic(b"p95 latency: 95% of requests finish faster than this.",
                                                  "landing", "global", "files", "latency.txt")
    result = materialize(instance, "global")
    space = SpaceStore().open_global("dev")
    assert space.count() == result["space_table"]["rows"] == 1
    assert space.table.to_arrow().column("tenant_id").to_pylist() == ["_global"]


def test_intermediate_data_is_parquet_in_the_space_owners_store(instance, provider):
    drop("notes.txt", "Stores open at 10:00 in winter.")
    result = materialize(instance)
    files = landing_zone(ACME).files
    for asset in ("raw_docs", "chunks", "embeddings"):
        assert result[asset]["path"] == files.url("pipelines", asset, "main.parquet")
        assert pq.read_table(files.path("pipelines", asset, "main.parquet")).num_rows == 1
    assert not landing_zone(RequestContext("globex")).files.exists("pipelines")


def test_the_pipeline_runs_on_s3_stores(instance, s3_config, provider):
    drop("notes.txt", "Stores open at 10:00 in winter.")
    result = materialize(instance)
    assert result["raw_docs"]["path"].startswith("s3://")
    assert result["space_table"]["uri"].startswith("s3://") and result["space_table"]["rows"] == 1
    assert query(ACME, "main", "winter opening hours", top_k=1).hits[0].source == "notes.txt"


def test_a_batch_run_moves_its_task_to_running_then_to_succeeded_with_counts(instance, provider):
    zone = landing_zone(ACME)
    task = zone.land_batch("main", [{"type": "text", "content": "Gift cards never expire."}])
    instance.add_dynamic_partitions("tenant_spaces", ["acme.default.main"])
    tags = {TASK_TAG: task.task_id}
    started = JOB.execute_in_process(partition_key="acme.default.main", instance=instance, tags=tags,
                                     asset_selection=[dg.AssetKey("raw_docs")])
    assert (zone.read_task(task.task_id).status, zone.read_task(task.task_id).run_id) == ("running", started.run_id)
    finished = JOB.execute_in_process(partition_key="acme.default.main", instance=instance, tags=tags)
    reported = zone.read_task(task.task_id)
    assert (reported.status, reported.run_id, reported.error) == ("succeeded", finished.run_id, None)
    assert reported.counts == {"items": 1, "rows": 1, "rows_added": 1, "rows_updated": 0, "rows_deleted": 0,
                               "rows_skipped": 0}


def test_a_step_failing_half_way_leaves_the_previous_parquet_whole(nexus_home):
    files = landing_zone(ACME).files
    schema = pa.schema([("n", pa.int64())])
    write_parquet(files, ArrowStream(schema, [pa.record_batch([[1, 2]], schema=schema)]), "pipelines", "x.parquet")

    def failing():
        yield pa.record_batch([[3]], schema=schema)
        raise RuntimeError("embedding provider went away")

    with pytest.raises(RuntimeError):
        write_parquet(files, ArrowStream(schema, failing()), "pipelines", "x.parquet")
    assert pq.read_table(files.path("pipelines", "x.parquet")).column("n").to_pylist() == [1, 2]
    assert files.list("pipelines") == ["pipelines/x.parquet"] and len(files.fs.ls(files.path("pipelines"))) == 1
