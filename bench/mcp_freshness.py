"""How soon an agent finds what it stored: `nexus mcp` over stdio (the official SDK client), on a fresh data root,
`nexus_store(text, wait=true)` of one short text, then `nexus_find` of it. The first store creates the space
and is reported apart (cold); then --rounds measured store→find pairs in one server (warm).

    .venv/bin/python bench/mcp_freshness.py --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time


async def measure(rounds: int, env: dict[str, str]) -> tuple[float, float, list[float]]:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    nexus = os.path.join(os.path.dirname(sys.executable), "nexus")
    started = time.perf_counter()
    async with stdio_client(StdioServerParameters(command=nexus, args=["mcp"], env=env)) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            ready = time.perf_counter() - started

            async def store_then_find() -> float:
                token = "zq" + os.urandom(4).hex()
                t0 = time.perf_counter()
                stored = await s.call_tool("nexus_store", {"text": f"The gate code of the east depot is {token}.",
                                                           "wait": True})
                found = await s.call_tool("nexus_find", {"query": f"east depot gate code {token}", "top_k": 1})
                elapsed = time.perf_counter() - t0
                hits = (found.structuredContent or {}).get("hits") or [{}]
                if stored.isError or token not in hits[0].get("content", ""):
                    raise SystemExit(f"not found after store: {stored.structuredContent}")
                return elapsed

            cold = await store_then_find()
            return ready, cold, [await store_then_find() for _ in range(rounds)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="one warm round: proves the bench runs")
    args = parser.parse_args()
    if args.smoke:
        args.rounds = 1
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if k not in ("NEXUS_CONFIG", "DAGSTER_HOME")}
        env |= {"NEXUS_HOME": home, "NEXUS_API_KEY": "acme-demo-key", "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1"}
        ready, cold, warm = asyncio.run(measure(args.rounds, env))
    print(f"nexus mcp (stdio): ready in {ready:.1f} s; store(wait)->find: first {cold:.1f} s (creates the space), "
          f"then p50 {statistics.median(warm):.1f} s, max {max(warm):.1f} s over {len(warm)} rounds")


if __name__ == "__main__":
    main()
