"""Links in the Dagster UI open with a click: every URL a HAZE or KPI materialization carries is a capability
link that `nexus serve` answers without an API key (the right picture or map, the right content type),
signed, scoped to one file of one tenant's projection store, and expiring."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import httpx
import pytest

from nexus_pipelines.definitions import defs
from nexus_pipelines.haze.assets import haze_projection
from nexus_pipelines.resources import NexusResource
from nexus_query.api import create_app
from nexus_query.api.server import background_server
from nexus_query.config import default_config
from nexus_query.context import RequestContext
from nexus_query.errors import Forbidden
from nexus_query.links import LinkExpired, LinkInvalid, issue_link, open_link, read_linked, target_for
from nexus_query.paths import TenantFiles
from nexus_query.routing import RoutingRegistry
from tests.helpers import CHROMIUM_FLAGS, chromium, free_port, load_topics

ACME, GLOBEX = RequestContext("acme"), RequestContext("globex")
PARTITION = "acme.default.main"
KPI = Path(__file__).resolve().parents[1] / "examples" / "data" / "acme" / "kpi"
CHART = ("kpi", "main", "charts", "checkout_p95-1a2b3c4d.png")


def url_entries(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    return {key: value.value for event in result.get_asset_materialization_events()
            for key, value in event.materialization.metadata.items() if isinstance(value, dg.UrlMetadataValue)}


@pytest.fixture
def public_port(nexus_home, monkeypatch) -> int:
    port = free_port()
    monkeypatch.setenv("NEXUS_PUBLIC_URL", f"http://127.0.0.1:{port}")
    return port


def test_every_url_in_haze_and_kpi_metadata_opens_without_a_key_with_its_content_type(
        public_port, store, provider, topic_corpus, tmp_path):
    rows, vectors = topic_corpus
    load_topics(store, provider, ACME, "main", rows[::2], vectors[::2])
    files = TenantFiles.for_tenant(RoutingRegistry.default().blob_route(ACME), ACME)
    files.write_bytes_atomic((KPI / "catalogue.yaml").read_bytes(), "kpi", "main", "catalogue.yaml")
    files.write_bytes_atomic((KPI / "measurements.csv").read_bytes(), "kpi", "main", "measurements", "m.csv")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenant_spaces", [PARTITION])
        haze = dg.materialize([haze_projection], partition_key=PARTITION, instance=instance,
                              resources={"nexus": NexusResource()})
        kpi = defs.resolve_job_def("kpi_facts_job").execute_in_process(
            partition_key=PARTITION, instance=instance,
            run_config={"ops": {"kpi_fact_docs": {"config": {"as_of": datetime(2026, 11, 16, 14, 5, tzinfo=UTC)
                                                                        .isoformat()}}}})
    urls = {**url_entries(haze), **url_entries(kpi)}
    assert {"map_png", "html_map_url"} <= set(urls) and sum(k.startswith("chart: ") for k in urls) >= 2
    assert all(url.startswith(f"http://127.0.0.1:{public_port}/nexus/links/nxl1.") for url in urls.values())

    with background_server(create_app(), port=public_port):
        for name, url in urls.items():
            answer = httpx.get(url)  # no Authorization header: what a click in the Dagster UI sends
            expected = "text/html; charset=utf-8" if name == "html_map_url" else "image/png"
            assert (answer.status_code, answer.headers["content-type"]) == (200, expected), name
            assert answer.content.startswith(b"<!doctype html>" if name == "html_map_url" else b"\x89PNG"), name
        # in a real browser: the map draws its points
        dom = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                              "--virtual-time-budget=10000", "--dump-dom", urls["html_map_url"]],
                             capture_output=True, text=True, timeout=120).stdout
        assert 'data-drawn-points="100"' in dom
        # the rest of /nexus/ still wants a key
        assert httpx.get(urls["map_png"].split("/nexus/")[0] + "/nexus/tasks").status_code == 401


def test_a_link_is_bound_to_its_file_and_tenant_and_expires(nexus_home):
    config = default_config()
    link = issue_link(config, target_for("dev", "acme", "default", *CHART), now=1_000)
    token = link.rsplit("/", 1)[1]
    target = open_link(config, token, now=1_000 + 86_400)
    assert (target.tenant, target.path, target.content_type) == ("acme", "/".join(CHART), "image/png")
    with pytest.raises(LinkExpired):
        open_link(config, token, now=1_000 + 31 * 86_400)  # links.ttl_days: 30

    prefix, payload, signature = token.split(".")
    other = issue_link(config, target_for("dev", "globex", "default", *CHART), now=1_000).rsplit("/", 1)[1]
    for forged in (f"{prefix}.{other.split('.')[1]}.{signature}",  # globex's payload, acme's signature
                   f"{prefix}.{payload}.{signature[:-2]}AA", "nxl1.e30.e30", "nx1." + token[5:], "x" * 3000):
        with pytest.raises(LinkInvalid):
            open_link(config, forged, now=1_000)


@pytest.mark.parametrize("parts", [("landing", "main", "batches", "b.json"), ("erasures", "r.json"),
                                   ("haze", "main", "snapshots", "s1", "points.parquet"),
                                   ("haze", "..", "x", "map.png")])
def test_only_maps_pictures_and_charts_can_be_linked(nexus_home, parts):
    with pytest.raises(Forbidden):
        target_for("dev", "acme", "default", *parts)


def test_a_link_to_a_file_that_is_gone_answers_404_and_a_stale_one_410(public_port, nexus_home):
    registry = RoutingRegistry.default()
    projection = TenantFiles.for_tenant(registry.projection_route(ACME), ACME)
    projection.write_bytes_atomic(b"\x89PNG fake", *CHART)
    link = issue_link(registry.config, target_for("dev", "acme", "default", *CHART))
    assert read_linked(registry, open_link(registry.config, link.rsplit("/", 1)[1])) == b"\x89PNG fake"
    stale = issue_link(registry.config, target_for("dev", "acme", "default", *CHART), now=time.time() - 40 * 86_400)
    with background_server(create_app(), port=public_port):
        assert httpx.get(link).status_code == 200
        assert httpx.get(stale).json()["error"]["code"] == "nexus.link_expired"
        projection.fs.rm(projection.path(*CHART))  # the chart was replaced, the space erased
        gone = httpx.get(link)
        assert (gone.status_code, gone.json()["error"]["code"]) == (404, "nexus.link_invalid")
        assert "acme" not in gone.text and "charts" not in gone.text  # says nothing about what it named
