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


def test_progress_into_a_pipe_is_a_line_per_step_without_carriage_returns():
    probe = ("from nexus_pipelines.common.progress import progress\n"
             "with progress(total=3, desc='ingesting acme.default.main', unit='step') as bar:\n"
             "    for step in ('load', 'embed', 'write'):\n"
             "        bar.set_postfix_str(step)\n"
             "        bar.update(1)\n"
             "for _ in progress(['a', 'b'], desc='spaces', unit='space'):\n"
             "    pass\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "\r" not in done.stderr
    assert done.stderr.splitlines() == ["ingesting acme.default.main: 1/3 step (load)",
                                        "ingesting acme.default.main: 2/3 step (embed)",
                                        "ingesting acme.default.main: 3/3 step (write)",
                                        "spaces: 1/2 space", "spaces: 2/2 space"]
