"""Shared fixtures: an isolated Nexus home per test, the real embedding model, S3 on moto_server, the HAZE
corpus and a server over the API's tenants. Plain helpers are in ``tests/helpers.py``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import lancedb
import numpy as np
import pyarrow as pa
import pytest
import yaml

from nexus_query.api import create_app
from nexus_query.api.server import background_server
from nexus_query.config import DEFAULT_CONFIG_PATH, load_config
from nexus_query.context import RequestContext
from nexus_query.embeddings import LocalProvider
from nexus_query.routing import RoutingRegistry
from nexus_query.store import SpaceStore
from tests.helpers import ACME_DOCS, GLOBEX_DOCS, REPO, corpus, free_port, load, stop, wait_for_port
from tests.process_guard import pytest_sessionfinish, pytest_sessionstart  # noqa: F401 (plugin hooks)


@pytest.fixture(autouse=True)
def no_leftover_dagster_defs_state():
    """Each test starts without a current DefsStateStorage. Dagster keeps it in a ContextVar that
    ``DagsterInstance.__enter__`` sets; left over from an earlier test of the same worker, it names an
    instance that is gone, and a ``materialize`` without an instance then fails while loading definitions
    ("Attempted to resolve undefined DagsterInstance weakref")."""
    from dagster._core.storage.defs_state.base import _current_storage

    _current_storage.set(None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """A test exits every Dagster instance it enters. One left entered (a schedule context used without
    ``with`` enters one from its ref) is exited by garbage collection in whatever test runs then, and that
    exit puts back a DefsStateStorage whose instance is gone: the ``materialize`` there fails as above
    (one CI run did, in test_cognition_pipeline.py)."""
    from dagster._core.storage.defs_state.base import _current_storage

    before = _current_storage.get()
    outcome = yield
    if _current_storage.get() is not before:
        raise AssertionError("this test entered a Dagster instance and never exited it (use `with`)")
    return outcome


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# One folder of ONNX exports for every test's data root (and the processes they start): exporting the model
# takes torch 10-30 s, once per session instead of once per test.
os.environ.setdefault("NEXUS_MODEL_CACHE", str(REPO / ".pytest_cache" / "nexus-models"))


# Fixtures that start a server: a test using one (directly or through another fixture) is slow.
SERVER_FIXTURES = {"moto_endpoint", "postgres"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def nexus_home(tmp_path, monkeypatch) -> Path:
    """Each test gets its own data root and the shipped default config, and no shared Dagster home
    (`make` exports DAGSTER_HOME; code that finds it unset uses a throwaway instance)."""
    home = tmp_path / "nexus-home"
    monkeypatch.setenv("NEXUS_HOME", str(home))
    monkeypatch.delenv("NEXUS_CONFIG", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return home


@pytest.fixture
def dagster_home(nexus_home, tmp_path, monkeypatch) -> Path:
    """A Dagster instance folder of the test's own, with the project's dagster.yaml (as `make dev` links it)."""
    home = tmp_path / "dagster-home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def provider() -> LocalProvider:
    return LocalProvider()


@pytest.fixture
def store(nexus_home) -> SpaceStore:
    return SpaceStore()


@pytest.fixture(scope="session")
def moto_endpoint():
    """A real S3 API (moto_server) on loopback for the whole session, stopped at the end."""
    port = free_port()
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@pytest.fixture
def s3_config(moto_endpoint, tmp_path, monkeypatch) -> Path:
    """The shipped config with every tenant store moved to a fresh bucket on moto_server."""
    import boto3

    bucket = f"nexus-{tmp_path.name.lower().replace('_', '-')[-40:]}".rstrip("-")
    for var, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(var, value)
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    options = {"endpoint": moto_endpoint, "allow_http": True, "region": "us-east-1"}
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["data_root"] = str(tmp_path / "nexus-home")
    env = raw["environments"]["dev"]
    env["defaults"] = {
        "nexus_store": {"uri": f"s3://{bucket}/lance", "storage_options": options},
        "nexus_blob_store": {"protocol": "s3", "bucket": bucket, "prefix": "blobs", "storage_options": options},
        "nexus_projection_store": {"protocol": "s3", "bucket": bucket, "prefix": "projections",
                                   "storage_options": options},
    }
    env["global"] = {"nexus_store": {"uri": f"s3://{bucket}/lance-global", "storage_options": options}}
    path = tmp_path / "nexus-s3.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("NEXUS_CONFIG", str(path))
    return path


@pytest.fixture(scope="session")
def topic_corpus(provider) -> tuple[list[tuple[str, str, str]], np.ndarray]:
    """The HAZE tests' corpus (``helpers.corpus``) and its vectors from the real model, embedded once per session."""
    rows = corpus()
    return rows, provider.embed([text for _, text, _ in rows])


@pytest.fixture(scope="module")
def api(tmp_path_factory, provider):
    """A Nexus home with acme, globex and global data, a broken space, and a server over it."""
    home = tmp_path_factory.mktemp("api-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEXUS_HOME", str(home))
        mp.delenv("NEXUS_CONFIG", raising=False)
        registry = RoutingRegistry(load_config())
    store = SpaceStore(registry)
    load(store, provider, RequestContext("acme"), ACME_DOCS)
    load(store, provider, RequestContext("globex"), GLOBEX_DOCS)
    load(store, provider, None, {"glossary-p95": "p95 latency: 95 of 100 requests are faster."})
    # a table Nexus did not write (no text, no metadata): reading it fails in an unexpected way
    location = store.location(RequestContext("acme"), "broken")
    lancedb.connect(location.db_uri).create_table("broken", pa.table({
        "id": ["x"], "vector": pa.FixedSizeListArray.from_arrays(pa.array(np.ones(384, np.float32)), 384)}))
    with background_server(create_app(registry)) as base_url:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            yield client, registry, base_url
