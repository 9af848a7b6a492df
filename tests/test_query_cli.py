"""``nexus query`` with filters, modes and cursors."""

import json
import re

from nexus_query.cli import main
from nexus_query.context import RequestContext
from nexus_query.store import Record, build_rows

ACME = RequestContext("acme")


def load(store, provider):
    records = [Record(text=f"Tent model {i} can be returned within 60 days.", source=f"tent-{i}",
                      metadata={"topic": "returns" if i < 5 else "tents", "size": i % 2}) for i in range(8)]
    store.open_or_create(ACME, "main", provider.info).upsert(
        build_rows(ACME, records, provider.embed([r.text for r in records]), provider.info), provider.info)


def run_json(capsys, *args) -> dict:
    assert main(["query", "--key", "acme-demo-key", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_filters_take_json_values_and_text(store, provider, capsys):
    load(store, provider)
    hits = run_json(capsys, "tent returns", "--filter", "topic=returns", "--filter", "size=1", "--top-k", "10")["hits"]
    assert sorted(h["source"] for h in hits) == ["tent-1", "tent-3"]
    assert run_json(capsys, "tent", "--filter", 'size="1"')["hits"] == []  # the string "1" is not the number 1


def test_the_cursor_pages_through_every_hit_once(store, provider, capsys):
    load(store, provider)
    args = ["tent returns", "--top-k", "3", "--mode", "vector"]
    page = run_json(capsys, *args)
    seen = [h["source"] for h in page["hits"]]
    while page["next_cursor"]:
        page = run_json(capsys, *args, "--cursor", page["next_cursor"])
        seen += [h["source"] for h in page["hits"]]
    assert sorted(seen) == sorted(f"tent-{i}" for i in range(8))


def test_the_table_says_how_to_get_the_next_page(store, provider, capsys):
    load(store, provider)
    assert main(["query", "--key", "acme-demo-key", "tent", "--top-k", "2", "--include-global"]) == 0
    out = capsys.readouterr().out
    assert "next page: add --cursor nx1." in out and out.count("tenant") == 2


def test_a_bad_cursor_prints_the_410_envelope(store, provider, capsys):
    load(store, provider)
    assert main(["query", "--json", "--key", "acme-demo-key", "tent", "--cursor", "nx1.forged.cursor"]) == 2
    assert json.loads(capsys.readouterr().err)["error"]["code"] == "nexus.cursor_invalid"


def test_json_gives_score_details_and_min_score_cuts_before_paging(store, provider, capsys):
    load(store, provider)
    every = run_json(capsys, "can I return a tent model", "--top-k", "8")["hits"]
    assert all(set(h["score_details"]) == {"vector", "text", "rank_vector", "rank_text"} for h in every)
    assert all(0.0 <= h["score"] <= 1.0 for h in every)
    cut = every[1]["score"]
    page = run_json(capsys, "can I return a tent model", "--top-k", "1", "--min-score", str(cut))
    seen = page["hits"]
    while page["next_cursor"]:
        page = run_json(capsys, "can I return a tent model", "--top-k", "1", "--min-score", str(cut),
                        "--cursor", page["next_cursor"])
        seen += page["hits"]
    assert [h["doc_id"] for h in seen] == [h["doc_id"] for h in every if h["score"] >= cut]


def test_the_table_shows_scores_with_two_decimals(store, provider, capsys):
    load(store, provider)
    assert main(["query", "--key", "acme-demo-key", "tent returns", "--top-k", "3"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:5]
    assert all(re.match(r"\s+\d+\s+[01]\.\d\d\s+tenant\s", row) for row in rows), rows


def test_a_min_score_above_one_prints_the_400_envelope(store, provider, capsys):
    load(store, provider)
    assert main(["query", "--key", "acme-demo-key", "tent", "--min-score", "1.5", "--json"]) == 2
    error = json.loads(capsys.readouterr().err)["error"]
    assert error["code"] == "nexus.invalid_request" and error["field"] == "min_score"
