"""``nexus mcp``: the Model Context Protocol server (official ``mcp`` SDK, FastMCP) over one key's spaces.

Thin: each tool resolves the caller from its key (``nexus_query.mcp.auth``), runs the plain function in
``nexus_query.mcp.tools`` on a worker thread, and answers with text beside ``structuredContent``. Every
failure is a tool error (``isError``) carrying the contract's envelope: its code and message as text, the
envelope itself as structured content; never a stack trace.
"""

# No `from __future__ import annotations`: FastMCP reads the tools' signatures (Context, Annotated) at runtime.
import io
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Annotated, Any, Literal

import anyio
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ResourceError, ToolError
from mcp.server.stdio import stdio_server
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, ValidationError

from nexus_query.cognition import agent_rules
from nexus_query.cognition.recall import DEFAULT_K, MAX_K
from nexus_query.embeddings import warm_providers
from nexus_query.errors import NexusError, NotFound, ValidationFailed
from nexus_query.mcp import pipelines, tools
from nexus_query.mcp.auth import BearerAuth, caller_of, stdio_key
from nexus_query.mcp.models import ArtifactOut, FindOut, ForgetOut, KpiStatusOut, SpacesOut, StoreOut
from nexus_query.query import MAX_TOP_K
from nexus_query.routing import RoutingRegistry
from nexus_query.scoring import SUGGESTED_MIN_SCORE

log = logging.getLogger("nexus_query.mcp")
INSTRUCTIONS = """Nexus is this organisation's knowledge layer: documents, KPI facts and conversations, per space.
Find facts with nexus_find (cite each hit's source), remember something with nexus_store (wait=true to find it
at once), answer from conversations with nexus_assemble (an immutable artifact: follow the rules that come
first and cite source_file + message_id + block_index), read how metrics are doing with nexus_kpi_status,
remove documents with nexus_forget. nexus_spaces lists the spaces this key can read."""

SpaceArg = Annotated[str, Field(description="the space id (lowercase letters, digits, '_' or '-'); "
                                            "nexus_spaces lists them", max_length=63)]
READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False)


def error_result(exc: NexusError) -> CallToolResult:
    envelope = exc.envelope()
    details = {k: v for k, v in envelope["error"].items() if k not in ("code", "message")}
    text = f"error {exc.code}: {exc.message}" + (f" {details}" if details else "")
    return CallToolResult(content=[TextContent(type="text", text=text)], structuredContent=envelope, isError=True)


