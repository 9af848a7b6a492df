"""`nexus mcp` with the official MCP SDK client against a real server subprocess: over stdio (the key in
NEXUS_API_KEY) and over streamable HTTP on loopback (a Bearer key on every request)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from mcp import ClientSession, McpError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from nexus_query.cli import main
from nexus_query.cognition import agent_rules
from nexus_query.context import RequestContext
from nexus_query.store import SpaceStore
from tests.helpers import (
    ACME,
    ACME_DOCS,
    ACME_KEY,
    GLOBEX_DOCS,
    GLOBEX_KEY,
    INITECH_KEY,
    REPO,
    copy_home,
    free_port,
    ingest_fixture,
    load,
    load_texts,
    nexus_home_at,
    stop,
    wait_for_port,
)

NEXUS = os.path.join(os.path.dirname(sys.executable), "nexus")
TOOLS = {"nexus_find", "nexus_store", "nexus_assemble", "nexus_artifact", "nexus_kpi_status", "nexus_forget",
         "nexus_spaces"}
TOPIC = "what to do with an Embercore stove from batch EC-2312"
STATUS = {"kind": "kpi_fact", "fact_type": "status", "metric": "checkout_latency_p95", "series": "web",
          "as_of": "2026-12-01T00:00:00Z", "assessment": "within_band"}
T = TypeVar("T")


@pytest.fixture(scope="module")
def built_home(tmp_path_factory, provider) -> Path:
    """acme: documents, a KPI status fact and a chat export (two conversations with messages) in `main`;
    globex: its own documents; a global space. Embedded once per module."""
    with nexus_home_at(tmp_path_factory.mktemp("mcp") / "nexus-home") as home:
        store = SpaceStore()
        load(store, provider, ACME, ACME_DOCS)
        load(store, provider, RequestContext("globex"), GLOBEX_DOCS)
        load(store, provider, None, {"glossary-p95": "p95 latency: 95 of 100 requests are faster."})
        load_texts(store, provider, ACME, "main", {"kpi-status-p95": "checkout_latency_p95 (web) is 182 ms, "
                                                                     "within its usual range."},
                   type="kpi", metadata=STATUS)
        ingest_fixture(store, provider, ACME, "claude_conversations.json")
    return home


@pytest.fixture
def home(built_home, nexus_home) -> Path:
    copy_home(built_home, nexus_home)
    return nexus_home


def stdio(key: str | None, session: Callable[[ClientSession], Awaitable[T]]) -> T:
    """Run ``session`` against a fresh `nexus mcp` (stdio) whose key is ``key``."""
    env = {k: v for k, v in os.environ.items() if k != "NEXUS_API_KEY"}
    if key is not None:
        env["NEXUS_API_KEY"] = key

    async def run() -> T:
        async with stdio_client(StdioServerParameters(command=NEXUS, args=["mcp"], env=env)) as (read, write):
            async with ClientSession(read, write) as s:
                await s.initialize()
                return await session(s)

    return asyncio.run(run())


def text(result: CallToolResult) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


def error_code(result: CallToolResult) -> str:
    assert result.isError, text(result)
    assert "Traceback" not in text(result)
    return result.structuredContent["error"]["code"]


async def call(s: ClientSession, tool: str, **arguments: Any) -> CallToolResult:
    return await s.call_tool(tool, arguments)


def test_stdio_lists_every_tool_with_schemas_and_annotations_and_the_resource_and_prompts(home):
    async def listing(s: ClientSession):
        return (await s.list_tools()).tools, await s.list_resource_templates(), await s.list_prompts(), \
            await s.get_prompt("cognition_rules")

    tools, templates, prompts, rules = stdio(ACME_KEY, listing)
    by_name = {t.name: t for t in tools}
    assert set(by_name) == TOOLS
    for tool in tools:
        assert tool.description and tool.inputSchema["type"] == "object" and tool.outputSchema, tool.name
        assert tool.annotations is not None and tool.annotations.readOnlyHint is not None, tool.name
    assert by_name["nexus_find"].annotations.readOnlyHint is True
    assert by_name["nexus_forget"].annotations.destructiveHint is True
    assert by_name["nexus_find"].inputSchema["required"] == ["query"]
    assert by_name["nexus_forget"].inputSchema["required"] == ["space"]
    assert [t.uriTemplate for t in templates.resourceTemplates] == ["nexus://artifacts/{artifact_id}"]
    assert {p.name for p in prompts.prompts} == {"cognition_rules", "cited_answer"}
    assert rules.messages[0].content.text == agent_rules()


def test_stdio_finds_with_scores_and_sources_and_reads_kpi_status_and_spaces(home):
    async def reads(s: ClientSession):
        return (await call(s, "nexus_find", query="how long can I return a tent?", top_k=3),
                await call(s, "nexus_find", query="p95 latency meaning", include_global=True, top_k=20),
                await call(s, "nexus_kpi_status"), await call(s, "nexus_spaces"))

    found, with_global, kpi, spaces = stdio(ACME_KEY, reads)
    hits = found.structuredContent["hits"]
    assert not found.isError and len(hits) == 3
    assert all(h["source"] in ACME_DOCS and 0 < h["score"] <= 1 and h["score_details"] for h in hits)
    assert hits[0]["source"] in text(found) and "60 days" in text(found)
    assert "glossary-p95" in {h["source"] for h in with_global.structuredContent["hits"] if h["space"] == "global"}
    assert [f["metric"] for f in kpi.structuredContent["status"]] == ["checkout_latency_p95"]
    assert "182 ms" in text(kpi)
    main, glob = spaces.structuredContent["spaces"]
    assert (main["space_id"], main["documents"], main["kpi_facts"], main["conversations"]) == ("main", 8, 1, 2)
    assert (glob["scope"], glob["read_only"]) == ("global", True)


def test_stdio_store_wait_makes_the_text_findable_and_forget_makes_it_unfindable(home):
    fact = "The parking code for the east gate of the Søndre depot is 4417-quartz."

    async def journey(s: ClientSession):
        stored = await call(s, "nexus_store", text=fact, metadata={"from": "agent"}, id="parking-note", wait=True)
        assert not stored.isError, text(stored)
        found = await call(s, "nexus_find", query="east gate parking code", top_k=1)
        forgot = await call(s, "nexus_forget", space="main", doc_ids=[stored.structuredContent["doc_id"]])
        after = await call(s, "nexus_find", query="east gate parking code", top_k=10)
        return stored, found, forgot, after

    stored, found, forgot, after = stdio(ACME_KEY, journey)
    assert not stored.isError and stored.structuredContent["queryable"] is True, text(stored)
    assert stored.structuredContent["task"]["status"] == "succeeded"
    hit = found.structuredContent["hits"][0]
    assert hit["content"] == fact and hit["metadata"]["from"] == "agent"
    assert not forgot.isError and forgot.structuredContent["status"] == "succeeded", text(forgot)
    assert forgot.structuredContent["receipt"]
    assert after.structuredContent["hits"] and "4417" not in text(after)
    assert "parking-note" not in {h["source"] for h in after.structuredContent["hits"]}


def test_stdio_store_without_wait_answers_with_the_queued_task(home):
    stored = stdio(ACME_KEY, lambda s: call(s, "nexus_store", text="A note for later.", space="notes"))
    assert not stored.isError and stored.structuredContent["task"]["status"] == "queued"
    assert stored.structuredContent["queryable"] is False


def test_stdio_assemble_gives_the_rules_first_and_the_artifact_reads_back_as_tool_resource_and_prompt(home):
    async def journey(s: ClientSession):
        made = await call(s, "nexus_assemble", topic=TOPIC, k=5)
        artifact_id = made.structuredContent["artifact_id"]
        read = await call(s, "nexus_artifact", artifact_id=artifact_id)
        resource = await s.read_resource(made.structuredContent["uri"])
        prompt = await s.get_prompt("cited_answer", {"artifact_id": artifact_id, "question": "Which batch?"})
        return made, read, resource, prompt

    made, read, resource, prompt = stdio(ACME_KEY, journey)
    assert not made.isError and made.structuredContent["coverage_status"] == "ASSEMBLED"
    assert len(made.structuredContent["derived_from"]) == 5
    rules = agent_rules().rstrip()
    assert text(made).startswith(rules) and made.structuredContent["artifact_id"] in text(made)
    assert text(read) == text(made)
    assert resource.contents[0].text == text(made)
    assert prompt.messages[0].content.text.startswith(rules) and "Which batch?" in prompt.messages[0].content.text


def test_stdio_errors_are_tool_errors_with_the_envelope_code_and_the_field(home):
    async def errors(s: ClientSession):
        return [await call(s, "nexus_find", query="tent", space="nosuchspace"),
                await call(s, "nexus_find", query="tent", top_k=0),
                await call(s, "nexus_find", query="tent", spcae="main"),
                await call(s, "nexus_find", query="tent", space="Not A Space!"),
                await call(s, "nexus_store", text="x", id="bad/id"),
                await call(s, "nexus_forget", space="main"),
                await call(s, "nexus_artifact", artifact_id="sha256:" + "0" * 64)]

    not_found, top_k, misspelt, bad_space, bad_id, no_names, no_artifact = stdio(ACME_KEY, errors)
    assert error_code(not_found) == "nexus.space_not_found" and "nosuchspace" in text(not_found)
    assert error_code(top_k) == "nexus.validation_failed" and top_k.structuredContent["error"]["field"] == "top_k"
    assert error_code(misspelt) == "nexus.validation_failed" and "spcae" in text(misspelt)
    assert error_code(bad_space) == "nexus.invalid_id", bad_space.structuredContent
    assert bad_id.isError and bad_id.structuredContent["error"]["field"] == "id"
    assert no_names.isError and no_names.structuredContent["error"]["field"] in ("sources", "doc_ids")
    assert error_code(no_artifact) == "nexus.not_found"

    missing_route = stdio(INITECH_KEY, lambda s: call(s, "nexus_store", text="hello"))
    assert error_code(missing_route) == "nexus_store.missing_route"


def test_stdio_without_a_valid_key_exits_with_a_message(home):
    for key in (None, "not-a-key"):
        env = {k: v for k, v in os.environ.items() if k != "NEXUS_API_KEY"} | ({"NEXUS_API_KEY": key} if key else {})
        done = subprocess.run([NEXUS, "mcp"], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode != 0 and done.stdout == ""
        assert "nexus.unauthorized" in done.stderr or "NEXUS_API_KEY" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_another_tenants_key_sees_nothing_of_acme_through_any_tool_or_resource(home):
    artifact = stdio(ACME_KEY, lambda s: call(s, "nexus_assemble", topic=TOPIC, k=5)).structuredContent

    async def globex(s: ClientSession):
        found = await call(s, "nexus_find", query="how long can I return a tent?", top_k=20)
        assembled = await call(s, "nexus_assemble", topic=TOPIC)
        read = await call(s, "nexus_artifact", artifact_id=artifact["artifact_id"])
        try:
            resource: Any = await s.read_resource(artifact["uri"])
        except McpError as exc:
            resource = exc
        kpi = await call(s, "nexus_kpi_status")
        spaces = await call(s, "nexus_spaces")
        forget = await call(s, "nexus_forget", space="main", sources=["acme-1"])
        return found, assembled, read, resource, kpi, spaces, forget

    found, assembled, read, resource, kpi, spaces, forget = stdio(GLOBEX_KEY, globex)
    assert {h["source"] for h in found.structuredContent["hits"]} == set(GLOBEX_DOCS)
    assert "tent" not in text(found).lower()
    assert assembled.isError or assembled.structuredContent["coverage_status"] == "NO_RECALL_MATCHES"
    assert error_code(read) == "nexus.not_found"
    assert isinstance(resource, McpError) and "nexus.not_found" in str(resource)
    assert kpi.structuredContent["status"] == [] and "182" not in text(kpi)
    assert [s["space_id"] for s in spaces.structuredContent["spaces"]] == ["main", "global"]
    assert spaces.structuredContent["spaces"][0]["documents"] == len(GLOBEX_DOCS)
    assert forget.isError or forget.structuredContent["receipt"]["documents"] == 0  # its own space: no acme-1
    still = stdio(ACME_KEY, lambda s: call(s, "nexus_find", query="tent model 1", top_k=8))
    assert "acme-1" in {h["source"] for h in still.structuredContent["hits"]}


@pytest.fixture
def http_server(home):
    """`nexus mcp --transport http` on a free loopback port; no key in its environment."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "NEXUS_API_KEY"}
    proc = subprocess.Popen([NEXUS, "mcp", "--transport", "http", "--host", "127.0.0.1", "--port", str(port)],
                            env=env)
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop(proc)


