"""Quiet by default: no warnings about Dagster features the code location uses on purpose."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import warnings
import nexus_pipelines.definitions  # every domain's decorators run here
from dagster import BetaWarning
warnings.warn("Parameter `anything_else` of function `asset` is currently in beta", BetaWarning)
"""


def test_loading_the_code_location_prints_no_beta_or_preview_warning_of_our_own_choices():
    done = subprocess.run([sys.executable, "-W", "default", "-c", PROBE], capture_output=True, text=True,
                          check=True)
    lines = [line for line in done.stderr.splitlines() if "Warning:" in line]
    assert len(lines) == 1, lines  # only the unrelated beta warning raised by the probe itself
    assert "anything_else" in lines[0]