def as_nexus_error(exc: ToolError) -> NexusError:
    """What a failed tool call tells the agent: a Nexus error as it is; arguments that do not fit the tool's
    schema as ``nexus.validation_failed`` naming the field; anything else as a bare internal error."""
    cause = exc.__cause__
    if isinstance(cause, NexusError):
        return cause
    if isinstance(cause, ValidationError):
        problems = [{"field": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in cause.errors()][:20]
        first = problems[0] if problems else {"field": "", "msg": "invalid"}
        return ValidationFailed(f"{first['field']}: {first['msg']}", field=first["field"], errors=problems)
    log.error("unexpected error in a tool call", exc_info=cause or exc)
    return NexusError("internal error; the server log has the details")


class NexusMCP(FastMCP):
    """FastMCP whose tool failures are the contract's envelopes, and which refuses arguments a tool
    does not take (an agent's misspelt ``spcae`` is an error, not silently the default space)."""

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        tool = self._tool_manager.get_tool(name)
        if tool is None:
            return error_result(NotFound(f"no tool named {name!r}", tool=name))
        unknown = sorted(set(arguments) - set(tool.parameters.get("properties", {})))
        if unknown:
            return error_result(ValidationFailed(f"{unknown[0]}: not an argument of {name}", field=unknown[0]))
        try:
            return await super().call_tool(name, arguments)
        except ToolError as exc:
            return error_result(as_nexus_error(exc))


async def answer(context: Context, work: Callable[[tools.Caller], tools.Answer]) -> CallToolResult:
    """Run ``work`` for the request's caller on a worker thread; its text and structured content."""
    request = context.request_context.request
    result = await anyio.to_thread.run_sync(lambda: work(caller_of(request)))
    return CallToolResult(content=[TextContent(type="text", text=result.text)],
                          structuredContent=result.data.model_dump(mode="json"))


def build_server(**settings: Any) -> NexusMCP:
    """The server with its tools, resource template and prompts; ``settings`` go to FastMCP (host, port)."""
    server = NexusMCP("nexus", instructions=INSTRUCTIONS, **settings)

    @server.tool(name="nexus_find", title="Find in a space", annotations=READ_ONLY)
    async def nexus_find(
        query: Annotated[str, Field(description="what to look for, in words", min_length=1, max_length=10_000)],
        context: Context,
        space: SpaceArg = "main",
        filters: Annotated[dict[str, Any] | None, Field(description="exact metadata matches, e.g. "
                           '{"lang": "en"} or {"tag": {"$in": ["a", "b"]}}')] = None,
        top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K, description="hits to return")] = 10,
        min_score: Annotated[float | None, Field(ge=0, le=1, description="drop hits scoring below this; "
                             f"{SUGGESTED_MIN_SCORE} is the measured cut for 'nothing relevant'")] = None,
        include_global: Annotated[bool, Field(description="also search the shared, read-only global space")] = False,
        mode: Annotated[Literal["vector", "hybrid"] | None, Field(description="ranking: vector (meaning) or "
                        "hybrid (meaning and exact words); default: the measured best")] = None,
    ) -> Annotated[CallToolResult, FindOut]:
        """Search a Nexus space for passages relevant to `query`, best first. Each hit has a score in
        [0, 1] with its evidence, the document (source, doc_id) it comes from, its content and metadata.
        Cite a hit by its source. Use nexus_assemble instead when the answer must come from conversations."""
        return await answer(context, lambda c: tools.find(c, query, space, filters=filters, top_k=top_k,
                                                          min_score=min_score, include_global=include_global,
                                                          mode=mode))

    @server.tool(name="nexus_store", title="Store a document",
                 annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True,
                                             openWorldHint=False))
    async def nexus_store(
        text: Annotated[str, Field(description="the document's text", min_length=1, max_length=1_000_000)],
        context: Context,
        metadata: Annotated[dict[str, Any] | None, Field(description="metadata kept with it (filterable)")] = None,
        space: SpaceArg = "main",
        id: Annotated[str | None, Field(description="a stable document id: storing the same id again replaces "
                                                    "it (default: derived from the text)", max_length=63)] = None,
        wait: Annotated[bool, Field(description="return once the document is findable (or its ingest failed), "
                                                "within a bound; false: return as soon as it is accepted")] = False,
    ) -> Annotated[CallToolResult, StoreOut]:
        """Remember a text in a Nexus space: it is landed as one ingest task, then embedded and indexed.
        Returns the document id (to forget it later) and the task; with wait=true, once it is findable."""
        return await answer(context, lambda c: tools.store_text(c, text, space, metadata=metadata, doc_id=id,
                                                                wait=wait))

    @server.tool(name="nexus_assemble", title="Assemble a cognition artifact",
                 annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True,
                                             openWorldHint=False))
    async def nexus_assemble(
        topic: Annotated[str, Field(description="what the artifact is about", min_length=1, max_length=2000)],
        context: Context,
        space: SpaceArg = "main",
        k: Annotated[int, Field(ge=1, le=MAX_K, description="conversation blocks to recall")] = DEFAULT_K,
    ) -> Annotated[CallToolResult, ArtifactOut]:
        """Assemble the cognition artifact of a topic from the space's conversations (or return the stored
        one: artifacts are content-addressed and immutable). The text starts with the consumption rules you
        must follow, then the artifact: answer only from it, citing source_file + message_id + block_index."""
        return await answer(context, lambda c: tools.assemble(c, topic, space, k))

    @server.tool(name="nexus_artifact", title="Read a cognition artifact", annotations=READ_ONLY)
    async def nexus_artifact(
        artifact_id: Annotated[str, Field(description="sha256:<64 hex digits>, as nexus_assemble returned it",
                                          pattern=r"^sha256:[0-9a-f]{64}$")],
        context: Context,
    ) -> Annotated[CallToolResult, ArtifactOut]:
        """Read a stored cognition artifact by id, with the consumption rules first. An erased artifact
        reads as its tombstone: its content is gone and must not be reconstructed."""
        return await answer(context, lambda c: tools.read_artifact(c, artifact_id))

    @server.tool(name="nexus_kpi_status", title="How the KPIs are doing", annotations=READ_ONLY)
    async def nexus_kpi_status(
        context: Context,
        space: SpaceArg = "main",
        metric: Annotated[str | None, Field(description="only this metric (default: all)", max_length=128)] = None,
    ) -> Annotated[CallToolResult, KpiStatusOut]:
        """The current status of each KPI in a space (latest value, change, within or outside its usual
        range) and the anomalies still going on, as exact sentences with their numbers."""
        return await answer(context, lambda c: tools.kpi_status(c, space, metric))

    @server.tool(name="nexus_forget", title="Erase documents",
                 annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True,
                                             openWorldHint=False))
    async def nexus_forget(
        space: SpaceArg,
        context: Context,
        sources: Annotated[list[str] | None, Field(description="document names: the source shown on hits, a file "
                           "name given at ingest, or a conversation source file", min_length=1)] = None,
        doc_ids: Annotated[list[str] | None, Field(description="document ids (as nexus_store returned them)",
                                                   min_length=1)] = None,
        reason: Annotated[str | None, Field(description="kept on the receipt", max_length=200)] = None,
        wait: Annotated[bool, Field(description="run the erasure now and return its verified receipt "
                                                "(false: accept it for the pipeline)")] = True,
    ) -> Annotated[CallToolResult, ForgetOut]:
        """Erase documents from a space and from everything derived from them (rows, indexes, old versions,
        files, maps; artifacts quoting them become tombstones). Give exactly one of sources or doc_ids.
        Irreversible; a name that matches nothing is an error."""
        return await answer(context, lambda c: tools.forget(c, space, sources=sources, doc_ids=doc_ids,
                                                            reason=reason, wait=wait))

    @server.tool(name="nexus_spaces", title="List spaces", annotations=READ_ONLY)
    async def nexus_spaces(context: Context) -> Annotated[CallToolResult, SpacesOut]:
        """The spaces this key can read (its own, and the shared global one), with their row counts and
        what each holds: documents, KPI facts, conversations, a HAZE map."""
        return await answer(context, tools.spaces)

    @server.resource(tools.ARTIFACT_URI, name="artifact", title="Cognition artifact", mime_type="text/markdown",
                     description="A stored cognition artifact rendered for an agent, the consumption rules first")
    async def artifact_resource(artifact_id: str, context: Context) -> str:
        request = context.request_context.request
        try:
            return (await anyio.to_thread.run_sync(
                lambda: tools.read_artifact(caller_of(request), artifact_id))).text
        except NexusError as exc:
            raise ResourceError(f"{exc.code}: {exc.message}") from None

    @server.prompt(name="cognition_rules", title="Nexus cognition rules",
                   description="The rules an agent follows when it consumes a Nexus cognition artifact")
    def cognition_rules() -> str:
        return agent_rules()

    @server.prompt(name="cited_answer", title="Answer from one artifact, with citations",
                   description="Answer a question from one stored cognition artifact only, citing every fact")
    async def cited_answer(artifact_id: str, question: str, context: Context) -> str:
        request = context.request_context.request
        try:
            rendered = (await anyio.to_thread.run_sync(
                lambda: tools.read_artifact(caller_of(request), artifact_id))).text
        except NexusError as exc:
            raise ValueError(f"{exc.code}: {exc.message}") from None
        return (f"{rendered}\nQUESTION: {question}\n\nAnswer from the artifact above only. After every fact, cite "
                "it as (source_file, message_id, block_index). If the artifact does not hold the answer, say "
                '"NOT PRESENT IN ARTIFACT".')

    return server


