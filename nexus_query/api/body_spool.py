"""A request body read in pieces and, past ``memory_bytes``, spooled to a temporary file off the event loop.

Why: a 30 MiB ingest body held in the serving process costs it seconds of interpreter lock on a busy
machine (joining the pieces, pickling the whole body to the worker process, piping it over), and every
other tenant's request waits for each of those. Spooled, the serving process only counts the pieces and
hands them to a thread that writes them (the write releases the lock); the worker process reads the file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio

from nexus_query.errors import PayloadTooLarge

# Pieces are written to the file in batches of about this size: one thread hop per batch, not per piece.
WRITE_BATCH_BYTES = 1 * 2**20
PREFIX = "nexus-body-"  # then the serving process's id, so a later server can tell orphans from live files


@dataclass(frozen=True)
class SpooledBody:
    """The body's bytes when it stayed under ``memory_bytes``, else the file that holds them."""

    size: int
    data: bytes | None = None
    path: Path | None = None

    def read(self) -> bytes:
        """The whole body (in a worker process, for a spooled one)."""
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


async def spool(pieces: AsyncIterator[bytes], *, limit: int, memory_bytes: int) -> SpooledBody:
    """Read ``pieces`` whole; ``PayloadTooLarge`` past ``limit`` bytes (counted as they arrive, nothing kept).
    The caller owns the file of the answer (``discard``)."""
    held: list[bytes] = []
    held_size = size = 0
    file: Path | None = None
    try:
        async for piece in pieces:
            size += len(piece)
            if size > limit:
                raise PayloadTooLarge(f"the request body is larger than {limit} bytes", max_body_bytes=limit)
            held.append(piece)
            held_size += len(piece)
            if held_size >= (WRITE_BATCH_BYTES if file is not None else memory_bytes):
                file = file or _new_file()
                await anyio.to_thread.run_sync(_append, file, held)
                held, held_size = [], 0
        if file is None:
            return SpooledBody(size=size, data=b"".join(held))
        if held:
            await anyio.to_thread.run_sync(_append, file, held)
        return SpooledBody(size=size, path=file)
    except BaseException:
        if file is not None:
            file.unlink(missing_ok=True)
        raise


def _new_file() -> Path:
    fd, name = tempfile.mkstemp(prefix=f"{PREFIX}{os.getpid()}-", suffix=".json")
    os.close(fd)
    return Path(name)


def sweep_orphans() -> list[Path]:
    """Remove the spool files of server processes that are gone (killed mid-upload: no ``finally`` ran);
    the server runs it as it starts. Returns what it removed."""
    removed = []
    for path in Path(tempfile.gettempdir()).glob(f"{PREFIX}*-*.json"):
        pid = path.name[len(PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _append(file: Path, pieces: list[bytes]) -> None:
    with file.open("ab") as out:
        out.writelines(pieces)
