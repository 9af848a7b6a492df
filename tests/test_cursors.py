"""Cursors: pages stay consistent while ingestion goes on; anything forged, foreign or stale is 410."""

import base64
import json
import os
import stat
from datetime import timedelta

import pytest

from nexus_query.config import _cached_default
from nexus_query.context import RequestContext
from nexus_query.cursors import CursorSigner, CursorState, signer_for
from nexus_query.errors import CursorInvalid
from nexus_query.query import query
from nexus_query.store import Record, SpaceStore, build_rows
from tests.helpers import load_texts

ACME, GLOBEX = RequestContext("acme"), RequestContext("globex")
TENTS = {f"tent-{i}": f"Tent model {i} sleeps {i % 4 + 1} people and packs down small." for i in range(12)}


def run(store, provider, ctx=ACME, q="which tent sleeps two people", **kwargs):
    return query(ctx, "main", q, store=store, provider=provider, **{"top_k": 4, **kwargs})


def test_later_pages_read_page_ones_versions_while_ingestion_goes_on(store, provider):
    space = load_texts(store, provider, ACME, "main", TENTS)
    first = run(store, provider)
    # ingestion between pages: a perfect new match, and an update to a row page 2 would show
    newcomer = Record(text="Which tent sleeps two people? The Duo tent sleeps two people.", source="duo")
    changed = Record(text="Tent model 5 is discontinued.", source="tent-5")
    space.upsert(build_rows(ACME, [newcomer, changed], provider.embed([newcomer.text, changed.text]), provider.info),
                 provider.info)
    pages, cursor = [first.hits], first.next_cursor
    for _ in range(10):
        if cursor is None:
            break
        page = run(store, provider, cursor=cursor)
        assert page.table_versions == first.table_versions
        pages.append(page.hits)
        cursor = page.next_cursor
    seen = [h.source for page in pages for h in page]
    assert sorted(seen) == sorted(TENTS) and len(seen) == len(set(seen))  # all of version 1, once each
    assert [len(p) for p in pages] == [4, 4, 4]
    old_five = next(h for page in pages for h in page if h.source == "tent-5")
    assert old_five.content == TENTS["tent-5"]
    fresh = run(store, provider)
    assert fresh.hits[0].source == "duo" and fresh.table_versions["tenant"] > first.table_versions["tenant"]


def test_the_last_page_has_no_cursor(store, provider):
    load_texts(store, provider, ACME, "main", TENTS)
    result = run(store, provider, top_k=12)
    assert len(result.hits) == 12 and result.next_cursor is None


def tamper(cursor: str, edit) -> str:
    prefix, payload, signature = cursor.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    edit(body)
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return ".".join([prefix, base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), signature])


@pytest.mark.parametrize("forge", [
    lambda c: c[:-3],                                                   # truncated
    lambda c: c + "x",                                                  # extended
    lambda c: "garbage",                                                # not a cursor
    lambda c: "nx1.%%%.%%%",                                            # not base64
    lambda c: c.replace("nx1.", "nx2.", 1),                              # unknown format
    lambda c: tamper(c, lambda b: b.update(o=0)),                        # rewound offset, old signature
    lambda c: tamper(c, lambda b: b.update(t="globex")),                 # another tenant, old signature
    lambda c: CursorSigner(b"not-the-server-secret-at-all").issue(      # signed with another secret
        ACME, "main", digest_of(c), CursorState({"tenant": 1}, 4)),
])
def test_corrupt_or_forged_cursors_are_410(store, provider, forge):
    load_texts(store, provider, ACME, "main", TENTS)
    cursor = run(store, provider).next_cursor
    with pytest.raises(CursorInvalid) as info:
        run(store, provider, cursor=forge(cursor))
    assert info.value.status == 410 and info.value.code == "nexus.cursor_invalid"


def test_a_cursor_only_works_for_its_tenant_space_and_query(store, provider):
    load_texts(store, provider, ACME, "main", TENTS)
    load_texts(store, provider, ACME, "other", TENTS)
    load_texts(store, provider, GLOBEX, "main", TENTS)
    genuine = {"filters": {"x": {"$exists": False}}, "mode": "vector"}
    cursor = run(store, provider, **genuine).next_cursor
    assert run(store, provider, cursor=cursor, **genuine).hits  # the genuine use works
    for misuse in [dict(ctx=GLOBEX), dict(q="a different question"), dict(filters={"x": {"$exists": True}}),
                   dict(filters=None), dict(mode="hybrid"), dict(include_global=True)]:
        kwargs = {**genuine, "cursor": cursor, **misuse}
        with pytest.raises(CursorInvalid):
            run(store, provider, **kwargs)
    with pytest.raises(CursorInvalid):
        query(ACME, "other", "which tent sleeps two people", cursor=cursor, top_k=4, store=store, provider=provider,
              **genuine)


def test_a_cursor_whose_versions_were_cleaned_up_is_410(store, provider):
    load_texts(store, provider, ACME, "main", TENTS)
    cursor = run(store, provider).next_cursor
    assert run(store, provider, cursor=cursor).hits
    space = load_texts(store, provider, ACME, "main", {"extra": "A brand new tent arrived."})
    space.table.optimize(cleanup_older_than=timedelta(0))  # drops every version but the latest
    with pytest.raises(CursorInvalid) as info:
        run(store, provider, cursor=cursor)
    assert info.value.status == 410


def digest_of(cursor: str) -> str:
    return json.loads(base64.urlsafe_b64decode(cursor.split(".")[1] + "==="))["q"]


def test_an_expired_cursor_is_410(store, provider):
    load_texts(store, provider, ACME, "main", TENTS)
    signer = signer_for(store.registry.config)
    cursor = run(store, provider).next_cursor
    state = signer.open(cursor, ACME, "main", digest_of(cursor))
    expired = signer.issue(ACME, "main", digest_of(cursor), state, now=0)
    with pytest.raises(CursorInvalid):
        run(store, provider, cursor=expired)


def test_the_development_secret_is_generated_once_and_kept_private(store, provider, nexus_home):
    load_texts(store, provider, ACME, "main", TENTS)
    cursor = run(store, provider).next_cursor
    secret_file = nexus_home / "cursor.secret"
    assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600 and len(secret_file.read_text().strip()) == 64
    signer_for.cache_clear()  # a new process reads the same file, so old cursors stay valid
    assert run(store, provider, cursor=cursor).hits


def store_with_secret(monkeypatch, secret: str) -> SpaceStore:
    monkeypatch.setenv("NEXUS_CURSOR_SECRET", secret)
    _cached_default.cache_clear()
    return SpaceStore()


def test_a_configured_secret_signs_and_other_secrets_do_not_verify(nexus_home, provider, monkeypatch):
    first = store_with_secret(monkeypatch, "a-configured-secret-of-enough-length")
    load_texts(first, provider, ACME, "main", TENTS)
    cursor = run(first, provider).next_cursor
    assert run(first, provider, cursor=cursor).hits and not (nexus_home / "cursor.secret").exists()
    second = store_with_secret(monkeypatch, "another-configured-secret-entirely")
    with pytest.raises(CursorInvalid):
        run(second, provider, cursor=cursor)
