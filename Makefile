# queue_system: `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run run-api run-worker test lint clean check

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "queue_system needs Python 3.11+ (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the package with its pinned dependencies

run: $(STAMP) ## Start everything: embedded Redis (unless REDIS_URL is set), API on :8080, worker
	$(PY) cmd/run.py

run-api: $(STAMP) ## Start the API alone (needs REDIS_URL)
	$(PY) cmd/api.py

run-worker: $(STAMP) ## Start the worker alone (needs REDIS_URL)
	$(PY) cmd/worker.py

test: $(STAMP) ## Run the whole test suite (real Redis, real processes)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

check: lint test ## Lint, types and tests

clean: ## Remove the venv, caches and local data (var/)
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
