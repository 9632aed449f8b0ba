# queue_system: `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run run-api run-worker test lint clean check docs docs-serve

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "queue_system needs Python 3.11+ (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the package with its pinned dependencies

run: $(STAMP) ## Start everything: embedded Redis (unless REDIS_URL is set), API on :8080, worker: queue-system run
	$(BIN)/queue-system run

run-api: $(STAMP) ## Start the API alone (needs REDIS_URL): queue-system api
	$(BIN)/queue-system api

run-worker: $(STAMP) ## Start the worker alone (needs REDIS_URL): queue-system worker
	$(BIN)/queue-system worker

test: $(STAMP) ## Run the whole test suite (real Redis, real processes; not the browser tests)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP) lint-docker ## ruff, mypy (strict), the import contracts (pyproject.toml), hadolint and compose config
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

check: lint test ## Lint, types and tests

docs: $(STAMP) ## Build the docs site from docs/ into site/ (strict: every link and anchor must resolve; offline)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

docs-serve: $(STAMP) ## Serve the docs site at http://127.0.0.1:8000/, rebuilt as you edit docs/
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict --dev-addr 127.0.0.1:8000

clean: ## Remove the venv, caches and local data (var/)
	rm -rf $(VENV) var site .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .grimp_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# ---- benchmarks (bench/README.md); not part of `make check`, never run by the tests
BENCH_STAMP := $(VENV)/.bench-installed
.PHONY: bench bench-quick bench-tools

$(BENCH_STAMP): $(STAMP) bench/requirements.txt
	$(PY) -m pip install --quiet -c constraints.txt -r bench/requirements.txt
	@touch $(BENCH_STAMP)

bench-tools: ## Install wrk and nginx (Debian packages) for the benchmarks when missing and possible
	@if ! command -v wrk >/dev/null || ! { command -v nginx || test -x /usr/sbin/nginx; } >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light) >/dev/null \
			|| echo "bench: apt-get failed; using the Python load generator and sink instead"; \
		else echo "bench: wrk/nginx missing; using the Python load generator and sink instead"; fi; \
	fi

bench: $(BENCH_STAMP) bench-tools ## Run the benchmarks (10-25 min): table, bench/results/latest.{json,md}
	$(PY) -m bench $(BENCH_ARGS)

bench-quick: $(BENCH_STAMP) bench-tools ## Smoke-run the harness at tiny sizes (about 3 min; results in bench/results/logs/)
	$(PY) -m bench --quick $(BENCH_ARGS)

# ---- the soak test (tests/soak): minutes of real processes under faults; not part of `make test`
.PHONY: soak
SOAK_TIMEOUT ?= 1200

soak: $(STAMP) ## 20,000 webhooks through killed workers and a killed Redis (about 5-10 min)
	QS_SOAK=1 timeout $(SOAK_TIMEOUT) $(PY) -m pytest tests/soak -m soak -s -p no:cacheprovider --durations=5 \
		--basetemp=var/soak $(PYTEST_ARGS)

# ---- the failover test (tests/ha): Sentinel failovers under load; not part of `make test`
.PHONY: test-ha
HA_TIMEOUT ?= 420

test-ha: $(STAMP) ## Redis failovers under load: 1 primary + 2 replicas + 3 sentinels, killed and stopped (about 3-4 min)
	QS_HA=1 timeout $(HA_TIMEOUT) $(PY) -m pytest tests/ha -m ha -s -p no:cacheprovider --durations=5 \
		--basetemp=var/ha $(PYTEST_ARGS)

# ---- containers (docker-compose.yml, docker/); `make docker-test` readies a bare Debian machine
COMPOSE_BIN := $(VENV)/docker-tools/docker-compose
# The Compose binary docker/ci/setup.sh fetched, else the Docker CLI's own plugin.
COMPOSE ?= $(if $(wildcard $(COMPOSE_BIN)),$(COMPOSE_BIN),docker compose)
DOCKER_TEST_TIMEOUT ?= 1500
.PHONY: docker-setup docker-build docker-up docker-down docker-logs docker-test lint-docker

docker-setup: $(STAMP) ## Start dockerd, build stand-in base images, fetch Compose+hadolint (when missing)
	bash docker/ci/setup.sh

docker-build: ## Build the api and worker images
	$(COMPOSE) build

docker-up: ## Start Redis, the API on :8080 and a worker in containers; waits until healthy
	$(COMPOSE) up -d --build --wait

docker-down: ## Stop and remove the containers (the Redis volume stays; add ARGS=-v to drop it)
	$(COMPOSE) down $(ARGS)

docker-logs: ## Follow the containers' logs
	$(COMPOSE) logs -f --tail=100

docker-test: docker-setup ## End to end in containers: build, webhook, scale, stop a worker mid-delivery, a Sentinel failover
	QS_DOCKER_TEST=1 COMPOSE="$(COMPOSE_BIN)" timeout $(DOCKER_TEST_TIMEOUT) $(PY) -m pytest tests/docker -m docker -p no:cacheprovider --durations=5 $(PYTEST_ARGS)

lint-docker: $(STAMP) ## hadolint on the Dockerfiles, `docker compose config` (no daemon needed)
	bash docker/ci/setup.sh tools
	$(BIN)/hadolint docker/api.Dockerfile docker/worker.Dockerfile
	$(COMPOSE_BIN) config --quiet
	$(COMPOSE_BIN) -f docker-compose.yml -f docker-compose.ha.yml config --quiet

# ---- the dashboard in a real browser (tests/dashboard, marker `browser`); not part of `make test`
.PHONY: test-browser browser-tools

browser-tools: ## Install Debian's chromium (and a font) for the browser tests when missing
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; \
		else echo "test-browser: /usr/bin/chromium is missing: apt-get install chromium fonts-dejavu-core"; exit 1; fi; \
	fi

test-browser: $(STAMP) browser-tools ## Drive the dashboard in headless Chromium; screenshots in var/artifacts/dashboard/
	QS_BROWSER_TEST=1 PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(PY) -m pytest tests/dashboard -m browser -p no:cacheprovider $(PYTEST_ARGS)

# ---- fuzzing (tests/fuzz, schemathesis.toml): the OpenAPI document against a running API
.PHONY: fuzz
FUZZ_TIMEOUT ?= 600

fuzz: $(STAMP) ## Schemathesis against a real API process (~2 min), then the model-based tests of tasks and of destinations at length (~5 min each)
	QS_FUZZ=1 timeout $(FUZZ_TIMEOUT) $(PY) -m pytest tests/fuzz -m fuzz -p no:cacheprovider -rA --durations=5 $(PYTEST_ARGS)
	QS_FUZZ=1 timeout $(FUZZ_TIMEOUT) $(PY) -m pytest tests/test_model_tasks.py -p no:cacheprovider -rA --durations=5 $(PYTEST_ARGS)
	QS_FUZZ=1 timeout $(FUZZ_TIMEOUT) $(PY) -m pytest tests/test_destinations_property.py -p no:cacheprovider -rA --durations=5 $(PYTEST_ARGS)
	QS_FUZZ=1 timeout $(FUZZ_TIMEOUT) $(PY) -m pytest tests/test_queues_model.py -p no:cacheprovider -rA --durations=5 $(PYTEST_ARGS)
