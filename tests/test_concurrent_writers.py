"""Several writers upserting one space at once lose no row and duplicate none: separate processes released
together by a barrier (on local disk and on S3), Dagster's multiprocess executor, and a write that meets a
concurrent overwrite (retried, and counted)."""

import multiprocessing
from pathlib import Path
from queue import Empty

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest

from nexus_query.context import RequestContext
from nexus_query.embeddings import EmbedderInfo
from nexus_query.store import Record, SpaceStore, build_rows
from nexus_query.store.commits import is_commit_conflict
from nexus_query.store.lance_indexes import ensure_fts_index, ensure_indexes, has_fts_index
from tests.helpers import REPO

ACME = RequestContext("acme")
WRITERS = 4
BATCHES = 3
SHARED = 12  # ids every writer offers with the same content
CONTESTED = 6  # ids every writer offers with its own metadata: one version must win, no copies
OWN = 8  # ids per writer per batch that no other writer offers


def writer_records(writer: int, batch: int) -> list[Record]:
    shared = [Record(text=f"Shared guide {i}: how to pitch a tent in the rain.", source=f"shared-{i}")
              for i in range(SHARED)]
    contested = [Record(text=f"Contested note {i} on stove fuel.", source=f"contested-{i}",
                        metadata={"writer": writer, "batch": batch}) for i in range(CONTESTED)]
    own = [Record(text=f"Writer {writer} batch {batch} item {i}: trail report.", source=f"w{writer}-b{batch}-{i}")
           for i in range(OWN)]
    return shared + contested + own


def write_batches(folder: Path, provider, writers: int) -> list[list[Path]]:
    """Each writer's batches as Parquet rows built with the real model (the workers never load it)."""
    texts = sorted({r.text for w in range(writers) for b in range(BATCHES) for r in writer_records(w, b)})
    vectors = dict(zip(texts, provider.embed(texts), strict=True))
    paths = []
    for w in range(writers):
        paths.append([])
        for b in range(BATCHES):
            records = writer_records(w, b)
            path = folder / f"writer-{w}-batch-{b}.parquet"
            pq.write_table(build_rows(ACME, records, np.stack([vectors[r.text] for r in records]), provider.info), path)
            paths[w].append(path)
    return paths


def upsert_files(paths: list[str], embedder: EmbedderInfo) -> list[tuple[int, int, int, int]]:
    """Open (or create) acme's space and upsert each file; (inserted, updated, attempts, conflicts) each."""
    space = SpaceStore().open_or_create(ACME, "main", embedder)
    results = []
    for path in paths:
        result = space.upsert(pq.read_table(path), embedder)
        results.append((result.inserted, result.updated, result.attempts, result.conflicts_retried))
    return results


def _process_writer(paths: list[str], embedder: EmbedderInfo, barrier, results) -> None:
    barrier.wait(timeout=120)  # every writer creates and writes the space at the same moment
    results.put(upsert_files(paths, embedder))


def expected_ids(writers: int) -> set[str]:
    return {r.row_id for w in range(writers) for b in range(BATCHES) for r in writer_records(w, b)}


def assert_every_row_once(writers: int, results: list[list[tuple[int, int, int, int]]]) -> None:
    table = SpaceStore().open(ACME, "main").table.to_arrow()
    ids = table.column("id").to_pylist()
    assert len(ids) == len(set(ids)), "a concurrent upsert duplicated rows"
    assert set(ids) == expected_ids(writers), "a concurrent upsert lost rows"
    # Each row was inserted by exactly one writer: the counts agree with the table.
    assert sum(r[0] for rs in results for r in rs) == len(ids)
    assert all(attempts >= 1 and conflicts == attempts - 1 for rs in results for _, _, attempts, conflicts in rs)
    contested = [m for m, s in zip(table.column("metadata").to_pylist(), table.column("source").to_pylist(),
                                   strict=True)
                 if s.startswith("contested-")]
    assert len(contested) == CONTESTED and all('"writer":' in m for m in contested)


def collect_results(queue, workers: list) -> list:
    """Each writer's result; a writer that died fails the test at once, naming its exit code (its
    traceback is in the captured stderr), rather than after the whole wait."""
    results: list = []
    for _ in range(60):  # at most 5 minutes
        if len(results) == len(workers):
            return results
        try:
            results.append(queue.get(timeout=5))
        except Empty:
            died = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            assert not died, f"a writer process died with exit code {died}"
    raise AssertionError(f"{len(workers) - len(results)} writers reported nothing in 5 minutes")


@pytest.mark.slow  # starts writer processes
@pytest.mark.parametrize("where", ["local", "s3"])
def test_processes_writing_one_space_at_once_lose_no_row_and_duplicate_none(where, request, nexus_home,
                                                                            tmp_path, provider):
    if where == "s3":
        request.getfixturevalue("s3_config")
    paths = write_batches(tmp_path, provider, WRITERS)
    spawn = multiprocessing.get_context("spawn")  # fresh interpreters, as separate runs would be
    barrier, queue = spawn.Barrier(WRITERS), spawn.Queue()
    workers = [spawn.Process(target=_process_writer, args=([str(p) for p in paths[w]], provider.info, barrier, queue))
               for w in range(WRITERS)]
    for worker in workers:
        worker.start()
    try:
        results = collect_results(queue, workers)
    finally:
        for worker in workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.kill()
    assert [w.exitcode for w in workers] == [0] * WRITERS
    assert_every_row_once(WRITERS, results)


