# The two set-up commands: `make run` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 9000
DATA_DIR ?= ./.relserver

.PHONY: run test lint typecheck fmt check clean bench torture system-deps

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "relserver needs Python 3.11 or newer (PYTHON=$(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps re-run the install whenever pyproject.toml changes.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[resolve]'
	@touch $@

# The suite drives both sentry-cli lines. 2.x comes with the test extras; a venv holds one
# version of a package, so the 3.x binary goes into a directory of its own.
SENTRY_CLI_3 := 3.8.2

$(VENV)/.installed-test: pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,resolve]'
	$(BIN)/python -m pip install --quiet --no-deps --upgrade --target $(VENV)/sentry-cli-3 'sentry-cli==$(SENTRY_CLI_3)'
	@touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/python -m relserver --port $(PORT) --data-dir $(DATA_DIR)

lint: $(VENV)/.installed-test
	$(BIN)/ruff format --check relserver tests scripts
	$(BIN)/ruff check relserver tests scripts

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# System programs the suite runs (the README's curl quick start, mount for the full-disk and
# read-only tests, PostgreSQL for the catalog's second engine, npm (with Node) to rebuild the
# resolve tests' app, Chromium for the web UI's browser tests; Playwright's own browser download
# is never used). Debian's images carry them; where one is missing and we are root, apt-get
# installs it; elsewhere the tests that need it skip (and fail under CI). The S3 server (SeaweedFS)
# comes with the test extras.
SYSTEM_DEPS := curl:curl mount:mount pg_ctlcluster:postgresql npm:npm chromium:chromium

system-deps:
	@for dep in $(SYSTEM_DEPS); do \
		cmd=$${dep%%:*}; pkg=$${dep#*:}; \
		if ! command -v $$cmd >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing $$pkg (for $$cmd)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkg; \
		fi; \
	done

# The API suite's core again, on the PostgreSQL catalog and the S3 blob store (a throwaway
# PostgreSQL cluster and SeaweedFS server the suite starts).
PG_SUITE := tests/test_upload.py tests/test_files_api.py tests/test_releases_api.py tests/test_releases.py \
	tests/test_chunks.py tests/test_assembly.py tests/test_bundles_api.py tests/test_bundle_index.py tests/test_auth.py \
	tests/test_release_commits.py tests/test_resolve_api.py tests/test_ui_security.py tests/test_schema_fuzz.py

# Two workers, one per core (pytest-xdist's default `load` scheduling: see pyproject.toml).
PYTEST_WORKERS ?= -n 2

test: lint typecheck system-deps
	$(BIN)/python -m pytest $(PYTEST_WORKERS)
	$(BIN)/python -m pytest $(PYTEST_WORKERS) --catalog postgres --blob-store s3 $(PG_SUITE)

fmt: $(VENV)/.installed-test
	$(BIN)/ruff format relserver tests scripts
	$(BIN)/ruff check --fix relserver tests scripts

check: test

# Not part of `make test`: minutes of load against a same-run baseline (docs/benchmarks.md).
bench: $(VENV)/.installed-test
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python scripts/bench.py --write docs/benchmarks.md

# Not part of `make test`: kill -9 loops and a soak run (docs/reliability.md).
torture: $(VENV)/.installed-test
	$(BIN)/python scripts/torture.py crash
	$(BIN)/python scripts/torture.py soak

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
