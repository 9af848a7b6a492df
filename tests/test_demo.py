import re
from pathlib import Path

import pytest

from nexus_pipelines import demo


@pytest.mark.slow  # ingests every example space, builds facts, the map and an artifact
def test_demo_ingests_every_space_and_shows_facts_map_artifact_and_hits(nexus_home, capsys):
    assert demo.main() == 0
    out = capsys.readouterr().out
    assert "acme/main:" in out and "globex/main:" in out and "global:" in out
    acme_part = out.split("query: 'how do I return a tent?'")[1].split("Nexus(")[0]
    first_hit, second_hit = acme_part.strip().splitlines()[2:4]
    # the tent-return chat (its turns open with speaker, date and title) or the returns policy
    assert "tent" in first_hit.lower() and "return" in (first_hit + second_hit).lower()
    assert "p95 latency of checkout rose 19.7%" in out  # the step injected into the example measurements
    map_html = Path(re.search(r"open (\S+map\.html)", out).group(1))
    assert map_html.is_file() and str(map_html).startswith(str(nexus_home))
    assert re.search(r"cognition artifact for .*: sha256:[0-9a-f]{64}\n  ASSEMBLED", out)
    latency_part = out.split("query: 'how is checkout latency?'")[1].split("Nexus(")[0]
    assert "kpi/checkout_laten" in latency_part
    assert f"The demo's data lives in {nexus_home}" in out and "make dev" in out.split("Next:")[1]


def table_versions_and_maps(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*")
                  if p.is_file() and ("_versions" in p.parts or "snapshots" in p.parts))


@pytest.mark.slow  # the demo twice
def test_a_second_demo_leaves_every_table_version_and_map_as_it_was(nexus_home, capsys):
    assert demo.main() == 0
    before = table_versions_and_maps(nexus_home)
    assert demo.main() == 0
    assert table_versions_and_maps(nexus_home) == before
