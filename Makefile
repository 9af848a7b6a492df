# Set-up and everyday commands. Every target creates .venv when it is missing.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin

# The embedded default keeps its data and Dagster's local storage inside the checkout (both git-ignored).
export NEXUS_HOME   ?= $(CURDIR)/.nexus
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test test-fast dev install install-dev bench clean chromium postgresql

# The demo's Dagster runs land in $(DAGSTER_HOME), so `make dev` shows them afterwards.
demo: $(VENV)/.installed-app $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m nexus_pipelines.demo

test: $(VENV)/.installed-dev chromium postgresql
	$(BIN)/python -m pytest

# The inner loop: everything but the tests that start servers or processes (CI runs `make test`).
test-fast: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m "not slow"

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

# The CPU build of torch goes in first, so nothing that depends on torch pulls the CUDA packages.
$(VENV)/.torch: | $(BIN)/python
	$(BIN)/pip install torch==2.13.0
	touch $@

$(VENV)/.installed-app: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install -e '.[server,pipelines]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install -e '.[dev]'
	touch $@ $(VENV)/.installed-app

clean:
	rm -rf $(VENV) .nexus .dagster_home