def over_http(url: str, key: str, session: Callable[[ClientSession], Awaitable[T]]) -> T:
    async def run() -> T:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=120) as http:
            async with streamable_http_client(url, http_client=http) as (read, write, _):
                async with ClientSession(read, write) as s:
                    await s.initialize()
                    return await session(s)

    return asyncio.run(run())


def test_http_refuses_a_request_without_a_valid_key(http_server):
    hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
             "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                        "clientInfo": {"name": "probe", "version": "0"}}}
    headers = {"Accept": "application/json, text/event-stream"}
    for auth in ({}, {"Authorization": "Bearer not-a-key"}, {"Authorization": "Basic YWNtZQ=="}):
        response = httpx.post(http_server, json=hello, headers=headers | auth, timeout=60)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "nexus.unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")
    with pytest.raises(Exception):  # noqa: B017 (the SDK wraps the 401 in its own exception groups)
        over_http(http_server, "not-a-key", lambda s: s.list_tools())


def test_http_serves_each_key_its_own_tenant_on_one_server(http_server):
    async def acme(s: ClientSession):
        tools = (await s.list_tools()).tools
        stored = await call(s, "nexus_store", text="Acme's private HTTP note: the vault code is 8812.",
                            id="vault", wait=True)
        found = await call(s, "nexus_find", query="vault code", top_k=1)
        return tools, stored, found

    tools, stored, found = over_http(http_server, ACME_KEY, acme)
    assert {t.name for t in tools} == TOOLS
    assert stored.structuredContent["queryable"] is True, text(stored)
    assert "8812" in found.structuredContent["hits"][0]["content"]

    theirs = over_http(http_server, GLOBEX_KEY, lambda s: call(s, "nexus_find", query="vault code", top_k=20))
    assert not theirs.isError and "8812" not in text(theirs)
    assert {h["source"] for h in theirs.structuredContent["hits"]} == set(GLOBEX_DOCS)
    missing = over_http(http_server, INITECH_KEY, lambda s: call(s, "nexus_find", query="vault"))
    assert error_code(missing) == "nexus_store.missing_route"


