"""The ``nexus`` command line. Subcommands stay thin: they parse, call nexus_query, and print."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from types import SimpleNamespace

from nexus_query.errors import NexusError
from nexus_query.remote import URL_ENV_VAR
from nexus_query.scoring import SUGGESTED_MIN_SCORE

KEY_ENV_VAR = "NEXUS_API_KEY"


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
    url = os.environ.get(URL_ENV_VAR)
    if url:
        return _query_over_http(url, args)
    from nexus_query.query import query
    from nexus_query.routing import RoutingRegistry

    ctx = RoutingRegistry.default().authenticate(args.key)
    kwargs = {"top_k": args.top_k, "cursor": args.cursor, "mode": args.mode, "include_global": args.include_global,
              "min_score": args.min_score}
    if args.filter:
        kwargs["filters"] = _parse_filters(args.filter)
    result = query(ctx, args.space, args.text, **kwargs)
    _print_result(result.to_dicts(), result.next_cursor, args.json)
    return 0


def _print_result(hits: list[dict], next_cursor: str | None, as_json: bool) -> None:
    """One page of hits, as dicts (a local result's ``to_dicts()`` or the server's JSON)."""
    if as_json:
        print(json.dumps({"hits": hits, "next_cursor": next_cursor}, indent=2))
        return
    print(format_hits([SimpleNamespace(**h) for h in hits]))
    if next_cursor:
        print(f"\nnext page: add --cursor {next_cursor}")


def _query_over_http(url: str, args: argparse.Namespace) -> int:
    """The same query asked of the ``nexus serve`` at ``url`` (its warm model and caches answer in
    milliseconds); only the standard library is imported on this path."""
    from urllib.parse import quote

    from nexus_query.remote import ServerError, call, report

    body = {"q": args.text, "top_k": args.top_k, "include_global": args.include_global, "cursor": args.cursor,
            "mode": args.mode, "min_score": args.min_score, "filters": _parse_filters(args.filter) or None}
    try:
        page = call(url, "POST", f"/nexus/spaces/{quote(args.space, safe='')}/query", args.key,
                    json.dumps({k: v for k, v in body.items() if v is not None}).encode())
    except (OSError, ServerError) as exc:
        return report(url, exc, args.json)
    _print_result(page["hits"], page.get("next_cursor"), args.json)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from nexus_query.api import create_app
    except ImportError:
        raise SystemExit("nexus serve needs the server extra: pip install 'nexus[server]'") from None
    fast_lane = _fast_lane()
    app = create_app(warm_ingest_worker=True, warm_serving=True, fast_lane=fast_lane)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _fast_lane():  # -> nexus_pipelines.ingest.fast.ServerFastLane | None
    """Small batches ingested by this server within seconds, recorded in Dagster: needs the pipelines
    extra and ``$DAGSTER_HOME`` (else batches wait for the sensors' runs, as before)."""
    try:
        from nexus_pipelines.ingest.fast import server_fast_lane
    except ImportError:
        return None
    lane = server_fast_lane()
    print("small batches: " + ("ingested by this server (fast path), recorded in $DAGSTER_HOME" if lane else
                               "left to the Dagster sensors (set DAGSTER_HOME for the fast path)"), file=sys.stderr)
    return lane


def cmd_mcp(args: argparse.Namespace) -> int:
    try:
        from nexus_query.mcp.server import run_http, run_stdio
    except ImportError:
        raise SystemExit("nexus mcp needs the server extra: pip install 'nexus[server]'") from None
    if args.transport == "http":
        run_http(args.host, args.port, args.log_level)
    else:
        run_stdio(args.log_level)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    """Land files and folders as one task; print its id (stdout), and with --wait ingest it now."""
    from nexus_query.file_ingest import land_files
    from nexus_query.landing import landing_zone
    from nexus_query.routing import RoutingRegistry

    registry = RoutingRegistry.default()
    ctx = registry.authenticate(args.key)
    registry.store_route(ctx)  # a tenant without a vector store: refused before anything lands
    if not args.wait:
        landed = land_files(landing_zone(ctx, registry), args.space, args.paths)
        _print_landed(landed, args.space)
        print("the landing sensor starts its run (`make dev`), or run again with --wait", file=sys.stderr)
        return 0
    try:
        from nexus_pipelines.ingest.fast import land_and_wait
    except ImportError:
        raise SystemExit("--wait ingests here and needs the pipelines extra: pip install 'nexus[pipelines]'") from None
    zone = landing_zone(ctx, registry)

    def land(batch_id: str):  # -> nexus_query.landing.Task; landed under the id land_and_wait claimed
        landed = land_files(zone, args.space, args.paths, batch_id=batch_id)
        _print_landed(landed, args.space)
        return landed.task

    outcome = land_and_wait(ctx, args.space, land=land, registry=registry, progress=not args.json)
    task, table = outcome.task, dict(outcome.counts)
    if args.json:
        print(json.dumps({"task": task.to_dict(), "run": {"run_id": outcome.run_id, "path": outcome.path,
                                                          "success": outcome.succeeded, "error": outcome.error,
                                                          **table}}, indent=2, default=str))
    elif outcome.succeeded:
        print(f"rows: {table['rows']} in the space ({table['rows_added']} added, {table['rows_updated']} updated, "
              f"{table['rows_skipped']} unchanged, {table['rows_deleted']} deleted), "
              f"{'run ' + str(outcome.run_id) if outcome.path == 'run' else 'ingested here (fast path)'}")
    else:
        print(f"the ingest failed: {outcome.error}", file=sys.stderr)
    print(f"task {task.task_id}: {task.status}")
    return 0 if task.status == "succeeded" else 1


def _print_landed(landed, space_id: str) -> None:  # landed: nexus_query.file_ingest.LandedFiles
    print(landed.task.task_id)
    exports = f" and {landed.exports} chat export(s)" if landed.exports else ""
    print(f"landed {landed.items} item(s){exports} in space {space_id!r} as one task", file=sys.stderr)
    for source in landed.sources:  # the names `nexus erase --source` takes
        print(f"  source: {source}", file=sys.stderr)
    for skipped in landed.skipped:
        print(f"skipped {skipped}", file=sys.stderr)


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
        print(format_tasks(page.tasks))
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


def format_tasks(tasks: Sequence) -> str:
    """A header, then one line per task: id, kind, state, space, when, attempts and the error's first line."""
    if not tasks:
        return "(no tasks)"
    id_width = max(len("task"), *(len(t.task_id) for t in tasks))
    lines = [f"{'task':<{id_width}}  {'kind':<9}  {'state':<9}  {'space':<12}  {'created':<25}  attempts  error"]
    for t in tasks:
        error = t.error.splitlines()[0][:60] if t.error else ""
        lines.append(f"{t.task_id:<{id_width}}  {t.kind:<9}  {t.status:<9}  {t.space_id:<12}  {t.created_at:<25}  "
                     f"{t.attempts:>8}  {error}".rstrip())
    return "\n".join(lines)


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


def cmd_tenants(args: argparse.Namespace) -> int:
    from nexus_query import config_edit

    if args.tenants_command == "add":
        added = config_edit.add_tenant(args.name, store_uri=args.store, environment=args.environment)
        started = " (started from the shipped default)" if added.started else ""
        print(f"tenant {added.tenant_id!r} added to environment {added.environment!r} in {added.path}{started}")
        print(f"next: nexus keys create --tenant {added.tenant_id}"
              + (f" --environment {added.environment}" if added.environment != "dev" else ""))
        return 0
    path, tenants = config_edit.list_tenants()
    print(f"config: {path}")
    print(f"{'environment':<12}  {'tenant':<20}  {'keys':>4}  vector store")
    for t in tenants:
        print(f"{t.environment:<12}  {t.tenant_id:<20}  {t.keys:>4}  {t.store_uri or '(none: missing_route)'}")
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    from nexus_query.config_edit import create_key

    made = create_key(args.tenant, project_id=args.project, environment=args.environment)
    print(f"API key for tenant {made.tenant_id!r} (project {made.project_id!r}, environment {made.environment!r}); "
          f"only its hash is stored, in {made.path}. Shown once: keep it (e.g. export {KEY_ENV_VAR}=...):",
          file=sys.stderr)
    print(made.key)
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


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
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

    mcp = sub.add_parser("mcp", help="serve the spaces of one API key to agents (Model Context Protocol)",
                         description="stdio (default): the key comes from NEXUS_API_KEY. http: streamable HTTP at "
                                     "/mcp, where every request carries 'Authorization: Bearer <key>'.")
    mcp.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    mcp.add_argument("--host", default="127.0.0.1", help="with --transport http (default 127.0.0.1)")
    mcp.add_argument("--port", type=int, default=8765, help="with --transport http (default 8765)")
    mcp.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    mcp.set_defaults(func=cmd_mcp)

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
    create = keys.add_parser("create", help="make a new API key for a tenant: print it once, store only its hash")
    create.add_argument("--tenant", required=True)
    create.add_argument("--project", default="default")
    create.add_argument("--environment", default="dev")
    create.set_defaults(func=cmd_keys_create)

    tenants_cmd = sub.add_parser("tenants", help="tenants of the config file in use: add, list")
    tenants_sub = tenants_cmd.add_subparsers(dest="tenants_command", required=True)
    add = tenants_sub.add_parser("add", help="route a new tenant (edits the config in use in place; with none, "
                                             "starts config.yaml in the data root from the shipped default)")
    add.add_argument("name", help="tenant id (lowercase letters, digits, '-', '_')")
    add.add_argument("--store", metavar="URI",
                     help="its vector store, a LanceDB root (folder or s3://bucket/prefix); default: the environment's")
    add.add_argument("--environment", default="dev")
    tenants_sub.add_parser("list", help="every tenant, its key count and vector store")
    tenants_cmd.set_defaults(func=cmd_tenants)

    wanted = _command_of(argv)
    if wanted not in sub.choices:  # a command of its own module: its parser; help: every parser is built
        for name, (module, adder) in HEAVY_COMMANDS.items():
            if wanted not in HEAVY_COMMANDS or name == wanted:
                getattr(importlib.import_module(module), adder)(sub)
    _keys_from_environment(parser)
    return parser


# Commands whose packages import LanceDB and Arrow as they load: their parsers are built only when one of
# them (or help) is asked for, so `nexus query` and friends start without paying for them.
HEAVY_COMMANDS = {"cognition": ("nexus_query.cognition.cli", "add_cognition_parser"),
                  "kpi": ("nexus_query.kpi.cli", "add_kpi_parser"),
                  "erase": ("nexus_query.erasure.cli", "add_erase_parser")}


def _command_of(argv: Sequence[str] | None) -> str | None:
    """The subcommand named in ``argv`` (the first word that is not an option), if any."""
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    return words[0] if words else None


def _keys_from_environment(parser: argparse.ArgumentParser) -> None:
    """Every command's ``--key`` defaults to ``$NEXUS_API_KEY``, so a shell sets the key once."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in {id(p): p for p in action.choices.values()}.values():
                _keys_from_environment(child)
        elif action.dest == "key" and action.option_strings:
            action.required = False
            action.default = os.environ.get(KEY_ENV_VAR) or None
            action.help = f"{action.help or 'API key'} (default: ${KEY_ENV_VAR})"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    if not args.verbose:
        quiet_libraries()
    else:  # the model's loading bar and the libraries' notes come back
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "info")
    if "key" in vars(args) and args.key is None and args.func is not cmd_keys_hash:
        print(f"error: no API key: pass --key or set {KEY_ENV_VAR}", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except NexusError as exc:
        # --json: the contract's envelope (one line, for scripts); otherwise one line for people.
        print(json.dumps(exc.envelope()) if getattr(args, "json", False) else error_line(exc), file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
