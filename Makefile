# The two commands of the quick start:  make run   and   make test
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The Node harness of tests/federation (Apollo composition, gateway, a second subgraph).
FEDERATION := tests/federation
FEDERATION_STAMP := $(FEDERATION)/node_modules/.installed-stamp

.PHONY: run test lint demo bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# npm ci again only when the lock changes. Without npm the federation tests skip, except under CI=true.
$(FEDERATION_STAMP): $(FEDERATION)/package.json $(FEDERATION)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(FEDERATION) && npm ci --no-audit --no-fund --loglevel=error >/dev/null && touch node_modules/.installed-stamp; \
	elif [ "$${CI:-}" = "true" ]; then \
		echo "npm is needed for $(FEDERATION) under CI=true" >&2; exit 1; \
	else \
		echo "npm not found: the tests in $(FEDERATION) will be skipped" >&2; \
	fi

## Serve GraphQL on http://127.0.0.1:4000/graphql from the embedded SQLite database.
run: $(STAMP)
	$(BIN)/asset-gateway serve

## Load the demo graph into the same database.
demo: $(STAMP)
	$(BIN)/asset-gateway demo

## Lint, type-check and run every test on SQLite and Postgres.
test: $(STAMP) $(FEDERATION_STAMP)
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
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache $(FEDERATION)/node_modules
