from nexus_pipelines import demo


def test_demo_loads_every_demo_space_and_prints_hits_for_acme(nexus_home, capsys):
    assert demo.main() == 0
    out = capsys.readouterr().out
    assert "acme/main:" in out and "globex/main:" in out
    acme_part = out.split("query: 'how do I return a tent?'")[1].split("Nexus(")[0]
    first_hit = acme_part.strip().splitlines()[2]
    assert "return" in first_hit.lower() and "tent" in first_hit.lower()
