"""Processes a test session starts, and the session-end check that none of them outlives it.

Servers the tests start (uvicorn, moto_server, PostgreSQL, `dagster dev`, `dagster-daemon`) start processes
of their own (Dagster code servers, run workers), some in a new session, so ending the direct child is not
enough. ``stop_tree`` ends a process and everything under it; the session marks every process it starts
with an environment variable, and fails the run if a marked process is still alive when it ends.
Loaded as a plugin by tests/conftest.py (and, by the test that proves it, by an inner pytest run).
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid

import psutil
import pytest

# Inherited by every process the session starts, children of children included, unless a test builds an
# environment from scratch (tests pass ``{**os.environ, ...}``); what the session's own process tree holds is
# checked as well.
SESSION_MARKER = "NEXUS_TEST_SESSION"
EXIT_GRACE_SECONDS = 5.0  # for processes that were told to stop and are still shutting down
# Helpers an interpreter starts for itself the first time a library needs them (multiprocessing's resource
# tracker after a "spawn" Process, joblib's loky workers); they serve the pytest process and end with it.
INTERPRETER_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver", "joblib.externals.loky")


def is_running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and every descendant alive now (the root first)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def end_processes(procs: list[psutil.Process], grace: float = EXIT_GRACE_SECONDS) -> None:
    """SIGTERM, then SIGKILL what is still alive after ``grace`` seconds."""
    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace)


def stop_tree(proc: subprocess.Popen, grace: float = 60.0) -> None:
    """End ``proc`` and every process under it. The root gets SIGTERM first (its process group when it leads
    one, as `dagster dev` does with ``start_new_session``) so it can stop its children itself; descendants
    still alive after that, including ones that moved to a session of their own, are ended directly."""
    descendants = process_tree(proc.pid)[1:]  # taken before the root exits and its orphans are re-parented
    if proc.poll() is None:
        try:
            if os.getpgid(proc.pid) == proc.pid:
                os.killpg(proc.pid, signal.SIGTERM)
            else:
                proc.terminate()
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace)
    end_processes([p for p in descendants if is_running(p)])


def _serves_this_interpreter(proc: psutil.Process, me: int) -> bool:
    try:
        return proc.ppid() == me and any(h in " ".join(proc.cmdline()) for h in INTERPRETER_HELPERS)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def session_processes(token: str) -> list[psutil.Process]:
    """Processes alive now that this session started: its descendants and every process carrying its marker,
    except the helpers the pytest process's own interpreter keeps until it exits."""
    me = os.getpid()
    found = {p.pid: p for p in process_tree(me)[1:]}
    for proc in psutil.process_iter():
        if proc.pid == me or proc.pid in found:
            continue
        try:
            if proc.environ().get(SESSION_MARKER) == token:
                found[proc.pid] = proc
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return [p for p in found.values() if is_running(p) and not _serves_this_interpreter(p, me)]


def describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid}: {' '.join(proc.cmdline()) or proc.name()}"
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return f"pid {proc.pid}"


_token_key = pytest.StashKey[str]()


def _is_xdist_controller(config: pytest.Config) -> bool:
    """Under pytest-xdist the controller runs no test: each worker guards the processes it starts, and the
    controller's own children are the workers themselves."""
    return config.pluginmanager.hasplugin("dsession")


def pytest_sessionstart(session: pytest.Session) -> None:
    if _is_xdist_controller(session.config):
        return
    token = uuid.uuid4().hex
    session.config.stash[_token_key] = token
    os.environ[SESSION_MARKER] = token  # a nested pytest run marks its own processes with its own token


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a process the session started is still alive; end those processes either way."""
    token = session.config.stash.get(_token_key, None)
    if token is None:
        return
    _, alive = psutil.wait_procs(session_processes(token), timeout=EXIT_GRACE_SECONDS)
    alive = [p for p in alive if is_running(p)]
    if not alive:
        return
    described = [describe(p) for p in alive]
    end_processes(alive)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = "processes started by the test session were still alive at its end (now ended):"
    if reporter is not None:
        reporter.write_sep("=", "leaked processes", red=True)
        reporter.write_line(message)
        for line in described:
            reporter.write_line(f"  {line}")
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
