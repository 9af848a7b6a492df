"""Who runs a request: one claim per ingest batch, conversation import or erasure request, so that a
``--wait`` command, the server's fast path and the daemon's sensors never run the same request twice.

A claim is a lease in the tenant's store, ``claims/{request_id}/{generation}.json``, created with an
exclusive create (``TenantFiles.write_bytes_once``: a hard link locally, a conditional PUT on S3), so of
two claimants exactly one gets a generation. The holder renews its lease while it works (``Holding``)
and releases it when done; a holder that dies stops renewing, its lease runs out, and the next claimant
takes the next generation. Sensors never claim: they skip a request whose claim is live (someone is
running it) and start a run for it once the claim is released with its task unsettled or has expired.
Waiters follow the request's task (``nexus_query.landing``), which is the outcome.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace

from nexus_query.context import validate_id
from nexus_query.paths import TenantFiles

CLAIM_POLL_SECONDS = 0.2  # how often a waiter looks whether a claim was let go

LEASE_SECONDS = 30.0  # a holder renews every third of this; a dead holder's claim is free this long after
CLAIMS_DIR = "claims"


def new_owner(role: str) -> str:
    """A claimant's name: its role, host and process, and a nonce (two claimants are never the same)."""
    return f"{role}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Claim:
    request_id: str
    owner: str
    generation: int
    lease_until: float  # epoch seconds; 0 once released

    def live(self, now: float | None = None) -> bool:
        return self.lease_until > (time.time() if now is None else now)


class Claims:
    """The claims of one tenant area (``TenantFiles``)."""

    def __init__(self, files: TenantFiles, lease_seconds: float | None = None) -> None:
        self.files = files
        self.lease_seconds = LEASE_SECONDS if lease_seconds is None else lease_seconds

    def current(self, request_id: str) -> Claim | None:
        """The latest generation's claim of ``request_id`` (live or not), None when never claimed."""
        prefix = f"{CLAIMS_DIR}/{validate_id(request_id, 'request_id')}/"
        generations = sorted(p for p in self.files.list(CLAIMS_DIR, request_id) if p.startswith(prefix))
        if not generations:
            return None
        return Claim(**json.loads(self.files.read_bytes(generations[-1])))

    def held_by_other(self, request_id: str, owner: str | None = None) -> bool:
        """Someone other than ``owner`` holds a live claim on ``request_id``."""
        claim = self.current(request_id)
        return claim is not None and claim.live() and claim.owner != owner

    def acquire(self, request_id: str, owner: str) -> Claim | None:
        """Claim ``request_id`` for ``owner``: the new claim, or None when another holder's claim is live or
        another claimant took the same generation first."""
        claim = self.current(request_id)
        if claim is not None and claim.live() and claim.owner != owner:
            return None
        generation = claim.generation + 1 if claim is not None else 1
        mine = Claim(request_id, owner, generation, time.time() + self.lease_seconds)
        return mine if self.files.write_bytes_once(self._body(mine), *self._parts(mine)) else None

    def renew(self, claim: Claim) -> Claim:
        """A longer lease for a claim still held (only its holder writes its generation)."""
        renewed = replace(claim, lease_until=time.time() + self.lease_seconds)
        self.files.write_bytes_atomic(self._body(renewed), *self._parts(renewed))
        return renewed

    def release(self, claim: Claim) -> None:
        """Done: the request is free (its task says how it ended)."""
        self.files.write_bytes_atomic(self._body(replace(claim, lease_until=0.0)), *self._parts(claim))

    def hold(self, claim: Claim) -> Holding:
        return Holding(self, claim)

    @staticmethod
    def _parts(claim: Claim) -> tuple[str, str, str]:
        return CLAIMS_DIR, claim.request_id, f"{claim.generation:08d}.json"

    @staticmethod
    def _body(claim: Claim) -> bytes:
        return json.dumps(asdict(claim)).encode()


class Holding:
    """A claim being held: renewed in a background thread from now until ``release`` (or the end of a
    ``with`` block), whether the work succeeds or not: the task records the outcome. It may be handed
    to another thread (the server lands in a request thread and ingests in its writer thread)."""

    def __init__(self, claims: Claims, claim: Claim) -> None:
        self.claims, self.claim = claims, claim
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"claim-{claim.request_id}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.claims.lease_seconds / 3):
            self.claim = self.claims.renew(self.claim)

    def release(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self.claims.release(self.claim)

    def __enter__(self) -> Holding:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def hold_claim(files: TenantFiles, request_id: str | None = None, role: str = "wait",
               wait: float = 0.0) -> Holding:
    """A claim on ``request_id`` (a fresh id when None: claim it before landing anything under it), held
    until the caller (or the thread it hands the ``Holding`` to) releases it. While someone else holds
    it, wait up to ``wait`` seconds for them to finish (or their lease to lapse); ``ClaimHeld`` after that."""
    claims = Claims(files)
    request_id = request_id or uuid.uuid4().hex
    owner = new_owner(role)
    deadline = time.monotonic() + wait
    while (claim := claims.acquire(request_id, owner)) is None:
        if time.monotonic() >= deadline:
            raise ClaimHeld(request_id)
        time.sleep(CLAIM_POLL_SECONDS)
    return claims.hold(claim)


@contextlib.contextmanager
def claimed(files: TenantFiles, request_id: str | None = None, role: str = "wait",
            wait: float = 0.0) -> Iterator[Holding]:
    """``hold_claim`` for the ``with`` block."""
    with hold_claim(files, request_id, role, wait) as holding:
        yield holding


class ClaimHeld(Exception):
    """Someone else holds the request's claim and did not let go in time."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"request {request_id} is held by another runner")
        self.request_id = request_id
