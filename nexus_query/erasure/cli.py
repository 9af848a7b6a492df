"""``nexus erase``: erase sources, documents or a whole space. Without ``--wait`` the request is
accepted for the pipeline (the erasure sensor starts its run); with ``--wait`` the erasure job runs in
this process (it needs the pipelines installed) and the receipt is printed."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nexus_query.erasure.model import Scope


def cmd_erase(args: argparse.Namespace) -> int:
    from nexus_query.erasure import request_erasure
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
    if not args.wait:
        task = request_erasure(ctx, args.space, scope, names, reason=args.reason, registry=registry)
        print(json.dumps({"task_id": task.task_id, "status": task.status}))
        return 0
    try:
        from nexus_pipelines.erasure.inprocess import erase_in_process
        from nexus_pipelines.ingest.fast import claimed
    except ImportError:
        raise SystemExit("nexus erase --wait needs the pipelines extra: pip install 'nexus[pipelines]'") from None
    from nexus_query.landing import landing_zone

    # Claimed before the request is written: a running daemon's erasure sensor leaves it to this command.
    with claimed(landing_zone(ctx, registry), role="erase") as holding:
        task = request_erasure(ctx, args.space, scope, names, reason=args.reason, registry=registry,
                               task_id=holding.claim.request_id)
        receipt = erase_in_process(ctx, args.space, task.task_id)
    print(json.dumps(receipt, indent=2, default=str))
    return 0


def add_erase_parser(sub: argparse._SubParsersAction) -> None:
    erase = sub.add_parser("erase", help="erase sources, documents or a whole space from everything Nexus keeps")
    erase.add_argument("--key", required=True, help="API key (identifies tenant, project, environment)")
    erase.add_argument("--space", required=True, help="space id")
    what = erase.add_mutually_exclusive_group(required=True)
    what.add_argument("--source", action="append", metavar="NAME",
                      help="a landed file (a file's source name is its file name), a conversation source file, "
                           "or a document id; repeat for several")
    what.add_argument("--doc-id", action="append", metavar="ID", help="a document id; repeat for several")
    what.add_argument("--all", action="store_true", help="the whole space")
    erase.add_argument("--reason", help="kept on tombstones and in the receipt")
    erase.add_argument("--wait", action="store_true", help="run the erasure here, with progress, and print the receipt")
    erase.set_defaults(func=cmd_erase)
