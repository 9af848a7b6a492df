"""``nexus cognition ...``: import conversation exports, assemble artifacts, read them back."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Mapping


def _authenticate(args: argparse.Namespace):
    from nexus_query.routing import RoutingRegistry

    registry = RoutingRegistry.default()
    return registry.authenticate(args.key), registry


def cmd_import(args: argparse.Namespace) -> int:
    from nexus_query.cognition.bricks import import_export
    from nexus_query.errors import InvalidRequest
    from nexus_query.landing import landing_zone

    ctx, registry = _authenticate(args)
    path = Path(args.file)
    if not path.is_file():
        raise InvalidRequest(f"no such file: {args.file}", field="file")
    zone = landing_zone(ctx, registry)
    summary = import_export(zone.files, args.space, path.name, path.read_bytes())
    zone.announce(summary["space_id"], "files")  # a file drop through the API: the landing sensor sees it
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    empty = f" ({summary['empty_conversations']} empty, skipped)" if summary["empty_conversations"] else ""
    print(f"{summary['format']} export: {summary['conversations']} conversations{empty}, "
          f"{summary['messages']} messages, {summary['blocks']} blocks")
    print(f"stored: {summary['archived']}")
    print(f"landed: {summary['landed']}; the ingest pipeline (landing sensor) turns it into bricks of space "
          f"{summary['space_id']!r}")
    return 0


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
    from nexus_query.cognition.assemble import assemble_topic
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

    imp = commands.add_parser("import", help="store a ChatGPT/Claude export or canonical JSON and land it")
    imp.add_argument("file", help="conversations.json (ChatGPT or Claude) or a canonical JSON file")
    common(imp)
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
