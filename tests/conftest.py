"""Shared fixtures: an isolated Nexus home per test, the real embedding model, and S3 on moto_server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from nexus_query.config import DEFAULT_CONFIG_PATH
from nexus_query.context import RequestContext
from nexus_query.embeddings import LocalProvider
from nexus_query.store import Record, SpaceStore, build_rows
from tests.process_guard import pytest_sessionfinish, pytest_sessionstart, stop_tree  # noqa: F401 (plugin hooks)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]


# Fixtures that start a server: a test using one (directly or through another fixture) is slow.
SERVER_FIXTURES = {"moto_endpoint", "postgres"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


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
    """End a server the test started and every process under it."""
    stop_tree(proc)


def start_nexus_serve(env: dict[str, str], **popen_kwargs) -> tuple[subprocess.Popen, int]:
    """`nexus serve` on a free loopback port, listening when this returns; the caller stops it."""
    port = free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "nexus")
    proc = subprocess.Popen([exe, "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                            env=env, **popen_kwargs)
    wait_for_port(port, proc)
    return proc, port


@pytest.fixture
def nexus_home(tmp_path, monkeypatch) -> Path:
    """Each test gets its own data root and the shipped default config, and no shared Dagster home
    (`make` exports DAGSTER_HOME; code that finds it unset uses a throwaway instance)."""
    home = tmp_path / "nexus-home"
    monkeypatch.setenv("NEXUS_HOME", str(home))
    monkeypatch.delenv("NEXUS_CONFIG", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return home


@contextmanager
def nexus_home_at(home: Path):
    """What ``nexus_home`` sets, for a fixture wider than one test (one that builds data once per module)."""
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


@pytest.fixture(scope="session")
def provider() -> LocalProvider:
    return LocalProvider()


@pytest.fixture
def store(nexus_home) -> SpaceStore:
    return SpaceStore()


def load_texts(store: SpaceStore, provider, ctx: RequestContext, space_id: str, texts: dict[str, str],
               **record_kwargs):
    """Embed ``{source: text}`` with the real model and upsert it into a space."""
    records = [Record(text=t, source=s, **record_kwargs) for s, t in texts.items()]
    space = store.open_or_create(ctx, space_id, provider.info)
    space.upsert(build_rows(ctx, records, provider.embed([r.text for r in records]), provider.info), provider.info)
    return space


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
