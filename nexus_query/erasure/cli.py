"""``nexus erase``: erase documents (by any name the naming rule of ``nexus_query.erasure.names``
accepts), the same names in every space (``--all-spaces``), or a whole space. Without ``--wait`` the
request is accepted for the pipeline (the erasure sensor starts its run); with ``--wait`` the erasure job
runs in this process (it needs the pipelines installed) and the receipt is printed. A name that matches
nothing exits 1 (``nexus.nothing_to_erase``) and lists the closest names the space has."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nexus_query.erasure.model import Scope


def cmd_erase(args: argparse.Namespace) -> int:
    from nexus_query.cli import error_line
    from nexus_query.erasure import request_erasure, request_tenant_erasure
    from nexus_query.errors import NothingToErase
    from nexus_query.routing import RoutingRegistry

    registry = RoutingRegistry.default()
    ctx = registry.authenticate(args.key)
    scope: Scope
    names: list[str]
    if args.all:
        scope, names = "space", []
    elif args.source:
        scope, names = "sources", args.source
    else:
        scope, names = "doc_ids", args.doc_id
    if args.all_spaces and scope == "space":
        raise SystemExit("--all-spaces erases named documents; a whole space is erased with --space S --all")
    if not args.all_spaces and not args.space:
        raise SystemExit("name the space (--space S), or erase the names in every space (--all-spaces)")
    if not args.wait or args.all_spaces:
        try:
            if args.all_spaces:
                tasks = request_tenant_erasure(ctx, scope, names, reason=args.reason, registry=registry,
                                               allow_none=args.allow_none)
            else:
                tasks = [request_erasure(ctx, args.space, scope, names, reason=args.reason, registry=registry,
                                         allow_none=args.allow_none)]
        except NothingToErase as exc:
            print(error_line(exc), file=sys.stderr)
            return 1
    if not args.wait:
        for task in tasks:
            print(json.dumps({"task_id": task.task_id, "space_id": task.space_id, "status": task.status}))
        return 0
    try:
        from nexus_pipelines.erasure.inprocess import claim_and_erase, erase_in_process
    except ImportError:
        raise SystemExit("nexus erase --wait needs the pipelines extra: pip install 'nexus[pipelines]'") from None
    if args.all_spaces:  # one request per space, unclaimed: a running daemon may take one of them first
        receipts = [erase_in_process(ctx, task.space_id, task.task_id) for task in tasks]
        print(json.dumps(receipts, indent=2, default=str))
        return 0
    try:
        receipt = claim_and_erase(ctx, args.space, scope, names, reason=args.reason, allow_none=args.allow_none,
                                  registry=registry)
    except NothingToErase as exc:
        print(error_line(exc), file=sys.stderr)
        return 1
    print(json.dumps(receipt, indent=2, default=str))
    return 0


def add_erase_parser(sub: argparse._SubParsersAction) -> None:
    erase = sub.add_parser("erase", help="erase documents, or a whole space, from everything Nexus keeps")
    erase.add_argument("--key", required=True, help="API key (identifies tenant, project, environment)")
    erase.add_argument("--space", help="space id")
    what = erase.add_mutually_exclusive_group(required=True)
    what.add_argument("--source", action="append", metavar="NAME",
                      help="a document by any of its names: the file name or relative path given to `nexus "
                           "ingest`, the source shown on a hit (its doc id), a conversation source file or a chat "
                           "export's file name; repeat for several")
    what.add_argument("--doc-id", action="append", metavar="ID", help="the same rule as --source; repeat for several")
    what.add_argument("--all", action="store_true", help="the whole space")
    erase.add_argument("--all-spaces", action="store_true",
                       help="erase the names in every space, with the tenant-wide files (chat exports, conversation "
                            "sources) they use")
    erase.add_argument("--allow-none", action="store_true", help="names that match nothing are not an error")
    erase.add_argument("--reason", help="kept on tombstones and in the receipt")
    erase.add_argument("--wait", action="store_true", help="run the erasure here, with progress, and print the receipt")
    erase.set_defaults(func=cmd_erase)