def warm_up(registry: RoutingRegistry) -> None:
    """Load the embedding model and import the pipeline runners on a background thread as the server starts,
    so an agent's first find or store(wait) does not pay for them."""
    def warm() -> None:
        try:
            warm_providers(registry.config)
            pipelines.import_runners()
        except Exception:  # a tool call meets the same failure and reports it; the log keeps this one
            log.warning("warming up failed", exc_info=True)

    threading.Thread(target=warm, name="nexus-mcp-warm-up", daemon=True).start()


def run_stdio(log_level: str = "warning") -> None:
    """Serve over stdin/stdout. stdout carries only the protocol: anything else written to it (a library's
    print) goes to stderr instead."""
    registry = RoutingRegistry.default()
    registry.authenticate(stdio_key())  # a missing or wrong key fails now, not per call
    protocol = io.TextIOWrapper(os.fdopen(os.dup(sys.stdout.fileno()), "wb"), encoding="utf-8", write_through=True)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    server = build_server(log_level=log_level.upper())
    warm_up(registry)

    async def serve() -> None:
        async with stdio_server(stdout=anyio.wrap_file(protocol)) as (read, write):
            await server._mcp_server.run(read, write, server._mcp_server.create_initialization_options())

    anyio.run(serve)


def run_http(host: str, port: int, log_level: str = "warning") -> None:
    """Serve streamable HTTP at ``/mcp``; every request needs ``Authorization: Bearer <key>``."""
    import uvicorn

    server = build_server(host=host, port=port, log_level=log_level.upper())
    warm_up(RoutingRegistry.default())
    uvicorn.run(BearerAuth(server.streamable_http_app()), host=host, port=port, log_level=log_level)
