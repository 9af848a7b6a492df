"""The data root comes from the config file's location or NEXUS_HOME, never the current folder, and a
read names where it looked and creates nothing."""

from __future__ import annotations

import pytest

from nexus_query import connect
from nexus_query.config import load_config
from nexus_query.context import RequestContext
from nexus_query.errors import SpaceNotFound
from tests.helpers import REPO, load_texts

ACME = RequestContext("acme")


@pytest.fixture
def no_home(monkeypatch):
    monkeypatch.delenv("NEXUS_HOME", raising=False)
    monkeypatch.delenv("NEXUS_CONFIG", raising=False)


def test_the_default_data_root_is_the_checkouts_from_any_folder(no_home, monkeypatch, tmp_path):
    for folder in (tmp_path, REPO / "examples", REPO):
        monkeypatch.chdir(folder)
        assert load_config().data_root == REPO / ".nexus"


def test_a_relative_data_root_is_relative_to_the_config_file_not_the_current_folder(no_home, monkeypatch,
                                                                                   tmp_path):
    config = tmp_path / "conf" / "nexus.yaml"
    config.parent.mkdir()
    config.write_text((REPO / "nexus_query" / "default_config.yaml").read_text()
                      .replace("data_root: ${NEXUS_HOME:-}", "data_root: ../data"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_config(config)
    assert loaded.data_root == tmp_path / "data"
    assert loaded.environments["dev"].tenants["acme"].nexus_store.uri == f"{tmp_path}/data/lance"


def test_a_relative_nexus_home_means_the_folder_it_was_set_in(monkeypatch, tmp_path):
    monkeypatch.delenv("NEXUS_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEXUS_HOME", "home")
    assert load_config().data_root == tmp_path / "home"


def test_a_missing_space_names_where_it_looked_and_the_read_creates_nothing(nexus_home, provider):
    nx = connect(api_key="acme-demo-key")
    with pytest.raises(SpaceNotFound) as missing:
        nx.query("main", "how do I return a tent?", provider=provider)
    looked_in = str(nexus_home / "lance" / "acme" / "default")
    assert looked_in in str(missing.value) and "no space exists there yet" in str(missing.value)
    assert not nexus_home.exists()  # no folder, no cursor secret
    envelope = missing.value.envelope()["error"]
    assert envelope["existing_spaces"] == [] and looked_in not in envelope["message"]  # HTTP: no server paths


def test_a_missing_space_lists_the_spaces_that_exist(store, provider):
    load_texts(store, provider, ACME, "docs", {"tents": "Return a tent within 60 days."})
    load_texts(store, provider, ACME, "faq", {"stoves": "The stove burns propane."})
    with pytest.raises(SpaceNotFound) as missing:
        connect(api_key="acme-demo-key").query("main", "tent", provider=provider)
    assert "the spaces that exist: docs, faq" in str(missing.value)
    assert missing.value.envelope()["error"]["existing_spaces"] == ["docs", "faq"]
    assert store.space_ids(ACME) == ["docs", "faq"]
