"""The session-end check: a process a test session started and left alive fails the run (and is ended),
however far down the tree it was started; ``stop_tree`` ends a server's children of children."""

from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]

# A process that starts a grandchild in a session of its own, writes the grandchild's pid, and stays alive
# (as `dagster-daemon` does with its code server) or exits at once (the grandchild is then an orphan).
SPAWNER = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
open(sys.argv[1], "w").write(str(child.pid))
if sys.argv[2] == "stay":
    child.wait()
"""


def inner_session(pytester, test_body: str):
    pytester.makeconftest(f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from tests.process_guard import pytest_sessionfinish, pytest_sessionstart, stop_tree  # noqa: F401
""")
    pytester.makepyfile(spawner=SPAWNER)
    pytester.makepyfile(test_inner=f"""
import subprocess, sys, time
from pathlib import Path
from tests.process_guard import stop_tree

def grandchild(pid_file):
    while not pid_file.exists() or not pid_file.read_text():
        time.sleep(0.05)
    return int(pid_file.read_text())

{test_body}
""")
    return pytester.runpytest_subprocess("-p", "no:cacheprovider")


def pid_of(pytester) -> int:
    return int((pytester.path / "grandchild.pid").read_text())


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_an_orphaned_grandchild_left_alive_fails_the_session_and_is_ended(pytester):
    result = inner_session(pytester, """
def test_leaves_a_grandchild_behind():
    subprocess.run([sys.executable, "spawner.py", "grandchild.pid", "exit"], check=True)
    grandchild(Path("grandchild.pid"))
""")
    result.assert_outcomes(passed=1)  # the test itself passed: the run fails at the session's end
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*leaked processes*", f"*pid {pid_of(pytester)}:*time.sleep(600)*"])
    assert gone(pid_of(pytester))


def test_a_server_stopped_with_stop_tree_takes_its_grandchild_along_and_the_session_passes(pytester):
    result = inner_session(pytester, """
def test_stops_what_it_starts():
    server = subprocess.Popen([sys.executable, "spawner.py", "grandchild.pid", "stay"])
    grandchild(Path("grandchild.pid"))
    stop_tree(server)
""")
    result.assert_outcomes(passed=1)
    assert result.ret == 0, result.stdout.str()
    assert "leaked processes" not in result.stdout.str()
    assert gone(pid_of(pytester))


def test_the_resource_tracker_a_spawned_process_leaves_to_the_interpreter_is_not_a_leak(pytester):
    result = inner_session(pytester, """
import multiprocessing

def test_spawns_a_worker_and_joins_it():
    worker = multiprocessing.get_context("spawn").Process(target=print, args=("hello",))
    worker.start()
    worker.join()
    assert worker.exitcode == 0
""")
    result.assert_outcomes(passed=1)
    assert result.ret == 0, result.stdout.str()

