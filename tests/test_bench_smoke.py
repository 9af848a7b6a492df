"""Every bench script runs to its end at its ``--smoke`` size (seconds each, in a fresh home), so a bench
never breaks unnoticed: the figures the README quotes can always be measured again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
# Every script in bench/, including ones added later: each must take --smoke.
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if not p.name.startswith("_"))
HANG_GUARD_SECONDS = 900  # only a bound against a hung child; never a speed target


def test_every_bench_script_is_smoke_tested():
    assert {"api_load.py", "query_bench.py", "scale_sim.py"} <= set(SCRIPTS)


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_the_bench_runs_to_its_end_at_its_smoke_size(script, tmp_path):
    env = {**os.environ, "NEXUS_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(BENCH.parent), os.environ.get("PYTHONPATH", "")])}
    env.pop("NEXUS_CONFIG", None)
    env.pop("DAGSTER_HOME", None)
    done = subprocess.run([sys.executable, str(BENCH / script), "--smoke"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=HANG_GUARD_SECONDS)
    assert done.returncode == 0, f"{script} --smoke failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.stdout.strip(), f"{script} --smoke printed nothing"
