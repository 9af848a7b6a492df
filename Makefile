# Set-up and everyday commands. Every target creates .venv when it is missing.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin

# The embedded default keeps its data and Dagster's local storage inside the checkout (both git-ignored).
export NEXUS_HOME   ?= $(CURDIR)/.nexus
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test test-fast lint dev notebook install install-dev lock bench clean chromium postgresql

# The demo's Dagster runs land in $(DAGSTER_HOME), so `make dev` shows them afterwards.
demo: $(VENV)/.installed-app $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m nexus_pipelines.demo

# Two test processes (pytest-xdist), one test file each at a time: a file's servers start once, and the
# Dagster runs, servers and model of one file use the core the other leaves idle. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: $(VENV)/.installed-dev chromium postgresql
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# The inner loop: everything but the tests that start servers or processes (CI runs `make test`).
test-fast: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m "not slow"

# ruff and mypy, as configured in pyproject.toml and as the pre-commit hooks run them. The pipelines are
# checked on their own: `mypy nexus_query` only follows its lazy imports of them silently.
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/python -m mypy nexus_query
	$(BIN)/python -m mypy nexus_pipelines

# The HAZE map tests open the static HTML map in headless Chromium (Debian/Ubuntu package `chromium`).
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

# The Dagster-on-Postgres tests start a real PostgreSQL server (Debian/Ubuntu package `postgresql`, whose
# binaries live in /usr/lib/postgresql/<version>/bin).
postgresql:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

dev: $(VENV)/.installed-app $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

# JupyterLab on examples/ (analyst.ipynb and haze.ipynb read the spaces `make demo` built).
notebook: $(VENV)/.installed-notebook
	$(BIN)/jupyter lab --notebook-dir=examples --ip=127.0.0.1

install: $(VENV)/.installed-app
install-dev: $(VENV)/.installed-dev

# Speed targets, each measured side by side in one run (several minutes each on 2 cores).
bench: $(VENV)/.installed-dev
	$(BIN)/python bench/query_bench.py
	$(BIN)/python bench/ingest_bench.py
	$(BIN)/python bench/cognition_bench.py
	$(BIN)/python bench/haze_bench.py
	$(BIN)/python bench/scale_sim.py

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	ln -sf $(CURDIR)/dagster.yaml $@

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The locks pin every package exactly: app.lock is what `.[server,pipelines]` needs, notebook.lock `.[notebook]`,
# dev.lock `.[dev]`.
# The CPU build of torch (the lock's torch pin) goes in first, so nothing that depends on torch pulls the CUDA
# packages; then the lock, then this checkout itself without resolving anything again.
$(VENV)/.torch: requirements/torch-cpu.in | $(BIN)/python
	$(BIN)/pip install -r requirements/torch-cpu.in
	touch $@

$(VENV)/.installed-app: requirements/app.lock pyproject.toml $(VENV)/.torch
	$(BIN)/pip install -r requirements/app.lock
	$(BIN)/pip install --no-deps -e .
	touch $@

$(VENV)/.installed-notebook: requirements/notebook.lock pyproject.toml $(VENV)/.torch
	$(BIN)/pip install -r requirements/notebook.lock
	$(BIN)/pip install --no-deps -e .
	touch $@

$(VENV)/.installed-dev: requirements/dev.lock pyproject.toml $(VENV)/.torch
	$(BIN)/pip install -r requirements/dev.lock
	$(BIN)/pip install --no-deps -e .
	touch $@ $(VENV)/.installed-app $(VENV)/.installed-notebook

# Regenerate the locks from pyproject.toml after changing a dependency: pins already in a lock are kept when
# they still fit (`make lock LOCK_ARGS=--upgrade` moves everything to the newest releases). pip-compile runs
# from its own small venv, so the project's environment holds nothing the app does not use. torch must resolve
# to the CPU build (this machine's pip finds it through its find-links; elsewhere add
# LOCK_ARGS='--extra-index-url https://download.pytorch.org/whl/cpu'); the check below fails on a CUDA lock.
LOCK_TOOLS  := .lock-tools
PIP_COMPILE := CUSTOM_COMPILE_COMMAND='make lock' $(LOCK_TOOLS)/bin/pip-compile --quiet --allow-unsafe \
               --strip-extras --no-emit-index-url --no-emit-find-links $(LOCK_ARGS)

# An extra that names the project's own extras (dev: nexus[server,...]) makes pip-compile pin this checkout by
# its absolute path: not a pin, dropped with its annotation lines.
DROP_SELF_PIN := sed -i '/^nexus @ file:/,/^[^ ]/{/^nexus @ file:/d;/^    \#/d}'

$(LOCK_TOOLS)/bin/pip-compile:
	$(PYTHON) -m venv $(LOCK_TOOLS)
	$(LOCK_TOOLS)/bin/pip install pip-tools==7.6.2

lock: $(LOCK_TOOLS)/bin/pip-compile
	$(PIP_COMPILE) --extra dev -o requirements/dev.lock pyproject.toml requirements/torch-cpu.in
	$(DROP_SELF_PIN) requirements/dev.lock
	$(PIP_COMPILE) --extra server --extra pipelines -c requirements/dev.lock -o requirements/app.lock \
	  pyproject.toml requirements/torch-cpu.in
	$(DROP_SELF_PIN) requirements/app.lock
	$(PIP_COMPILE) --extra notebook -c requirements/dev.lock -o requirements/notebook.lock \
	  pyproject.toml requirements/torch-cpu.in
	$(DROP_SELF_PIN) requirements/notebook.lock
	@for lock in requirements/app.lock requirements/notebook.lock requirements/dev.lock; do \
	  grep -q '^torch==.*+cpu$$' $$lock && ! grep -q '^nvidia-' $$lock || \
	    { echo "$$lock: torch is not the CPU build (the CUDA packages came with it)"; exit 1; }; done

clean:
	rm -rf $(VENV) $(LOCK_TOOLS) .nexus .dagster_home