# --- Dagster's multiprocess executor: one op per writer, all in their own processes, in one run ----------

class WriterConfig(dg.Config):
    paths: list[str]
    embedder: str  # EmbedderInfo as JSON


def _writer_op(number: int) -> dg.OpDefinition:
    @dg.op(name=f"writer_{number}")
    def writer(config: WriterConfig) -> list:
        return upsert_files(config.paths, EmbedderInfo.from_json(config.embedder))

    return writer


@dg.job(executor_def=dg.multiprocess_executor.configured({"max_concurrent": WRITERS}))
def concurrent_writers_job():
    for number in range(WRITERS):
        _writer_op(number)()


def reconstruct_concurrent_writers_job() -> dg.JobDefinition:
    """How the executor's child processes find the job (pytest imports this file under another name)."""
    return concurrent_writers_job


@pytest.mark.slow  # Dagster's multiprocess executor starts a process per op
def test_multiprocess_executor_ops_writing_one_space_lose_no_row_and_duplicate_none(nexus_home, tmp_path, provider):
    paths = write_batches(tmp_path, provider, WRITERS)
    run_config = {"ops": {f"writer_{w}": {"config": {"paths": [str(p) for p in paths[w]],
                                                     "embedder": provider.info.to_json()}}
                          for w in range(WRITERS)}}
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        job = dg.build_reconstructable_job("tests.test_concurrent_writers", "reconstruct_concurrent_writers_job",
                                           reconstructor_working_directory=str(REPO))
        with dg.execute_job(job, instance=instance, run_config=run_config) as result:
            assert result.success
            starts = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START]
            assert len({e.pid for e in starts}) == WRITERS  # each writer ran in a process of its own
            results = [result.output_for_node(f"writer_{w}") for w in range(WRITERS)]
    assert_every_row_once(WRITERS, results)


# --- a conflict Lance cannot resolve by itself is retried from the latest version, and counted --------------

def test_upsert_meeting_a_concurrent_overwrite_is_retried_and_counted(store, provider):
    records = writer_records(0, 0)
    rows = build_rows(ACME, records, provider.embed([r.text for r in records]), provider.info)
    writer = store.open_or_create(ACME, "main", provider.info)
    other = SpaceStore().open(ACME, "main")  # a second handle, as another process would hold
    other.table.add(rows.slice(0, 5), mode="overwrite")  # commits after `writer` read its version
    with pytest.raises(RuntimeError) as raw:  # what Lance alone does with the stale handle
        writer.table.merge_insert("id").when_not_matched_insert_all().execute(rows.slice(5, 1))
    assert is_commit_conflict(raw.value)
    stale = store.open(ACME, "main")
    other.table.add(rows.slice(0, 5), mode="overwrite")
    result = stale.upsert(rows, provider.info)
    assert result.conflicts_retried >= 1 and result.attempts == result.conflicts_retried + 1
    ids = stale.table.to_arrow().column("id").to_pylist()
    assert sorted(ids) == sorted(r.row_id for r in records)
    assert result.inserted == len(records) - 5


# --- two writers creating the full-text index of a new space at once: the one that loses finds the other's ---

def test_a_writer_whose_index_build_loses_to_another_writers_uses_that_index(store, provider):
    records = writer_records(0, 0)
    rows = build_rows(ACME, records, provider.embed([r.text for r in records]), provider.info)
    store.open_or_create(ACME, "main", provider.info).table.add(rows)  # rows, no index yet
    first, second = SpaceStore().open(ACME, "main"), SpaceStore().open(ACME, "main")  # two processes' handles
    assert not has_fts_index(first.table) and not has_fts_index(second.table)
    assert ensure_fts_index(first.table)  # commits the index after `second` read its version
    assert not ensure_fts_index(second.table)  # preempted: it finds the index the other writer built
    indexed = SpaceStore().open(ACME, "main")
    assert [i.index_type for i in indexed.table.list_indices()] == ["FTS"]
    assert indexed.table.search("tents", query_type="fts").limit(3).to_list()  # the one index serves


def test_two_maintenance_runs_building_the_vector_index_at_once_leave_one_index(store, provider):
    records = writer_records(0, 0)
    rows = build_rows(ACME, records, provider.embed([r.text for r in records]), provider.info)
    store.open_or_create(ACME, "main", provider.info).upsert(rows, provider.info)  # rows and the text index
    first, second = SpaceStore().open(ACME, "main"), SpaceStore().open(ACME, "main")
    assert "vector" in ensure_indexes(first, vector_min_rows=1).created
    report = ensure_indexes(second, vector_min_rows=1)  # its handle predates the first run's index
    assert report.created == () and report.vector_index
    assert sorted(i.index_type for i in SpaceStore().open(ACME, "main").table.list_indices()) == ["FTS", "IvfRq"]
