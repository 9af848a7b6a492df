"""``nexus kpi facts FILE --metric NAME``: the fact worker on any series, for analysts to try."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime

from nexus_query.errors import InvalidRequest
from nexus_query.kpi.catalogue import AGGREGATIONS, DIRECTIONS, MetricSpec
from nexus_query.kpi.facts import analyse_series
from nexus_query.kpi.source import read_series_file
from nexus_query.kpi.windows import SEASONS, iso, to_us, window_code


def cmd_kpi_facts(args: argparse.Namespace) -> int:
    as_of = _parse_as_of(args.as_of) if args.as_of else None
    series = read_series_file(args.file, metric=args.metric)
    if not series:
        raise InvalidRequest(f"{args.file} has no readings" + (f" of metric {args.metric!r}" if args.metric else ""),
                             path=args.file)
    for one in series:
        spec = MetricSpec(name=one.metric, label=args.label or "", unit=args.unit or "", direction=args.direction,
                          window=args.window, aggregation=args.aggregation, seasonality=args.seasonality,
                          above=args.above, below=args.below, min_change_pct=args.min_change_pct,
                          min_points=args.min_points)
        report = analyse_series(one, spec, history=args.history, as_of=as_of)
        for fact in sorted(report.facts, key=lambda f: f.window_start):
            print(json.dumps(fact.to_json(), ensure_ascii=False))
        judged = (f"{len(report.judged)} complete window(s) judged, the latest ending "
                  f"{iso(report.judged[-1] + to_us(report.window))}"
                  if report.judged else "no complete window")
        print(f"# {one.key}: {len(report.facts)} fact(s) from {len(one)} readings; window "
              f"{window_code(report.window)}{' (chosen from the sampling)' if spec.window is None else ''}, "
              f"{report.required} readings needed per window; {judged}", file=sys.stderr)
    return 0


def cmd_kpi_add(args: argparse.Namespace) -> int:
    """Land measurement files in a space's KPI source; with --wait, refresh the space's facts now."""
    from nexus_query.kpi.landing import land_measurements
    from nexus_query.kpi.source import read_measurements
    from nexus_query.paths import TenantFiles
    from nexus_query.routing import RoutingRegistry

    registry = RoutingRegistry.default()
    ctx = registry.authenticate(args.key)
    frames = []
    for path in args.files:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise InvalidRequest(f"cannot read {path}: {exc.strerror}", path=path) from exc
        frames.append((path, read_measurements(data, path, metric=args.metric)))
    files = TenantFiles.for_tenant(registry.blob_route(ctx), ctx)
    landed = land_measurements(files, args.space, frames)
    print(f"added {landed.readings} reading(s) of {', '.join(landed.metrics)} to space {args.space!r} "
          f"({landed.path})" + ("; created its catalogue" if landed.catalogue_created else ""), file=sys.stderr)
    if landed.uncatalogued:
        print(f"not in the space's catalogue (no facts until it lists them): {', '.join(landed.uncatalogued)}",
              file=sys.stderr)
    if not args.wait:
        print("the KPI sensors refresh the facts (`make dev`), or run again with --wait", file=sys.stderr)
        return 0
    try:
        from nexus_pipelines.common.in_process import dagster_instance
        from nexus_pipelines.kpi.in_process import kpi_facts_in_process
        from nexus_pipelines.partitions import SpaceKey
    except ImportError:
        raise SystemExit("--wait runs the pipeline here and needs the pipelines extra: "
                         "pip install 'nexus[pipelines]'") from None
    with dagster_instance() as instance:
        outcome = kpi_facts_in_process(SpaceKey(ctx.tenant_id, ctx.project_id, args.space), instance=instance)
    if not outcome.success:
        print(f"the KPI run failed: {outcome.error}", file=sys.stderr)
        return 1
    print(f"{outcome.metadata.get('facts', 0)} fact(s) in the space's KPI facts, run {outcome.run_id}")
    return 0


def _parse_as_of(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"--as-of must be an ISO 8601 time, got {text!r}", field="as_of") from None


def add_kpi_parser(sub: argparse._SubParsersAction) -> None:
    kpi = sub.add_parser("kpi", help="KPI fact docs").add_subparsers(dest="kpi_command", required=True)
    f = kpi.add_parser("facts", help="print the facts of a measurements file as JSON lines",
                       description="Reads a timestamp,value CSV (or Parquet, or a file with a metric column) "
                                   "and prints what the fact worker would say, one JSON object per line.")
    f.add_argument("file", help="CSV or Parquet file (local path or fsspec URL)")
    f.add_argument("--metric", help="metric name (keeps only its rows if the file has a metric column; "
                                    "default: the file's name, for a plain timestamp,value file)")
    f.add_argument("--label", help="how sentences name it, e.g. 'p95 latency of checkout'")
    f.add_argument("--unit", help="unit of the values, e.g. ms, %%, orders/h")
    f.add_argument("--direction", choices=DIRECTIONS, default="neutral")
    f.add_argument("--window", help="window length: 15m, 1h, 1d, 1w (default: chosen from the sampling)")
    f.add_argument("--aggregation", choices=AGGREGATIONS, default="mean", help="a window's value (default mean)")
    f.add_argument("--seasonality", choices=tuple(SEASONS), default="auto",
                   help="auto (default): daily/weekly rhythm found in the data; none; daily/weekly: compare with "
                        "the same window a day/week earlier")
    f.add_argument("--above", type=float, help="threshold: readings above it are a breach")
    f.add_argument("--below", type=float, help="threshold: readings below it are a breach")
    f.add_argument("--min-change-pct", type=float, default=10.0, help="smallest change worth a fact (default 10)")
    f.add_argument("--min-points", type=int, default=6, help="readings a window needs (default 6)")
    f.add_argument("--history", action="store_true",
                   help="one fact per episode (and change/trend) over every complete window, not just the latest")
    f.add_argument("--as-of", help="check time (ISO 8601): ignore later readings, report stale data")
    f.set_defaults(func=cmd_kpi_facts)
    add = kpi.add_parser("add", help="add measurement files to a space's KPI source (and refresh its facts: --wait)",
                         description="Reads each file as `nexus kpi facts` does (timestamp,value with the metric "
                                     "named by --metric or the file; metric,timestamp,value; Parquet), checks every "
                                     "reading, and adds them as one new file of the space's KPI source.")
    add.add_argument("files", nargs="+", metavar="FILE", help="CSV or Parquet files")
    add.add_argument("--key", required=True, help="API key (identifies tenant, project, environment)")
    add.add_argument("--space", default="main", help="space id (default: main)")
    add.add_argument("--metric", help="metric of plain timestamp,value files (default: each file's name)")
    add.add_argument("--wait", action="store_true",
                     help="run the space's KPI job here, now (no Dagster daemon needed)")
    add.set_defaults(func=cmd_kpi_add)
