# The two commands of the quick start:  make run   and   make test
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint demo bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

## Serve GraphQL on http://127.0.0.1:4000/graphql from the embedded SQLite database.
run: $(STAMP)
	$(BIN)/asset-gateway serve

## Load the demo graph into the same database.
demo: $(STAMP)
	$(BIN)/asset-gateway demo

## Lint, type-check and run every test on SQLite and Postgres.
test: $(STAMP)
	scripts/ensure-postgres
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
