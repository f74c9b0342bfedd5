# tradeswarm developer commands. `make test` works on a fresh clone: it creates the virtual
# environment when it is missing, makes sure the local services run, then runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: help venv services test test-unit lint format bench contracts generated clean run

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## Create/refresh the virtual environment (.venv) with every dependency

services: ## Start RabbitMQ, PostgreSQL and InfluxDB on loopback if they are down
	@bash scripts/ensure_services.sh

run: venv ## Every agent in one process on sample data, live view, session report (UI=1: the web dashboard too)
	$(BIN)/tradeswarm run $(if $(UI),--ui --speed 20)

test: venv services ## Run the whole test suite (unit, contract, integration) against real services
	@$(BIN)/pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure here" >&2; exit 1; fi; exit $$rc

test-unit: venv ## Only the tests that need no service
	$(BIN)/pytest -q tests/unit tests/runtime -m "not integration"

lint: venv ## ruff, ruff format --check, mypy (strict), import-linter
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

format: venv ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: venv services ## Run the benchmarks (they print figures and ratios)
	$(BIN)/python bench/bus_bench.py
	$(BIN)/python bench/backtest_bench.py --candles 200000

contracts: venv ## Regenerate docs/contracts/asyncapi.json from the models
	$(BIN)/tradeswarm contracts export

generated: venv ## Regenerate docs/openapi.json and docker/rabbitmq/definitions.json from the code
	$(BIN)/python -m infrastructure.api.openapi
	$(BIN)/tradeswarm broker export

clean: ## Remove caches (keeps the venv)
	rm -rf .mypy_cache .ruff_cache .pytest_cache .hypothesis build *.egg-info
