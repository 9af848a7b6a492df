import subprocess
import sys


def test_importing_nexus_query_leaves_dagster_and_torch_unimported():
    code = ("import sys, nexus_query, nexus_query.cli, nexus_query.store, nexus_query.query;"
            "bad = [m for m in ('dagster', 'torch', 'sentence_transformers') if m in sys.modules];"
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
