"""Plain helpers and constants that several test modules share; the fixtures live in ``conftest.py``.

Every test module imports them one way, ``from tests.helpers import ...``, and no test module imports
another. Only light modules are imported here (``conftest`` imports this file, so every run pays for it):
the helpers that drive a Dagster sensor or the ingest pipeline import ``nexus_pipelines`` when called."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import httpx
import lancedb
import numpy as np
import pytest

from nexus_query.cognition.bricks import block_documents
from nexus_query.context import RequestContext
from nexus_query.kpi import Series
from nexus_query.kpi.windows import from_datetime
from nexus_query.landing import landing_zone
from nexus_query.store import Record, SpaceStore, SpaceTable, build_rows
from tests.process_guard import stop_tree

if TYPE_CHECKING:
    import dagster as dg

    from nexus_pipelines.ingest.sources import LandingReader

REPO = Path(__file__).resolve().parents[1]
ACME = RequestContext("acme")
T = TypeVar("T")


# --- journeys: the CLI as a user runs it -----------------------------------------------------------------

BIN = Path(sys.executable).parent
# What a user's shell may hold that would point a journey at another config, key, server or instance.
USER_SETTINGS = ("NEXUS_CONFIG", "NEXUS_API_KEY", "NEXUS_URL", "DAGSTER_HOME")


def user_env(data_root: Path) -> dict[str, str]:
    """This process's environment on a fresh data root, without the user's Nexus settings."""
    env = {k: v for k, v in os.environ.items() if k not in USER_SETTINGS}
    env["NEXUS_HOME"] = str(data_root)
    return env


def run_nexus(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """A ``nexus`` command that must succeed."""
    done = subprocess.run([str(BIN / "nexus"), *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"nexus {' '.join(args)}: {done.stderr[-3000:]}"
    return done


def new_tenant(env: dict[str, str], tenant: str) -> dict[str, str]:
    """``nexus tenants add`` and ``nexus keys create``: the environment with the new key as NEXUS_API_KEY."""
    run_nexus(env, "tenants", "add", tenant)
    return {**env, "NEXUS_API_KEY": run_nexus(env, "keys", "create", "--tenant", tenant).stdout.strip()}


# --- servers and processes on loopback ------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen | None = None, attempts: int = 300) -> None:
    """Poll a loopback port a bounded number of times (about 30 s)."""
    for _ in range(attempts):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port}")


def stop(proc: subprocess.Popen) -> None:
    """End a server the test started and every process under it (dagster dev's webserver, daemon and code
    servers included)."""
    stop_tree(proc)


def start_nexus_serve(env: dict[str, str], **popen_kwargs) -> tuple[subprocess.Popen, int]:
    """`nexus serve` on a free loopback port, listening when this returns (it loads the model before it
    listens: up to a few minutes on loaded cores); the caller stops it."""
    port = free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "nexus")
    proc = subprocess.Popen([exe, "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                            env=env, **popen_kwargs)
    try:
        wait_for_port(port, proc, attempts=3000)
    except BaseException:
        stop(proc)
        raise
    return proc, port


def poll(what: Callable[[], T], attempts: int, pause: float = 1.0) -> T:
    """Call ``what`` until it returns something truthy, at most ``attempts`` times."""
    for _ in range(attempts):
        found = what()
        if found:
            return found
        time.sleep(pause)
    raise AssertionError(f"gave up after {attempts} attempts")


# --- Nexus homes and data -------------------------------------------------------------------------------

@contextmanager
def nexus_home_at(home: Path) -> Iterator[Path]:
    """What the ``nexus_home`` fixture sets, for a fixture wider than one test (one that builds data once
    per module)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEXUS_HOME", str(home))
        mp.delenv("NEXUS_CONFIG", raising=False)
        mp.delenv("DAGSTER_HOME", raising=False)
        yield home


def copy_home(built: Path, nexus_home: Path) -> SpaceStore:
    """A test's own copy of a Nexus home built once per module: copying the files is much cheaper than
    embedding the same documents again, and each test may still change its copy freely."""
    shutil.copytree(built, nexus_home, symlinks=True)
    return SpaceStore()


def load_texts(store: SpaceStore, provider, ctx: RequestContext, space_id: str, texts: dict[str, str],
               **record_kwargs):
    """Embed ``{source: text}`` with the real model and upsert it into a space."""
    records = [Record(text=t, source=s, **record_kwargs) for s, t in texts.items()]
    space = store.open_or_create(ctx, space_id, provider.info)
    space.upsert(build_rows(ctx, records, provider.embed([r.text for r in records]), provider.info), provider.info)
    return space


# --- the HTTP API ---------------------------------------------------------------------------------------

ACME_KEY, GLOBEX_KEY, INITECH_KEY = "acme-demo-key", "globex-demo-key", "initech-demo-key"
ACME_DOCS = {f"acme-{i}": f"Acme tent model {i} can be returned within 60 days." for i in range(8)}
GLOBEX_DOCS = {"globex-customs": "Customs clearance needs a commercial invoice and a packing list."}