def test_http_serves_a_key_created_while_it_runs_without_a_restart(http_server, capsys):
    """The config is re-read when it changes: a tenant and key added by command reach the running server."""
    assert main(["tenants", "add", "umbrella"]) == 0
    capsys.readouterr()
    assert main(["keys", "create", "--tenant", "umbrella"]) == 0
    key = capsys.readouterr().out.strip()

    async def umbrella(s: ClientSession):
        return await call(s, "nexus_spaces"), await call(s, "nexus_find", query="tent", space="main")

    spaces, find = over_http(http_server, key, umbrella)
    assert not spaces.isError, text(spaces)
    assert "main" not in [s["space_id"] for s in spaces.structuredContent["spaces"]]  # acme's main is not its own
    assert error_code(find) == "nexus.space_not_found"


DOCUMENTED_CONFIG = re.compile(r"```json\n(\{\"mcpServers\".*?)```", re.S)
DOCUMENTED_HTTP_COMMAND = re.compile(r"^(\.venv/bin/nexus mcp --transport http[^#\n]*)", re.M)
PLACEHOLDER_NEXUS = "/path/to/nexus/.venv/bin/nexus"


def documented(page: Path) -> tuple[dict[str, Any], list[str]]:
    """The ready `mcpServers` configuration a page gives, and its command line for the HTTP server."""
    page_text = page.read_text()
    (config,) = DOCUMENTED_CONFIG.findall(page_text)
    (command,) = DOCUMENTED_HTTP_COMMAND.findall(page_text)
    return json.loads(config)["mcpServers"], shlex.split(command)


