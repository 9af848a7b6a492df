"""``nexus cognition ...``: see what an export holds, import it, assemble artifacts, read them back."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nexus_query.cognition.conversation_model import ExportCounts
from nexus_query.remote import URL_ENV_VAR

if TYPE_CHECKING:  # the CLI imports the cognition package only when a command needs it
    from nexus_query.cognition.bricks import ImportReceipt
    from nexus_query.context import RequestContext
    from nexus_query.routing import RoutingRegistry


def _authenticate(args: argparse.Namespace) -> tuple[RequestContext, RoutingRegistry]:
    from nexus_query.routing import RoutingRegistry

    registry = RoutingRegistry.default()
    return registry.authenticate(args.key), registry


def _read_file(name: str) -> bytes:
    from nexus_query.errors import InvalidRequest

    path = Path(name)
    if not path.is_file():
        raise InvalidRequest(f"no such file: {name}", field="file")
    return path.read_bytes()


@dataclass(frozen=True)
class WaitedIngest:
    """What ``nexus cognition import --wait`` reports of the ingest that settled its task."""

    run_id: str
    success: bool
    error: str | None
    bricks_gained: int
    rows: int
    rows_added: int
    rows_updated: int
    rows_deleted: int
    rows_skipped: int

    @classmethod
    def from_task(cls, task: Mapping[str, Any]) -> WaitedIngest:
        """From the import's settled task (``Task.to_dict()``, here or from the server): its run and counts.
        Every row an import writes is a brick, so the space gained the rows added less those deleted."""
        counts = task.get("counts", {})
        return cls(run_id=task.get("run_id") or "", success=task["status"] == "succeeded", error=task.get("error"),
                   bricks_gained=counts.get("rows_added", 0) - counts.get("rows_deleted", 0),
                   rows=counts.get("rows", 0), rows_added=counts.get("rows_added", 0),
                   rows_updated=counts.get("rows_updated", 0), rows_deleted=counts.get("rows_deleted", 0),
                   rows_skipped=counts.get("rows_skipped", 0))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _summary_line(counts: ExportCounts) -> str:
    empty = f" ({counts.empty_conversations} empty, skipped)" if counts.empty_conversations else ""
    alternates = f" ({counts.alternate_messages} on alternate branches)" if counts.alternate_messages else ""
    return (f"{counts.format} export: {counts.conversations} conversations{empty}, "
            f"{counts.messages} messages{alternates}, {counts.blocks} blocks")


def cmd_parse(args: argparse.Namespace) -> int:
    """What an import would store, one canonical conversation per line; reads the file, writes nothing."""
    from nexus_query.cognition.conversations import parse_export
    from nexus_query.store.rows import canonical_json

    parsed = parse_export(_read_file(args.file))
    try:
        for conversation in parsed.stored:
            print(canonical_json(conversation.to_dict()))
        sys.stdout.flush()
    except BrokenPipeError:  # `nexus cognition parse x.json | head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    print(_summary_line(parsed.counts()), file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    url = os.environ.get(URL_ENV_VAR)
    if url:
        return _import_over_http(url, args)
    from nexus_query.cognition.bricks import land_export
    from nexus_query.landing import landing_zone

    ctx, registry = _authenticate(args)
    data = _read_file(args.file)
    if not args.wait:
        zone = landing_zone(ctx, registry)
        receipt = land_export(zone.files, args.space, Path(args.file).name, data)
        zone.announce(receipt.space_id, "files")  # a file drop through the API: the landing sensor sees it
        return _report_import(receipt.to_dict(), None, args)
    receipt, task = _import_now(ctx, registry, args.space, args.file, data)
    return _report_import(receipt.to_dict(), task, args)


def _report_import(receipt: Mapping[str, Any], task: Mapping[str, Any] | None, args: argparse.Namespace,
                   pending: str | None = None) -> int:
    """Print an import's receipt and, after ``--wait``, how its ``task`` ended; the same wherever it ran.
    ``pending``: what to say of an import not waited for (the default: the landing sensor runs it)."""
    if not args.json:
        print(_summary_line(ExportCounts(**{k: receipt[k] for k in ExportCounts.__dataclass_fields__})))
        print(f"task: {receipt['task_id']}")
        print(f"stored: {receipt['archived']}")
        print(f"landed: {receipt['landed']}", flush=True)
    if task is None:
        if args.json:
            print(json.dumps(receipt, indent=2))
        else:
            print(pending or f"the landing sensor starts the ingest run of space {receipt['space_id']!r} that turns "
                             f"it into bricks (nexus cognition import --wait runs it here instead)")
        return 0
    ingest = WaitedIngest.from_task(task)
    if args.json:
        print(json.dumps({**receipt, "ingest": ingest.to_dict(), "task": dict(task)}, indent=2))
    elif ingest.success:
        print(f"ingested ({ingest.run_id}): the space gained {ingest.bricks_gained} bricks "
              f"({ingest.rows_added} rows added, {ingest.rows_updated} updated, {ingest.rows_skipped} "
              f"unchanged, {ingest.rows} in all); task {task['task_id']} {task['status']}")
    else:
        print(f"ingest {ingest.run_id} failed: {ingest.error}; task {task['task_id']} {task['status']}")
    return 0 if ingest.success else 1


def _import_now(ctx: RequestContext, registry: RoutingRegistry, space_id: str, file_name: str,
                data: bytes) -> tuple[ImportReceipt, dict[str, Any]]:
    """Land the export and ingest it in this process, under a claim on the space's dropped files (so a
    running daemon starts no second run for it); returns its receipt and settled task. Only ``--wait``
    without a server gets here: it is the one place the light client loads the pipelines."""
    from nexus_pipelines.ingest.fast import import_and_wait
    from nexus_query.cognition.bricks import land_export
    from nexus_query.landing import landing_zone

    zone = landing_zone(ctx, registry)
    receipt, landed = import_and_wait(ctx, space_id, lambda: land_export(zone.files, space_id, Path(file_name).name,
                                                                          data), registry=registry)
    return receipt, landed.task.to_dict()


# A task the command stops waiting for (landing.TERMINAL leaves out "failed": a run may still retry it).
SETTLED = ("succeeded", "failed", "cancelled")
# How often --wait asks the server for the task: often while a fast-path import may settle (seconds),
# then seldom (a bulk export waits for a pipeline run: minutes).
POLL_SECONDS, POLL_SLOW_SECONDS, POLL_FAST_FOR_SECONDS = 0.05, 1.0, 60.0


def _import_over_http(url: str, args: argparse.Namespace) -> int:
    """The import done by the ``nexus serve`` at ``url``: the export is posted, the server's warm worker
    ingests it (or, for a bulk export, the sensors' run), and ``--wait`` polls its task until it settles.
    Only the standard library is imported here: the command costs what the server's work does."""
    import time
    from urllib.parse import quote, urlencode

    from nexus_query.remote import ServerError, call, report

    data = _read_file(args.file)
    space = quote(args.space, safe="")
    try:
        receipt = call(url, "POST", f"/nexus/spaces/{space}/cognition/imports?"
                       + urlencode({"file_name": Path(args.file).name}), args.key, data, timeout=600)
        path = receipt.pop("path")
        if not args.wait:
            pending = (f"the server at {url} is ingesting it now (its task turns succeeded once the bricks are "
                       "queryable)" if path == "fast" else None)
            return _report_import(receipt, None, args, pending)
        if path == "run":
            print("a bulk export: waiting for the space's pipeline run (the landing sensor of a running "
                  "`dagster dev` starts it)", file=sys.stderr, flush=True)
        started = time.monotonic()
        while (task := call(url, "GET", f"/nexus/tasks/{quote(receipt['task_id'], safe='')}",
                            args.key))["status"] not in SETTLED:
            fast = time.monotonic() - started < POLL_FAST_FOR_SECONDS
            time.sleep(POLL_SECONDS if fast else POLL_SLOW_SECONDS)
    except (OSError, ServerError) as exc:
        return report(url, exc, args.json)
    return _report_import(receipt, {k: v for k, v in task.items() if v is not None}, args)  # as Task.to_dict


def format_artifact(artifact: Mapping[str, Any]) -> str:
    payload = artifact["payload"]
    lines = [f"artifact_id      {artifact['artifact_id']}",
             f"created_at       {artifact['created_at']}",
             f"topic            {payload['topic']}",
             f"coverage_status  {payload['coverage_status']}",
             f"bricks           {len(artifact['derived_from'])}"]
    for excerpt in payload["raw_excerpts"]:
        spans = ", ".join(f"{s['message_id']}#{s['block_index']}" for s in excerpt["coverage"]["spans"])
        lines.append(f"  {excerpt['source_file']}  ({len(excerpt['conversation'])} messages; cites {spans})")
    return "\n".join(lines)


def cmd_assemble(args: argparse.Namespace) -> int:
    from nexus_query.cognition.assembly import assemble_topic
    from nexus_query.store import SpaceStore

    ctx, registry = _authenticate(args)
    artifact = assemble_topic(ctx, args.space, args.topic, args.k, store=SpaceStore(registry))
    print(json.dumps(artifact, indent=2, ensure_ascii=False) if args.json else format_artifact(artifact))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from nexus_query.cognition.artifacts import ArtifactStore, render_for_agent

    ctx, registry = _authenticate(args)
    artifact = ArtifactStore.for_context(ctx, registry).get(args.artifact_id)
    print(render_for_agent(artifact) if args.for_agent else json.dumps(artifact, indent=2, ensure_ascii=False))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from nexus_query.cognition.artifacts import ArtifactStore

    ctx, registry = _authenticate(args)
    entries = ArtifactStore.for_context(ctx, registry).list(args.space)
    for e in entries:
        print(f"{e['created_at']}  {e['artifact_id']}  {e['coverage_status']:<18}  {e['query']}")
    if not entries:
        print("(no artifacts)")
    return 0


def add_cognition_parser(sub: argparse._SubParsersAction) -> None:
    cog = sub.add_parser("cognition", help="conversation imports and cognition artifacts")
    commands = cog.add_subparsers(dest="cognition_command", required=True)

    def common(p: argparse.ArgumentParser, space: bool = True) -> None:
        p.add_argument("--key", required=True, help="API key (identifies tenant, project, environment)")
        if space:
            p.add_argument("--space", default="main", help="space id (default: main)")

    parse = commands.add_parser("parse", help="print the canonical conversations an import would store "
                                              "(one JSON object per line); writes nothing")
    parse.add_argument("file", help="conversations.json (ChatGPT or Claude) or a canonical JSON file")
    parse.set_defaults(func=cmd_parse)

    imp = commands.add_parser("import", help="store a ChatGPT/Claude export or canonical JSON, land it and "
                                             "print its task id")
    imp.add_argument("file", help="conversations.json (ChatGPT or Claude) or a canonical JSON file")
    common(imp)
    imp.add_argument("--wait", action="store_true",
                     help="return once the bricks are queryable and print what the space gained: the running "
                          "`nexus serve` at $NEXUS_URL ingests it with its warm model, else this command does "
                          "(no Dagster daemon needed)")
    imp.add_argument("--json", action="store_true", help="print the summary as JSON")
    imp.set_defaults(func=cmd_import)

    asm = commands.add_parser("assemble", help="assemble (and store) the artifact for a topic")
    asm.add_argument("topic")
    common(asm)
    asm.add_argument("--k", type=int, default=15, help="bricks to recall (default 15)")
    asm.add_argument("--json", action="store_true", help="print the whole artifact")
    asm.set_defaults(func=cmd_assemble)

    show = commands.add_parser("show", help="print a stored artifact")
    show.add_argument("artifact_id", help="sha256:...")
    common(show, space=False)
    show.add_argument("--for-agent", action="store_true", help="render with the agent consumption rules")
    show.set_defaults(func=cmd_show)

    lst = commands.add_parser("list", help="list a space's artifacts")
    common(lst)
    lst.set_defaults(func=cmd_list)