def load(store: SpaceStore, provider, ctx: RequestContext | None, texts: dict[str, str], space_id="main"):
    """Embed and upsert ``{source: text}`` into a tenant's space, or the global space when ``ctx`` is None."""
    records = [Record(text=t, source=s, metadata={"tenant_doc": s}) for s, t in texts.items()]
    space = (store.open_global_for_system("dev", provider.info) if ctx is None
             else store.open_or_create(ctx, space_id, provider.info))
    space.upsert(build_rows(ctx, records, provider.embed([r.text for r in records]), provider.info), provider.info)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body["error"]


# --- landing and ingest ---------------------------------------------------------------------------------

CONVERSATIONS = Path(__file__).parent / "fixtures" / "conversations"


def tick(instance: dg.DagsterInstance, cursor: str | None = None, sensor=None) -> dg.SensorResult:
    """One evaluation of a landing sensor (the landing sensor unless told); its partition additions are
    applied as the daemon would."""
    import dagster as dg

    from nexus_pipelines.ingest.sensors import landing_sensor
    from nexus_pipelines.resources import NexusResource

    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"nexus": NexusResource()})
    result = (sensor or landing_sensor)(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def evaluate_schedule(schedule: dg.ScheduleDefinition, instance: dg.DagsterInstance, when: datetime,
                      resources: dict | None = None):
    """One evaluation of ``schedule`` at ``when``, as the daemon does it: inside the context's ``with``.
    A schedule context reads a persistent instance anew from its ref and enters it; left open, that
    instance is exited only when garbage collection finds the context, in whatever test runs then,
    and the exit puts back a Dagster storage whose instance is gone (``materialize`` there fails with
    "Attempted to resolve undefined DagsterInstance weakref")."""
    import dagster as dg

    with dg.build_schedule_context(instance=instance, scheduled_execution_time=when, resources=resources) as context:
        return schedule(context)


def land(ctx: RequestContext, name: str, data: bytes | None = None, space_id: str = "main") -> str:
    """Drop an export where ingestion reads chat exports (as `nexus cognition import` does)."""
    path = f"landing/{space_id}/files/conversations/{name}"
    landing_zone(ctx).files.write_bytes_atomic(data if data is not None else (CONVERSATIONS / name).read_bytes(),
                                               path)
    return path


def bricks_of(provider, ctx: RequestContext, space_id: str = "main") -> tuple[list[Record], LandingReader]:
    """The ingest pipeline's steps without Dagster: the landing zone's documents, chunked."""
    from nexus_pipelines.ingest.chunking import Chunker
    from nexus_pipelines.ingest.pipeline import ChunkStats, chunk_batches, chunk_records
    from nexus_pipelines.ingest.sources import LandingReader

    reader = LandingReader(landing_zone(ctx), space_id)
    chunks = chunk_batches(reader.batches(), Chunker.for_provider(provider), ChunkStats())
    return [r for batch in chunks for r in chunk_records(batch)], reader


def ingest_fixture(store, provider, ctx: RequestContext, *names: str, space_id: str = "main") -> list[Record]:
    """Land exports and ingest the space's landing zone: sources stored, bricks embedded and upserted."""
    from nexus_pipelines.common.load import upsert_records

    for name in names:
        land(ctx, name, space_id=space_id)
    records, _ = bricks_of(provider, ctx, space_id)
    upsert_records(store.open_or_create(ctx, space_id, provider.info), ctx, records, provider)
    return records


def unchunked_bricks(conversation, source_file: str) -> list[Record]:
    """Rows placed by hand for a conversation of short blocks (each block is one chunk)."""
    return [Record(text=d.text, source=d.doc_id, metadata=d.metadata)
            for d in block_documents(conversation, source_file)]


# --- erasure: a canary that must leave no byte behind -----------------------------------------------------

PARTITION = "acme.default.main"
# Lower case: the full-text index stores tokens lower-cased, so the byte scan finds it there too.
CANARY = "zqxv7canarytoken"
NOTE = f"""# Warehouse access

The loading dock door code for the night shift is {CANARY}; change it after every audit.
"""
OTHER = "Tents are returned dry and packed in their stuff sack, within sixty days, with the receipt."


def files_with(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def lance_versions_with(root: Path, needle: str) -> list[str]:
    """Every version of every Lance dataset under ``root``, read through Lance (compressed pages
    included), whose text holds ``needle``."""
    found = []
    for dataset in root.rglob("*.lance"):
        if not dataset.is_dir():
            continue
        table = lancedb.connect(str(dataset.parent)).open_table(dataset.name[:-len(".lance")])
        for version in table.list_versions():
            table.checkout(version["version"])
            texts = table.to_arrow().column("text").to_pylist()
            if any(needle in t for t in texts):
                found.append(f"{dataset}@{version['version']}")
    return found


# --- KPI series with known, injected events -------------------------------------------------------------

END = datetime(2026, 11, 16, 14, tzinfo=UTC)  # end of the last complete hour
READINGS_PER_HOUR = 12


def series(values, *, minutes: int = 5, end: datetime = END, metric: str = "checkout_latency_p95") -> Series:
    """Readings every ``minutes`` minutes, the last one ``minutes`` before ``end``."""
    values = np.asarray(values, dtype=float)
    start = end - timedelta(minutes=minutes * values.size)
    stamps = np.array([from_datetime(start + timedelta(minutes=minutes * i)) for i in range(values.size)])
    return Series(metric, (), stamps, values)


def noisy(hours: int = 48, level: float = 180.0, noise: float = 0.02, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return level * (1 + noise * rng.standard_normal(hours * READINGS_PER_HOUR))


# --- HAZE: four clearly separate topics, 50 texts each, and headless Chromium ------------------------------

TOPICS: dict[str, tuple[list[str], list[str]]] = {
    "camping": (
        ["tent", "sleeping bag", "camp stove", "hiking backpack", "trekking poles"],
        ["The {x} kept us dry during the storm on the mountain trail.",
         "How do I pitch the {x} on rocky ground at the campsite?",
         "Our {x} is light enough for a weekend hike in the forest.",
         "Pack the {x} before the canoe trip to the lake.",
         "The {x} survived three nights of camping in the snow.",
         "Which {x} do rangers recommend for alpine camping?",
         "I left the {x} at the trailhead after the hike.",
         "Dry the {x} in the sun after camping in the rain.",
         "The campsite shop rents a {x} for backpacking trips.",
         "A good {x} matters on a long wilderness trek."]),
    "payments": (
        ["credit card", "refund", "invoice", "chargeback", "payment terminal"],
        ["The bank declined the {x} because of insufficient funds.",
         "How long does a {x} take to reach the customer's account?",
         "Accounting flagged the {x} as a duplicate charge.",
         "The {x} failed with a fraud warning from the card issuer.",
         "Send the {x} to finance before the end of the billing month.",
         "The merchant disputed the {x} with the acquiring bank.",
         "A {x} in euros was converted at the daily exchange rate.",
         "The {x} was settled two business days after authorisation.",
         "Tax was missing from the {x} so the payment was rejected.",
         "The {x} appears twice on the customer's bank statement."]),
    "shipping": (
        ["parcel", "courier", "delivery van", "tracking number", "pallet"],
        ["The {x} left the distribution warehouse this morning.",
         "Customs held the {x} at the border for inspection.",
         "The {x} was delivered to the wrong street address.",
         "Our {x} arrives at the loading dock before noon.",
         "Scan the {x} at the sorting hub before dispatch.",
         "The {x} was delayed by snow on the motorway.",
         "Print the label for the {x} and book the freight pickup.",
         "The {x} missed its connection at the regional depot.",
         "Weigh the {x} before it goes on the lorry.",
         "Track the {x} until it reaches the customer's door."]),
    "hr": (
        ["vacation days", "parental leave", "salary review", "sick leave", "pension plan"],
        ["New employees ask how many {x} they get in the first year.",
         "Managers approve {x} in the staff portal.",
         "The union negotiated better {x} for part-time workers.",
         "Human resources updated the {x} policy in the employee handbook.",
         "Request your {x} at least two weeks ahead from your manager.",
         "The {x} rules differ for contractors and permanent staff.",
         "Payroll records {x} at the end of every month.",
         "Ask the people team about {x} after your probation period.",
         "The works council discussed {x} at the staff meeting.",
         "Your contract lists the {x} you are entitled to as an employee."]),
}
DISTINCTIVE = {  # words c-TF-IDF should find for each topic's cluster
    "camping": {"tent", "camping", "hike", "trail", "campsite", "sleeping", "stove", "backpack", "trekking",
                "poles", "bag", "camp", "hiking"},
    "payments": {"card", "credit", "refund", "invoice", "chargeback", "payment", "terminal", "bank", "charge"},
    "shipping": {"parcel", "courier", "delivery", "van", "tracking", "pallet", "number", "warehouse", "depot"},
    "hr": {"vacation", "days", "parental", "leave", "salary", "review", "sick", "pension", "plan", "employees",
           "staff", "employee"},
}


def corpus() -> list[tuple[str, str, str]]:
    """(source, text, topic) for every text, in a fixed order."""
    rows = []
    for topic, (things, templates) in TOPICS.items():
        for i, template in enumerate(templates):
            for j, thing in enumerate(things):
                rows.append((f"{topic}-{i}-{j}", template.format(x=thing), topic))
    return rows


def load_topics(store: SpaceStore, provider, ctx: RequestContext, space_id: str, rows, vectors) -> SpaceTable:
    records = [Record(text=text, source=source, metadata={"topic": topic}) for source, text, topic in rows]
    space = store.open_or_create(ctx, space_id, provider.info)
    space.upsert(build_rows(ctx, records, vectors, provider.info), provider.info)
    return store.open(ctx, space_id)


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1000,800"]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Chromium is needed for the HTML map tests: `make test` installs it (apt-get install chromium)")
    return found
