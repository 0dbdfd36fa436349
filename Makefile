# Quick start: `make run` (set up, load the sample zone, materialize, print demo sign-ins, serve) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/data/dagster

.PHONY: run setup test test-sqlite test-sqlite-component test-sqlite-rest test-postgresql lint bench bench-exchange sample clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/carbon load-sample
	$(BIN)/carbon run
	$(BIN)/carbon users demo
	$(BIN)/carbon exchange demo
	$(BIN)/carbon serve

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

# The whole suite runs twice: on SQLite (the embedded default) and on PostgreSQL (production; skipped when
# unreachable, unless CARBON_REQUIRE_POSTGRES=1 as in CI). `make test` runs the SQLite pass in two halves
# (tests/component, and the rest), all three at once, each in a temporary folder of its own with its
# output kept together: the SQLite pass has about half again as much to do as the PostgreSQL pass, which
# runs only the tests that touch PostgreSQL.
test: setup lint
	$(MAKE) --no-print-directory -j3 --output-sync=target test-sqlite-component test-sqlite-rest test-postgresql

SQLITE_PASS := CARBON_TEST_DATABASE=sqlite $(BIN)/python -m pytest -q

test-sqlite: setup
	mkdir -p .pytest-tmp
	$(SQLITE_PASS) --basetemp=$(CURDIR)/.pytest-tmp/sqlite

test-sqlite-component: setup
	mkdir -p .pytest-tmp
	$(SQLITE_PASS) --basetemp=$(CURDIR)/.pytest-tmp/sqlite-component tests/component

test-sqlite-rest: setup
	mkdir -p .pytest-tmp
	$(SQLITE_PASS) --basetemp=$(CURDIR)/.pytest-tmp/sqlite-rest --ignore=tests/component

test-postgresql: setup
	mkdir -p .pytest-tmp
	CARBON_TEST_DATABASE=postgresql $(BIN)/python -m pytest -q --basetemp=$(CURDIR)/.pytest-tmp/postgresql

bench: setup
	$(BIN)/python benchmarks/bench_emissions.py

# The exchange's core is compared with a published order book: the bench extra, installed once here.
$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	touch $@

bench-exchange: setup $(VENV)/.bench-installed
	$(BIN)/python benchmarks/bench_exchange_core.py
	$(BIN)/python benchmarks/bench_exchange_api.py

sample: setup
	$(BIN)/python data/sample/generate.py

clean:
	rm -rf data/warehouse.duckdb* data/serving.duckdb* data/carbon.sqlite* data/inbox data/dagster .pytest-tmp
