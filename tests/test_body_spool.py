"""A large request body is spooled to a file as it arrives (the serving process never holds it whole) and the
file goes with the request; a small one stays in memory; one over the limit is refused while read; the files
of a server killed mid-upload are swept by the next."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import anyio
import pytest

from nexus_query.api.body_spool import PREFIX, spool, sweep_orphans
from nexus_query.errors import PayloadTooLarge

MIB = 2**20


async def _pieces(count: int, size: int):
    for i in range(count):
        yield bytes([65 + i % 26]) * size


@pytest.fixture
def spool_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_a_small_body_stays_in_memory(spool_dir):
    body = anyio.run(lambda: spool(_pieces(4, 1000), limit=MIB, memory_bytes=MIB))
    assert (body.size, body.path, body.read()) == (4000, None, b"A" * 1000 + b"B" * 1000 + b"C" * 1000 + b"D" * 1000)
    assert list(spool_dir.iterdir()) == []


def test_a_large_body_is_spooled_whole_and_discarded_with_its_request(spool_dir):
    body = anyio.run(lambda: spool(_pieces(40, 100_000), limit=32 * MIB, memory_bytes=MIB))
    assert body.data is None and body.path is not None and body.path.parent == spool_dir
    assert body.size == 4_000_000 and body.read() == b"".join(bytes([65 + i % 26]) * 100_000 for i in range(40))
    body.discard()
    assert list(spool_dir.iterdir()) == []


def test_a_body_over_the_limit_is_refused_while_read_and_leaves_no_file(spool_dir):
    with pytest.raises(PayloadTooLarge):
        anyio.run(lambda: spool(_pieces(40, MIB // 2), limit=3 * MIB, memory_bytes=MIB))
    assert list(spool_dir.iterdir()) == []


def test_a_server_sweeps_the_spool_files_of_servers_that_are_gone_and_keeps_live_ones(spool_dir):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    orphan = spool_dir / f"{PREFIX}{gone.pid}-abc.json"
    live = spool_dir / f"{PREFIX}{os.getpid()}-def.json"
    unrelated = spool_dir / "nexus-body-notes.json"
    for path in (orphan, live, unrelated):
        path.write_bytes(b"{}")
    assert sweep_orphans() == [orphan]
    assert sorted(p.name for p in spool_dir.iterdir()) == sorted([live.name, unrelated.name])