@pytest.mark.slow
def test_the_documented_mcp_servers_configuration_serves_both_transports(home):
    """What README and docs/agents.md tell a user to paste works as written: the stdio entry's command, args and
    env start a server an assistant can use, and the remote entry's url and headers reach the documented HTTP
    command (placeholders: the checkout's path, this test's data root, a free port for 8765)."""
    servers, command = documented(REPO / "README.md")
    assert documented(REPO / "docs" / "agents.md") == (servers, command)
    local, remote = servers["nexus"], servers["nexus-remote"]
    assert local["command"] == PLACEHOLDER_NEXUS and remote["type"] == "http"
    assert command[0] == ".venv/bin/nexus" and remote["url"] == f"http://127.0.0.1:{command[-1]}/mcp"
    base = {k: v for k, v in os.environ.items() if k not in ("NEXUS_API_KEY", "NEXUS_HOME")}

    async def journey(s: ClientSession):
        return {t.name for t in (await s.list_tools()).tools}, await call(s, "nexus_find", query="tent", top_k=3)

    async def over_stdio():
        env = base | local["env"] | {"NEXUS_HOME": str(home)}
        params = StdioServerParameters(command=NEXUS, args=local["args"], env=env)
        async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            return await journey(s)

    port = free_port()
    proc = subprocess.Popen([NEXUS, *command[1:-1], str(port)], env=base | {"NEXUS_HOME": str(home)})
    try:
        wait_for_port(port, proc)

        async def over_remote():
            url = remote["url"].replace(f":{command[-1]}/", f":{port}/")
            async with httpx.AsyncClient(headers=remote["headers"], timeout=120) as http, \
                    streamable_http_client(url, http_client=http) as (read, write, _), ClientSession(read, write) as s:
                await s.initialize()
                return await journey(s)

        answers = [asyncio.run(over_stdio()), asyncio.run(over_remote())]
    finally:
        stop(proc)
    for tools, found in answers:
        assert tools == TOOLS
        assert not found.isError and set(ACME_DOCS) >= {h["source"] for h in found.structuredContent["hits"]} != set()
