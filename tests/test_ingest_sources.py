"""Reading the landing zone: what becomes a document, which version wins, what is skipped and said."""

import json

import pytest

from nexus_pipelines.ingest.sources import LandingReader, normalize_text
from nexus_query.context import RequestContext
from nexus_query.landing import landing_zone

ACME = RequestContext("acme")


def docs(zone) -> dict[str, dict]:
    return {d["doc_id"]: d for d in LandingReader(zone, "main").documents()}


def test_a_re_sent_document_keeps_its_latest_version_and_files_yield_to_batches(nexus_home):
    zone = landing_zone(ACME)
    zone.files.write_bytes_atomic(json.dumps({"id": "faq", "type": "text", "content": "from a file"}).encode(),
                                  "landing", "main", "files", "faq.jsonl")
    zone.land_batch("main", [{"type": "text", "id": "faq", "content": "first batch"},
                             {"type": "text", "id": "other", "content": "stays"}])
    zone.land_batch("main", [{"type": "text", "id": "faq", "content": "second batch"}])
    found = docs(zone)
    assert found["faq"]["text"] == "second batch" and found["other"]["text"] == "stays"
    assert len(found) == 2


def test_bad_dropped_files_and_lines_are_skipped_and_reported_while_good_ones_load(nexus_home):
    zone = landing_zone(ACME)
    put = lambda name, data: zone.files.write_bytes_atomic(data, "landing", "main", "files", name)  # noqa: E731
    put("items.jsonl",
        b'{"id": "good", "type": "text", "content": "fine"}\nnot json\n{"type": "text", "content": " "}\n')
    put("latin1.txt", "caf\xe9".encode("latin-1"))
    put("empty.md", b"   \n")
    put("export.json", b'{"conversations": []}')
    put("photo.png", b"\x89PNG")
    put("photo.png.json", b'{"caption": "a tent", "metadata": {"board": "camping"}}')
    reader = LandingReader(zone, "main")
    found = {d["doc_id"]: d for d in reader.documents()}
    assert set(found) == {"good", "photo.png"}
    assert [p.split(":")[0] for p in reader.problems] == ["landing/main/files/empty.md",
                                                          "landing/main/files/items.jsonl",
                                                          "landing/main/files/items.jsonl",
                                                          "landing/main/files/latin1.txt"]
    assert reader.summary()["ignored_files"] == 1  # export.json is another pipeline's
    assert found["photo.png"]["type"] == "image" and found["photo.png"]["blob_path"] == "landing/main/files/photo.png"


def test_an_unreadable_batch_fails_the_read_instead_of_being_skipped(nexus_home):
    zone = landing_zone(ACME)
    task = zone.land_batch("main", [{"type": "text", "content": "accepted"}])
    zone.files.write_bytes_atomic(b"{truncated", *zone.batch_parts("main", task.task_id))
    with pytest.raises(ValueError):
        list(LandingReader(zone, "main").documents())


def test_text_is_normalized_before_hashing_so_equal_text_hashes_equal(nexus_home):
    assert normalize_text("\ufeffcafe\u0301\r\nline\rend") == "caf\u00e9\nline\nend"
    zone = landing_zone(ACME)
    zone.land_batch("main", [{"type": "text", "id": "a", "content": "cafe\u0301\r\n"},
                             {"type": "text", "id": "b", "content": "caf\u00e9\n"}])
    found = docs(zone)
    assert found["a"]["text"] == found["b"]["text"]
