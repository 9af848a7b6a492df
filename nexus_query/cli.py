"""The ``nexus`` command line. Subcommands stay thin: they parse, call nexus_query, and print."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from nexus_query.errors import NexusError


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
    kwargs = {"top_k": args.top_k, "cursor": args.cursor, "mode": args.mode, "include_global": args.include_global}
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
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def format_hits(hits: Sequence, width: int = 96) -> str:
    if not hits:
        return "(no hits)"
    lines = [f"{'#':>3}  {'score':>6}  {'space':<6}  {'source':<18}  content", "-" * width]
    for i, h in enumerate(hits, 1):
        content = " ".join(h.content.split())
        room = width - 42
        content = content if len(content) <= room else content[: room - 1] + "…"
        lines.append(f"{i:>3}  {h.score:6.3f}  {h.space:<6}  {h.source[:18]:<18}  {content}")
    return "\n".join(lines)


def cmd_keys_hash(args: argparse.Namespace) -> int:
    from nexus_query.routing import hash_api_key

    print(hash_api_key(args.key))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nexus", description="Query and operate Nexus spaces.")
    sub = parser.add_subparsers(dest="command", required=True)

    q = sub.add_parser("query", help="semantic search in a space")
    q.add_argument("text", help="what to search for")
    q.add_argument("--key", required=True, help="API key (identifies tenant, project, environment)")
    q.add_argument("--space", default="main", help="space id (default: main)")
    q.add_argument("--top-k", type=int, default=10)
    q.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="exact metadata match; repeat for several keys")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.add_argument("--cursor", help="next_cursor of the previous page (same query and filters)")
    q.add_argument("--mode", choices=["vector", "hybrid"], help="ranking (default: the measured best)")
    q.add_argument("--include-global", action="store_true", help="merge hits from the shared global space")
    q.set_defaults(func=cmd_query)

    serve = sub.add_parser("serve", help="run the HTTP API (FastAPI on uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.set_defaults(func=cmd_serve)

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
    try:
        return args.func(args)
    except NexusError as exc:
        print(json.dumps(exc.envelope()), file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
