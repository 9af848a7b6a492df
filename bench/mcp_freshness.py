"""How soon an agent finds what it stored, over both transports of ``nexus mcp``: stdio (the SDK's client
starts the server) and streamable HTTP (``nexus mcp --transport http`` on a free loopback port, a Bearer key on
every request). On one fresh data root each transport gets its own server and its own new space: the first
``nexus_store(text, wait=true)`` creates the space while the server still warms up and is reported apart
(first); then ``--rounds`` store(wait)→find pairs of one short text, each checked found, give p50 and p99.
The servers run one after the other (two cores), and each is stopped before the next starts.

    .venv/bin/python bench/mcp_freshness.py --rounds 20
    .venv/bin/python bench/mcp_freshness.py --smoke      # one round per transport: proves it runs
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.freshness import percentile  # noqa: E402
from tests.helpers import free_port, stop, wait_for_port  # noqa: E402

NEXUS = str(Path(sys.executable).parent / "nexus")
KEY = "acme-demo-key"
Transport = Literal["stdio", "http"]


@dataclass(frozen=True)
class Run:
    transport: Transport
    ready: float  # start of the server → the client's session initialized
    first: float  # the first store(wait)→find, which creates the space
    rounds: list[float]  # the warm store(wait)→find pairs that followed


async def store_then_find(s: ClientSession, space: str) -> float:
    """Seconds from calling nexus_store(wait=true) of a new short text to nexus_find returning it first."""
    token = "zq" + os.urandom(4).hex()
    started = time.perf_counter()
    stored = await s.call_tool("nexus_store", {"text": f"The gate code of the east depot is {token}.",
                                               "space": space, "wait": True})
    found = await s.call_tool("nexus_find", {"query": f"east depot gate code {token}", "space": space, "top_k": 1})
    elapsed = time.perf_counter() - started
    hits = (found.structuredContent or {}).get("hits") or [{}]
    if stored.isError or found.isError or token not in hits[0].get("content", ""):
        raise SystemExit(f"not found after store: {stored.structuredContent} / {found.structuredContent}")
    return elapsed


async def measure(transport: Transport, session: AbstractAsyncContextManager[ClientSession], started: float,
                  rounds: int) -> Run:
    async with session as s:
        ready = time.perf_counter() - started
        space = f"fresh_{transport}"
        first = await store_then_find(s, space)
        return Run(transport, ready, first, [await store_then_find(s, space) for _ in range(rounds)])


@asynccontextmanager
async def stdio_session(env: dict[str, str]) -> AsyncIterator[ClientSession]:
    """The server as a desktop assistant starts it: a child on stdin/stdout, the key in its environment."""
    params = StdioServerParameters(command=NEXUS, args=["mcp"], env=env | {"NEXUS_API_KEY": KEY})
    async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
        await s.initialize()
        yield s


@asynccontextmanager
async def http_session(port: int) -> AsyncIterator[ClientSession]:
    """A remote client: ``Authorization: Bearer`` on each request to the server's loopback port."""
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=300) as http, \
            streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http) as (read, write, _), \
            ClientSession(read, write) as s:
        await s.initialize()
        yield s


def over_stdio(env: dict[str, str], rounds: int) -> Run:
    return asyncio.run(measure("stdio", stdio_session(env), time.perf_counter(), rounds))


def over_http(env: dict[str, str], rounds: int, log: Path) -> Run:
    """``nexus mcp --transport http`` in its own process (no key in its environment), stopped at the end."""
    port = free_port()
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen([NEXUS, "mcp", "--transport", "http", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, attempts=3000)
        return asyncio.run(measure("http", http_session(port), started, rounds))
    finally:
        stop(proc)


def report(runs: list[Run]) -> str:
    rows = [f"{'transport':<10} {'ready s':>8} {'first s':>8} {'p50 s':>7} {'p99 s':>7} {'max s':>7} rounds"]
    rows += [f"{r.transport:<10} {r.ready:>8.1f} {r.first:>8.1f} {percentile(r.rounds, 0.5):>7.2f} "
             f"{percentile(r.rounds, 0.99):>7.2f} {max(r.rounds):>7.2f} {len(r.rounds):>6}" for r in runs]
    return ("nexus mcp: store(wait) -> find of one short text, each transport on its own server and new space "
            "(first: the store that creates the space while the server warms up)\n" + "\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="warm store(wait)->find pairs per transport")
    parser.add_argument("--smoke", action="store_true", help="one warm round per transport: proves the bench runs")
    args = parser.parse_args()
    rounds = 1 if args.smoke else max(1, args.rounds)
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if k not in ("NEXUS_CONFIG", "DAGSTER_HOME", "NEXUS_API_KEY")}
        env |= {"NEXUS_HOME": home, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        runs = [over_stdio(env, rounds), over_http(env, rounds, Path(home) / "mcp-http.log")]
    print(report(runs))


if __name__ == "__main__":
    main()
