# The two front-door commands: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
COVERED := */sessionward/tokens/*,*/sessionward/sessions/*
EXPRESS := js/examples/express

.PHONY: run test lint types pytest client-test js-test js-build bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "sessionward needs Python 3.11 or newer"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.dev-installed: pyproject.toml client/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,postgres,redis]'
	$(BIN)/pip install --quiet -e 'client[jwt]'
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/sessionward serve

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

types: $(VENV)/.dev-installed
	$(BIN)/mypy

# The suite runs on SQLite, then on PostgreSQL (127.0.0.1:5432, TEST_POSTGRES_URL) when it is reachable;
# REQUIRE_POSTGRES=1 (CI) makes an unreachable PostgreSQL a failure. Coverage counts both passes (some statements
# are PostgreSQL's own); the 100 % gate needs both, so without PostgreSQL it is reported, not enforced.
# The browser tests drive Debian's Chromium (never a downloaded one): without it they would fail one by one.
CHROMIUM_CHECK := [ -x /usr/bin/chromium ] || { echo "the browser tests need Chromium at /usr/bin/chromium: apt-get install -y chromium"; exit 1; }

pytest: $(VENV)/.dev-installed $(EXPRESS)/node_modules/.installed
	@$(CHROMIUM_CHECK)
	$(BIN)/coverage erase
	$(BIN)/pytest -n 4 --dist worksteal --cov --cov-report= $(PYTEST_ARGS)
	@if [ -n "$$REQUIRE_POSTGRES" ] || $(BIN)/python -c "import socket; socket.create_connection(('127.0.0.1', 5432), 1)" 2>/dev/null; then \
		echo "$(BIN)/pytest -n 4 --dist worksteal --backend postgres --cov --cov-append --cov-report= $(PYTEST_ARGS)"; \
		$(BIN)/pytest -n 4 --dist worksteal --backend postgres --cov --cov-append --cov-report= $(PYTEST_ARGS) && \
		$(BIN)/coverage report --include='$(COVERED)' --fail-under=100; \
	else \
		echo "make test: PostgreSQL is not reachable on 127.0.0.1:5432, so the suite ran on SQLite only"; \
		$(BIN)/coverage report --include='$(COVERED)'; \
	fi

client-test: $(VENV)/.dev-installed
	$(BIN)/ruff check client
	$(BIN)/ruff format --check client
	$(BIN)/mypy --strict client/src
	$(BIN)/pytest client/tests

# sessionward-js (js/): its dev dependencies pinned in js/package-lock.json, installed with the machine's npm.
# Without Node 20+ this fails (never skips); `make run` needs no Node (the pages serve the committed build).
NODE_CHECK := command -v node >/dev/null && command -v npm >/dev/null && node -e 'process.exit(parseInt(process.versions.node) < 20 ? 1 : 0)' \
	|| { echo "sessionward-js needs Node 20+ and npm: apt-get install -y nodejs npm (or https://nodejs.org/en/download)"; exit 1; }

js/node_modules/.installed: js/package.json js/package-lock.json
	@$(NODE_CHECK)
	cd js && npm ci --no-audit --no-fund
	@touch $@

# The Express example (an app backend verifying tokens with jose), which the suite runs against a live server;
# it takes sessionward-js from js/ (file:../..), so the package is built first.
$(EXPRESS)/node_modules/.installed: $(EXPRESS)/package.json $(EXPRESS)/package-lock.json js/node_modules/.installed $(wildcard js/src/*.ts)
	@$(NODE_CHECK)
	cd js && node build.mjs
	cd $(EXPRESS) && npm ci --no-audit --no-fund
	@touch $@

# After a change in js/src: rebuild, and copy the bundle to where the pages load it from.
js-build: js/node_modules/.installed
	cd js && node build.mjs --minify
	cp js/dist/sessionward.js src/sessionward/web/static/sessionward.js

js-test: js/node_modules/.installed $(VENV)/.dev-installed
	@$(NODE_CHECK)
	cd js && npm run check && node build.mjs --minify && SESSIONWARD_PYTHON=$(abspath $(BIN))/python npm test

test: lint types js-test pytest client-test

# sessionward side by side with the peer in one run (bench/README.md); writes bench/RESULTS.md.
# Linux, root, taskset and Debian's PostgreSQL 15; BENCH_ARGS='--runs 3 --duration 20' for the full run.
$(VENV)/.bench-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[postgres]'
	@touch $@ $(VENV)/.installed

bench: $(VENV)/.bench-installed
	$(PYTHON) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
