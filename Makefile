# podflow: `make run` starts the whole stack, `make test` passes every test.
# Both create/update .venv and install missing system tools (apt-get, as root).

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.podflow-installed
BENCH_STAMP := $(VENV)/.podflow-bench-installed
PC_STAMP := $(VENV)/.podflow-podcast-creator-installed
PYTEST_ARGS ?=
BENCH_ARGS ?=

# command:debian-package pairs the runtime needs (ffmpeg: MP3 episodes and provider speech)
RUNTIME_TOOLS := redis-server:redis-server espeak-ng:espeak-ng ffmpeg:ffmpeg
# and what only the tests need on top (chromium: the dashboard's browser test;
# curl: a client the 413 tests compare with; ip, runuser: the two-host test;
# supervisord: the deploy/supervisor test; strace: the system-call counter's test)
TEST_TOOLS := chromium:chromium curl:curl ip:iproute2 runuser:util-linux supervisord:supervisor strace:strace
# and what the benchmarks use (strace: system calls per job)
BENCH_TOOLS := strace:strace

.PHONY: help setup run test postgres _install-postgres bench bench-quick lint clean

help:
	@echo "make run    set up and start the local stack (API, worker, scheduler)"
	@echo "make test   set up and run every test"
	@echo "make bench  run the benchmarks (writes bench/results/; about 16 minutes)"
	@echo "make bench-quick  a small benchmark run, for development"
	@echo "make lint   ruff, and mypy --strict on podflow, api and scheduler (pyproject.toml)"

# Install the Debian packages behind any missing command (as root), else say
# exactly what to install.
define ensure_tools
	@missing=""; for pair in $(1); do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "podflow: installing system packages:$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt="apt-get -o DPkg::Lock::Timeout=600 -y -qq"; \
	    $$apt install --no-install-recommends $$missing >/dev/null \
	      || { $$apt update && $$apt install --no-install-recommends $$missing >/dev/null; }; \
	  else \
	    echo "podflow: missing system packages:$$missing; install them with: sudo apt-get install$$missing" >&2; \
	    exit 1; \
	  fi; \
	fi
endef

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

setup: $(STAMP)
	$(call ensure_tools,$(RUNTIME_TOOLS))

# podflow up: a local redis-server when PODFLOW_BROKER_URL needs one, the API
# address, then honcho on the Procfile (api, worker, scheduler); Ctrl-C stops all
run: setup
	$(BIN)/podflow up

# the podcast-creator extra: its adapter is tested against the fake provider
$(PC_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,podcast-creator]'
	@touch $@

test: setup postgres $(PC_STAMP)
	$(call ensure_tools,$(TEST_TOOLS))
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# A PostgreSQL server for the store tests: PODFLOW_TEST_POSTGRES_URL's, else the one at
# 127.0.0.1:5432 (trust auth). Where none answers, as root: Debian's postgresql, a
# cluster started, and trust for 127.0.0.1 (tests create and drop their own databases).
# The two-host test starts a private server of its own with these binaries, as user postgres.
PG_UP := $(BIN)/python -c "import os, psycopg; psycopg.connect(os.environ.get('PODFLOW_TEST_POSTGRES_URL') or 'postgresql://postgres@127.0.0.1:5432/postgres', connect_timeout=3).close()"
postgres: setup
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory _install-postgres; \
	fi
	@if ! $(PG_UP) 2>/dev/null; then \
	  if [ -n "$$PODFLOW_TEST_POSTGRES_URL" ]; then \
	    echo "podflow: PODFLOW_TEST_POSTGRES_URL does not answer" >&2; exit 1; \
	  fi; \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "podflow: no PostgreSQL at 127.0.0.1:5432; start one (trust auth) or set PODFLOW_TEST_POSTGRES_URL" >&2; \
	    exit 1; \
	  fi; \
	  ver=$$(ls /etc/postgresql | sort -V | tail -1); \
	  [ -n "$$ver" ] || pg_createcluster "$$(ls /usr/lib/postgresql | sort -V | tail -1)" main; \
	  ver=$$(ls /etc/postgresql | sort -V | tail -1); \
	  hba=/etc/postgresql/$$ver/main/pg_hba.conf; \
	  grep -q podflow-tests "$$hba" || sed -i '1i host all all 127.0.0.1/32 trust # podflow-tests' "$$hba"; \
	  echo "podflow: starting PostgreSQL $$ver"; \
	  pg_ctlcluster --skip-systemctl-redirect "$$ver" main start || pg_ctlcluster "$$ver" main reload; \
	  for i in $$(seq 30); do $(PG_UP) 2>/dev/null && break; sleep 1; done; \
	  $(PG_UP); \
	fi

_install-postgres:
	$(call ensure_tools,pg_ctlcluster:postgresql)

# the benchmark-only extra (Celery, psutil, py-spy) on top of the test one
$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	@touch $@

bench: setup $(BENCH_STAMP)
	$(call ensure_tools,$(BENCH_TOOLS))
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-quick: setup $(BENCH_STAMP)
	$(call ensure_tools,$(BENCH_TOOLS))
	BENCH_SCALE=quick $(BIN)/python -m bench $(BENCH_ARGS)

lint: setup
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,dev]'
	$(BIN)/python -m ruff check podflow api scheduler tests bench
	$(BIN)/python -m mypy podflow api scheduler

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
