"""The ``nexus`` command line. Subcommands stay thin: they parse, call nexus_query, and print."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections.abc import Sequence

from nexus_query.errors import NexusError
from nexus_query.scoring import SUGGESTED_MIN_SCORE


def _parse_filters(pairs: Sequence[str]) -> dict[str, object]:
    """KEY=VALUE pairs; VALUE is read as JSON when it parses (5, true, null, "5"), else as text."""
    filters: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--filter takes KEY=VALUE, got {pair!r}")
        try:
            filters[key] = json.loads(value)
        except ValueError:
            filters[key] = value
    return filters


def cmd_query(args: argparse.Namespace) -> int:
    from nexus_query.query import query
    from nexus_query.routing import RoutingRegistry

    ctx = RoutingRegistry.default().authenticate(args.key)
    kwargs = {"top_k": args.top_k, "cursor": args.cursor, "mode": args.mode, "include_global": args.include_global,
              "min_score": args.min_score}
    if args.filter:
        kwargs["filters"] = _parse_filters(args.filter)
    result = query(ctx, args.space, args.text, **kwargs)
    if args.json:
        print(json.dumps({"hits": result.to_dicts(), "next_cursor": result.next_cursor}, indent=2))
    else:
        print(format_hits(result.hits))
        if result.next_cursor:
            print(f"\nnext page: add --cursor {result.next_cursor}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from nexus_query.api import create_app
    except ImportError:
        raise SystemExit("nexus serve needs the server extra: pip install 'nexus[server]'") from None
    uvicorn.run(create_app(warm_ingest_worker=True), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    """Land files and folders as one task; print its id (stdout), and with --wait ingest it now."""
    from nexus_query.file_ingest import land_files
    from nexus_query.landing import landing_zone
    from nexus_query.routing import RoutingRegistry

    registry = RoutingRegistry.default()
    ctx = registry.authenticate(args.key)
    registry.store_route(ctx)  # a tenant without a vector store: refused before anything lands
    landed = land_files(landing_zone(ctx, registry), args.space, args.paths)
    print(landed.task.task_id)
    exports = f" and {landed.exports} chat export(s)" if landed.exports else ""
    print(f"landed {landed.items} item(s){exports} in space {args.space!r} as one task", file=sys.stderr)
    for source in landed.sources:
        print(f"  source: {source}", file=sys.stderr)
    for skipped in landed.skipped:
        print(f"skipped {skipped}", file=sys.stderr)
    if not args.wait:
        print("the landing sensor starts its run (`make dev`), or run again with --wait", file=sys.stderr)
        return 0
    try:
        from nexus_pipelines.common.in_process import dagster_instance
        from nexus_pipelines.common.tasks import TASK_TAG, fail_run_tasks
        from nexus_pipelines.ingest.run_in_process import ingest_space_in_process
        from nexus_pipelines.partitions import SpaceKey
    except ImportError:
        raise SystemExit("--wait runs the pipeline here and needs the pipelines extra: "
                         "pip install 'nexus[pipelines]'") from None
    zone = landing_zone(ctx, registry)
    with dagster_instance() as instance:
        outcome = ingest_space_in_process(SpaceKey(ctx.tenant_id, ctx.project_id, args.space), instance=instance,
                                          task_id=landed.task.task_id, progress=not args.json)
        if not outcome.success:  # what ingest_failure_sensor does for a daemon's run
            fail_run_tasks(zone, instance, outcome.run_id, {TASK_TAG: landed.task.task_id},
                           outcome.error or "the ingest run failed", logging.getLogger("nexus"))
    task = landing_zone(ctx, registry).read_task(landed.task.task_id)
    table = outcome.table
    if args.json:
        print(json.dumps({"task": task.to_dict(), "run": {"run_id": outcome.run_id, "success": outcome.success,
                                                          "error": outcome.error, **table}}, indent=2, default=str))
    elif outcome.success:
        print(f"rows: {table['rows']} in the space ({table['rows_added']} added, {table['rows_updated']} updated, "
              f"{table['rows_skipped']} unchanged, {table['rows_deleted']} deleted), run {outcome.run_id}")
    else:
        print(f"the run failed: {outcome.error}", file=sys.stderr)
    print(f"task {task.task_id}: {task.status}")
    return 0 if task.status == "succeeded" else 1


def cmd_tasks(args: argparse.Namespace) -> int:
    from nexus_query.landing import landing_zone
    from nexus_query.routing import RoutingRegistry

    registry = RoutingRegistry.default()
    zone = landing_zone(registry.authenticate(args.key), registry)
    if args.tasks_command == "list":
        page = zone.list_tasks(args.state, offset=args.offset, limit=args.limit)
        if args.json:
            print(json.dumps({"tasks": [t.to_dict() for t in page.tasks], "next_offset": page.next_offset}, indent=2))
            return 0
        for t in page.tasks:
            error = f"  {t.error.splitlines()[0][:60]}" if t.error else ""
            print(f"{t.task_id}  {t.status:<9}  {t.space_id:<12}  {t.created_at}  attempts {t.attempts}{error}")
        if page.next_offset is not None:
            print(f"more: add --offset {page.next_offset}")
        return 0
    if args.tasks_command == "retry":
        registry.store_route(registry.authenticate(args.key))
        task = zone.retry_task(args.task_id)
    else:
        task = zone.read_task(args.task_id)
    print(json.dumps(task.to_dict(), indent=2))
    return 0


SOURCE_WIDTH = (18, 64)  # the source column grows with the longest source, up to 64 characters


def shorten(text: str, width: int) -> str:
    """``text`` whole when it fits, else cut at the end with an ellipsis (never silently)."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def format_hits(hits: Sequence, width: int | None = None) -> str:
    """One line per hit, as wide as the terminal (at least 120 columns)."""
    width = width or max(shutil.get_terminal_size((120, 24)).columns, 120)
    if not hits:
        return "(no hits)"
    source_width = min(max(SOURCE_WIDTH[0], *(len(h.source) for h in hits)), SOURCE_WIDTH[1])
    room = max(width - (3 + 2 + 5 + 2 + 6 + 2 + source_width + 2), 20)
    lines = [f"{'#':>3}  {'score':>5}  {'space':<6}  {'source':<{source_width}}  content", "-" * width]
    for i, h in enumerate(hits, 1):
        content = shorten(" ".join(h.content.split()), room)
        lines.append(f"{i:>3}  {h.score:5.2f}  {h.space:<6}  {shorten(h.source, source_width):<{source_width}}"
                     f"  {content}")
    return "\n".join(lines)


