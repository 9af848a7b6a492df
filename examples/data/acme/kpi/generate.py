"""Writes acme's example KPI measurements (measurements.csv beside this file): seven days of 5-minute
readings of three metrics, with known events so the fact worker has something true to say.

    .venv/bin/python examples/data/acme/kpi/generate.py [--end 2026-11-16T14:00:00Z]

Injected (all times UTC, relative to --end):
- checkout_latency_p95: about 180 ms with a mild daily load swing; one 900 ms reading 4 days back (a
  lone spike: nothing should be said of it); a 20% step for the last hour (change + unusually high).
- conversion_rate: about 3.2%; down to about 2.5% for three hours 2 days back (facts in --history).
- orders_per_hour: a strong daily cycle (compared hour to the same hour a day earlier); 40 minutes of
  readings missing 3 days back (a missing-data fact in --history).
The numbers are seeded, so the file is the same on every run.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
STEP = timedelta(minutes=5)


def generate(end: datetime, days: int = 7, seed: int = 20261116) -> list[tuple[str, str, float, str]]:
    rng = np.random.default_rng(seed)
    n = days * 24 * 12
    times = [end - STEP * (n - i) for i in range(n)]
    hour_of_day = np.array([t.hour + t.minute / 60 for t in times])
    load = np.sin((hour_of_day - 8) / 24 * 2 * np.pi)  # peaks mid-afternoon UTC

    latency = 180 + 8 * load + 180 * 0.025 * rng.standard_normal(n)
    latency[-12:] *= 1.2  # the last hour
    latency[n - 4 * 288 + 37] = 900.0  # one lone spike

    conversion = 3.2 + 0.15 * load + 3.2 * 0.03 * rng.standard_normal(n)
    dip = slice(n - 2 * 288 - 36, n - 2 * 288)
    conversion[dip] = 2.5 + 2.5 * 0.03 * rng.standard_normal(36)

    orders = (400 + 250 * load) * (1 + 0.04 * rng.standard_normal(n))
    gap = set(range(n - 3 * 288 + 100, n - 3 * 288 + 108))  # 8 readings, 40 minutes

    rows = []
    for i, t in enumerate(times):
        stamp = t.strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append((stamp, "checkout_latency_p95", round(float(latency[i]), 1), "ms"))
        rows.append((stamp, "conversion_rate", round(float(conversion[i]), 3), "%"))
        if i not in gap:
            rows.append((stamp, "orders_per_hour", round(float(orders[i]), 1), "orders/h"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--end", default="2026-11-16T14:00:00Z", help="end of the last window (UTC)")
    parser.add_argument("--out", type=Path, default=HERE / "measurements.csv")
    args = parser.parse_args()
    end = datetime.fromisoformat(args.end).astimezone(UTC)
    rows = generate(end)
    with args.out.open("w", encoding="utf-8") as fh:
        fh.write("timestamp,metric,value,unit\n")
        fh.writelines(f"{t},{m},{v},{u}\n" for t, m, v, u in rows)
    print(f"wrote {len(rows)} readings to {args.out}")


if __name__ == "__main__":
    main()
