"""Quotas that cannot be walked past: waiting batches and what chunking makes of a long item count against
``max_rows_per_space`` at admission, the pipeline enforces it again before it writes a row, and a tenant's
landed bytes per UTC day are bounded (429 ``nexus.quota_exceeded`` with ``Retry-After``)."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import httpx
import pytest
import yaml

from nexus_pipelines.ingest.run_in_process import ingest_space_in_process
from nexus_pipelines.partitions import SpaceKey
from nexus_query.api import create_app
from nexus_query.api.server import background_server
from nexus_query.config import DEFAULT_CONFIG_PATH, NexusConfig
from nexus_query.context import RequestContext
from nexus_query.errors import QuotaExceeded
from nexus_query.landing import landing_zone
from nexus_query.quotas import check_landing_bytes, record_landing
from nexus_query.routing import RoutingRegistry
from nexus_query.store import SpaceStore
from tests.helpers import ACME_KEY, GLOBEX_KEY, assert_envelope, auth

ACME = RequestContext("acme")
ROW_QUOTA = 15
BYTES_PER_DAY = 40_000


@pytest.fixture
def server(tmp_path):
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["data_root"] = str(tmp_path / "home")
    raw["api"] = {"max_rows_per_space": ROW_QUOTA, "max_landing_bytes_per_day": BYTES_PER_DAY}
    registry = RoutingRegistry(NexusConfig.from_dict(raw))
    with background_server(create_app(registry)) as base_url, httpx.Client(base_url=base_url, timeout=60) as client:
        yield client, registry


def ingest(client: httpx.Client, space: str, items: list[dict], key: str = ACME_KEY) -> httpx.Response:
    return client.post(f"/nexus/spaces/{space}/ingest", headers=auth(key), json={"items": items})


def test_batches_waiting_to_be_written_count_against_the_row_quota(server):
    client, _ = server
    batch = [{"type": "text", "content": f"tent number {i}"} for i in range(ROW_QUOTA)]
    assert ingest(client, "walk", batch).status_code == 202
    error = assert_envelope(ingest(client, "walk", batch), 429, "nexus.quota_exceeded")
    assert error["waiting_rows"] == ROW_QUOTA and error["max_rows_per_space"] == ROW_QUOTA
    assert_envelope(ingest(client, "walk", batch[:1]), 429, "nexus.quota_exceeded")


def test_a_long_item_counts_as_the_rows_it_will_become(server):
    client, registry = server
    long_item = {"type": "text", "content": "A tent for four people, with a porch. " * 600}  # ~23,000 chars
    response = ingest(client, "long", [long_item])
    assert int(response.headers["Retry-After"]) > 0
    assert_envelope(response, 429, "nexus.quota_exceeded")
    assert landing_zone(ACME, registry).batch_ids("long") == []


def test_a_tenant_past_its_landed_bytes_for_the_day_gets_429_and_others_do_not(server):
    client, registry = server
    item = [{"type": "text", "content": "x" * 14_000}]  # 14 rows: within the row quota of each space
    accepted = [ingest(client, f"bytes{i}", item).status_code for i in range(2)]  # ~28 KB of 40 KB
    over = ingest(client, "bytes2", item)
    assert accepted == [202] * 2
    error = assert_envelope(over, 429, "nexus.quota_exceeded")
    assert error["max_landing_bytes_per_day"] == BYTES_PER_DAY and 0 < int(over.headers["Retry-After"]) <= 86400
    assert landing_zone(ACME, registry).batch_ids("bytes2") == []
    assert ingest(client, "bytes0", item, key=GLOBEX_KEY).status_code == 202


def test_the_daily_byte_quota_opens_again_at_utc_midnight(nexus_home):
    zone = landing_zone(ACME)
    evening, next_morning = datetime(2026, 3, 1, 23, 59, 30, tzinfo=UTC), datetime(2026, 3, 2, 0, 0, 1, tzinfo=UTC)
    record_landing(zone, 900, evening)
    with pytest.raises(QuotaExceeded) as refused:
        check_landing_bytes(1000, zone, 200, evening)
    assert refused.value.retry_after == 30
    check_landing_bytes(1000, zone, 200, next_morning)


@pytest.mark.slow
def test_a_run_past_the_row_quota_writes_nothing_fails_its_task_and_does_not_block_the_space(
        nexus_home, provider, monkeypatch):
    monkeypatch.setenv("NEXUS_MAX_ROWS_PER_SPACE", "3")
    zone, key = landing_zone(ACME), SpaceKey("acme", "default", "main")

    def run(task_id: str) -> bool:
        with dg.DagsterInstance.ephemeral() as instance:
            return ingest_space_in_process(key, instance=instance, task_id=task_id, progress=False).success

    def rows() -> int:
        return SpaceStore().open(ACME, "main").count()

    first = zone.land_batch("main", [{"type": "text", "content": f"Stove {i} burns white gas."} for i in range(2)])
    assert run(first.task_id) and rows() == 2
    # Landed past admission (as the CLI or a race would): the write-time check is what holds.
    over = zone.land_batch("main", [{"type": "text", "content": f"Lantern {i} runs on batteries."} for i in range(5)])
    assert not run(over.task_id) and rows() == 2
    refused = zone.read_task(over.task_id)
    assert refused.status == "failed" and "nexus.quota_exceeded" in refused.error
    last = zone.land_batch("main", [{"type": "text", "content": "Gift cards never expire."}])
    assert run(last.task_id) and rows() == 3
    assert zone.read_task(last.task_id).status == "succeeded"
    assert zone.read_task(over.task_id).status == "failed"