def cmd_keys_hash(args: argparse.Namespace) -> int:
    from nexus_query.routing import hash_api_key

    print(hash_api_key(args.key))
    return 0


def _default_mode() -> str:
    from nexus_query.results import DEFAULT_MODE

    return DEFAULT_MODE


def quiet_libraries() -> None:
    """No model-loading progress bars or library warnings on the terminal: set before the libraries
    load (huggingface_hub and transformers read these once), and switched off in case they already did."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("transformers", "sentence_transformers", "huggingface_hub", "lancedb"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()


def error_line(exc: NexusError) -> str:
    """One readable line: ``error <code> (<status>): <message>`` plus any details as key=value."""
    details = exc.envelope()["error"]
    extra = " ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in details.items()
                     if k not in ("code", "message") and k != "existing_spaces")
    return f"error {exc.code} ({exc.status}): {exc}" + (f" [{extra}]" if extra else "")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nexus", description="Query and operate Nexus spaces.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show library output (model loading progress, warnings)")
    sub = parser.add_subparsers(dest="command", required=True)

    q = sub.add_parser("query", help="semantic search in a space")
    q.add_argument("text", help="what to search for")
    q.add_argument("--key", required=True, help="API key (identifies tenant, project, environment)")
    q.add_argument("--space", default="main", help="space id (default: main)")
    q.add_argument("--top-k", type=int, default=10)
    q.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="exact metadata match; repeat for several keys")
    q.add_argument("--json", action="store_true", help="print JSON (with each hit's score_details) instead of a table")
    q.add_argument("--min-score", type=float, metavar="S",
                   help=f"drop hits scoring below S (0..1) before paging; {SUGGESTED_MIN_SCORE} is the measured "
                        "cut for 'no answer' (default: no cut)")
    q.add_argument("--cursor", help="next_cursor of the previous page (same query and filters)")
    q.add_argument("--mode", choices=["vector", "hybrid"],
                   help=f"ranking: vector (cosine) or hybrid (BM25 + vector); default: {_default_mode()}")
    q.add_argument("--include-global", action="store_true", help="merge hits from the shared global space")
    q.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="show library output (model loading progress, warnings)")
    q.set_defaults(func=cmd_query)

    serve = sub.add_parser("serve", help="run the HTTP API (FastAPI on uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.set_defaults(func=cmd_serve)

    ing = sub.add_parser("ingest", help="land files or folders in a space as one task (and ingest them: --wait)")
    ing.add_argument("paths", nargs="+", metavar="PATH",
                     help="text, markdown, JSON lines, images (with an optional <image>.json sidecar), chat "
                          "exports, or folders of them")
    ing.add_argument("--key", required=True, help="API key (identifies tenant, project, environment)")
    ing.add_argument("--space", default="main", help="space id (default: main)")
    ing.add_argument("--wait", action="store_true",
                     help="run the space's ingest job here, now (no Dagster daemon needed), and print the result")
    ing.add_argument("--json", action="store_true", help="with --wait: print the task and run as JSON")
    ing.set_defaults(func=cmd_ingest)

    tasks = sub.add_parser("tasks", help="ingest tasks: list, show, retry a failed one")
    tasks_sub = tasks.add_subparsers(dest="tasks_command", required=True)
    listing = tasks_sub.add_parser("list", help="the tenant's tasks, newest first")
    listing.add_argument("--state", choices=["queued", "running", "succeeded", "failed"])
    listing.add_argument("--offset", type=int, default=0)
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    for name, text in (("show", "one task as JSON"), ("retry", "land a failed task's batch again")):
        one = tasks_sub.add_parser(name, help=text)
        one.add_argument("task_id")
        one.add_argument("--key", required=True)
    listing.add_argument("--key", required=True)
    tasks.set_defaults(func=cmd_tasks)

    keys = sub.add_parser("keys", help="API key helpers").add_subparsers(dest="keys_command", required=True)
    h = keys.add_parser("hash", help="print the SHA-256 to put in the config's api_keys")
    h.add_argument("key")
    h.set_defaults(func=cmd_keys_hash)

    from nexus_query.cognition.cli import add_cognition_parser

    add_cognition_parser(sub)

    from nexus_query.kpi.cli import add_kpi_parser

    add_kpi_parser(sub)

    from nexus_query.erasure.cli import add_erase_parser

    add_erase_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.verbose:
        quiet_libraries()
    try:
        return args.func(args)
    except NexusError as exc:
        # --json: the contract's envelope (one line, for scripts); otherwise one line for people.
        print(json.dumps(exc.envelope()) if getattr(args, "json", False) else error_line(exc), file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
