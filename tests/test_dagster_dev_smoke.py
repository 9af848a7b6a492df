"""The code location as data engineers meet it: a real `dagster dev` on loopback, read and driven over
GraphQL, and `dg` reading the same definitions through [tool.dg]."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from nexus_query.context import RequestContext
from nexus_query.landing import landing_zone
from nexus_query.store import SpaceStore
from tests.helpers import REPO, free_port, poll, stop, wait_for_port
from tests.process_guard import describe, is_running, process_tree

BIN = Path(sys.executable).parent
LOCATION = {"repositoryLocationName": "nexus", "repositoryName": "__repository__"}
# Upstream of each ingest asset: conversation exports feed raw_docs, KPI facts land in the space table too.
INGEST = {"raw_docs": ["conversation_exports"], "chunks": ["raw_docs"], "embeddings": ["chunks"],
          "space_table": ["embeddings", "kpi_fact_docs"]}
CHECKS = ("vectors_valid", "ids_unique", "text_not_empty", "rows_belong_to_owner")
SECTIONS = 40  # rows enough for a HAZE map
DOCUMENT = "\n\n".join(f"## Topic {i}\n\n{w} tents, stoves and returns: note {i} of the {w} handbook."
                        for i, w in enumerate(["camping", "repair", "shipping", "billing"] * (SECTIONS // 4))).encode()


def graphql(http: httpx.Client, query: str, **variables) -> dict:
    response = http.post("/graphql", json={"query": query, "variables": variables})
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


@pytest.mark.slow
def test_dagster_dev_serves_the_ingest_graph_and_runs_a_partitioned_materialization(nexus_home, tmp_path):
    dagster_home = tmp_path / "dagster-home"
    dagster_home.mkdir()
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    port = free_port()
    log = (tmp_path / "dagster-dev.log").open("wb")
    proc = subprocess.Popen([str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "DAGSTER_HOME": str(dagster_home), "NEXUS_HOME": str(nexus_home),
                                 "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"})
    try:
        wait_for_port(port, proc, attempts=1800)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            def loaded() -> dict:
                return graphql(http, """{ workspaceOrError { ... on Workspace { locationEntries {
                    name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }""")

            entries = poll(lambda: [e for e in loaded()["workspaceOrError"]["locationEntries"]
                                    if e["loadStatus"] == "LOADED"], attempts=180)
            assert entries[0]["name"] == "nexus"
            assert entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation"

            nodes = graphql(http,
                            "{ assetNodes { assetKey { path } groupName isPartitioned dependencyKeys { path } } }")
            graph = {n["assetKey"]["path"][-1]: n for n in nodes["assetNodes"]}
            for asset, upstream in INGEST.items():
                assert graph[asset]["groupName"] == "ingest" and graph[asset]["isPartitioned"]
                assert sorted(d["path"][-1] for d in graph[asset]["dependencyKeys"]) == upstream

            # The partition first, then the file: a landing sensor that sees the file finds the partition there
            # and adds none (adding the same key at the same moment as a sensor fails in Dagster's storage,
            # a 500 here once). Landed only now, so the sensors' first ticks (at start-up) have nothing to
            # run; a later tick's run for this file queues behind ours (one run per tenant).
            added = graphql(http, """mutation($selector: RepositorySelector!) { addDynamicPartition(
                repositorySelector: $selector, partitionsDefName: "tenant_spaces", partitionKey: "acme.default.main")
                { __typename } }""", selector=LOCATION)["addDynamicPartition"]["__typename"]
            assert added == "AddDynamicPartitionSuccess"
            landing_zone(RequestContext("acme")).files.write_bytes_atomic(
                DOCUMENT, "landing", "main", "files", "handbook.md")
            launched = graphql(http, """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
                __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
                               params={"selector": {**LOCATION, "jobName": "ingest_space"}, "runConfigData": {},
                                       "executionMetadata": {"tags": [
                                           {"key": "dagster/partition", "value": "acme.default.main"},
                                           {"key": "nexus/tenant", "value": "acme"}]}})["launchRun"]
            assert launched["__typename"] == "LaunchRunSuccess", launched
            run_id = launched["run"]["runId"]
            status = lambda: graphql(http, "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",  # noqa: E731
                                     id=run_id)["runOrError"]["status"]
            final = poll(lambda: (s := status()) in ("SUCCESS", "FAILURE", "CANCELED") and s, attempts=600)
            assert final == "SUCCESS", (tmp_path / "dagster-dev.log").read_text()[-5000:]

            # The blocking checks were evaluated for this partition (unpartitioned results read "Not evaluated").
            for name in CHECKS:
                executions = graphql(http, """query($key: AssetKeyInput!, $name: String!) { assetCheckExecutions(
                    assetKey: $key, checkName: $name, partition: "acme.default.main", limit: 5) {
                    runId status partition evaluation { success } } }""",
                                     key={"path": ["space_table"]}, name=name)["assetCheckExecutions"]
                ours = [e for e in executions if e["runId"] == run_id]  # the landing sensor's run may follow
                assert [(e["partition"], e["status"], e["evaluation"]["success"]) for e in ours] \
                    == [("acme.default.main", "SUCCEEDED", True)], name
                assert {e["partition"] for e in executions} == {"acme.default.main"}

            # The HAZE map of the space: its materialization links the HTTP route and the stored pictures.
            mapped = graphql(http, """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
                __typename ... on LaunchRunSuccess { run { runId } } } }""",
                             params={"selector": {**LOCATION, "jobName": "haze_space"}, "runConfigData": {},
                                     "executionMetadata": {"tags": [
                                         {"key": "dagster/partition", "value": "acme.default.main"},
                                         {"key": "nexus/tenant", "value": "acme"}]}})["launchRun"]
            haze_run = mapped["run"]["runId"]
            haze_status = lambda: graphql(http, "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",  # noqa: E731
                                          id=haze_run)["runOrError"]["status"]
            final = poll(lambda: (s := haze_status()) in ("SUCCESS", "FAILURE", "CANCELED") and s, attempts=900)
            assert final == "SUCCESS", (tmp_path / "dagster-dev.log").read_text()[-5000:]
            materialization = graphql(http, """{ assetOrError(assetKey: {path: ["haze_projection"]}) { ... on Asset {
                assetMaterializations(partitions: ["acme.default.main"], limit: 1) { runId metadataEntries {
                label __typename ... on UrlMetadataEntry { url } ... on PathMetadataEntry { path } } } } } }""")
            (latest,) = materialization["assetOrError"]["assetMaterializations"]
            entries = {e["label"]: e for e in latest["metadataEntries"]}
            assert entries["html_map_url"]["__typename"] == "UrlMetadataEntry"
            assert entries["html_map_url"]["url"].startswith("http://127.0.0.1:8000/nexus/links/nxl1.")
            assert entries["map_png"]["url"].startswith("http://127.0.0.1:8000/nexus/links/nxl1.")
            assert entries["html_map"]["path"].endswith("map.html")
        assert SpaceStore().open(RequestContext("acme"), "main").count() == SECTIONS
    finally:
        started = process_tree(proc.pid)  # dagster dev, its webserver, daemon and code servers
        stop(proc)
        log.close()
    assert len(started) > 1, "dagster dev started no processes of its own"
    assert [describe(p) for p in started if is_running(p)] == []  # children of children included


@pytest.mark.slow
def test_dg_reads_the_code_location_from_pyproject(tmp_path):
    result = subprocess.run([str(BIN / "dg"), "list", "defs", "--json"], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "DAGSTER_HOME": str(tmp_path)}, timeout=600)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout[result.stdout.index("{"):])
    assets = {a["asset_key"]: a for a in listed["assets"]}
    assert {k: [*assets[k]["dependency_keys"]] for k in INGEST} == INGEST
    assert {"landing_sensor", "ingest_failure_sensor"} <= {s["name"] for s in listed["sensors"]}
