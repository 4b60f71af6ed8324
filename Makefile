# The two commands: `make run` serves the demo coalition, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest-xdist workers; each gets its own PostgreSQL database (`test_gw0`, ...)
TEST_WORKERS ?= auto

.PHONY: run test lint check schema bench bench-settlement bench-bulk bench-import bench-webhooks clean

run: $(STAMP)
	$(BIN)/coalition serve

test: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy gateway partners
	$(BIN)/lint-imports

schema: $(STAMP)
	$(BIN)/coalition export-schema schema.graphql

bench: $(STAMP)
	$(BIN)/python -m bench.earn

bench-settlement: $(STAMP)
	$(BIN)/python -m bench.settlement

# earnPointsBulk of 10,000 purchases next to a direct set-based posting of the same rows
# (options: BENCH_ARGS="--purchases 10000 --members 1000 --batches 3")
bench-bulk: $(STAMP)
	$(BIN)/python -m bench.bulk $(BENCH_ARGS)

# `coalition import earns` of a 1,000,000-line file: time, memory, audit, consumers' catch-up
# (options: BENCH_ARGS="--lines 1000000 --members 10000 --batch-size 5000")
bench-import: $(STAMP)
	$(BIN)/python -m bench.imports $(BENCH_ARGS)

# the webhook fan-out next to a COPY of the same delivery rows
# (options: BENCH_ARGS="--batches 20 --members 5000 --endpoints 2")
bench-webhooks: $(STAMP)
	$(BIN)/python -m bench.webhooks $(BENCH_ARGS)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# The browser of tests/test_graphiql_browser.py: Debian's Chromium, driven by Playwright.
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium for tests/test_graphiql_browser.py"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q --no-install-recommends chromium >/dev/null \
		|| { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; } \
		|| echo "Could not install chromium: tests/test_graphiql_browser.py will be skipped (and fail with CI=true)."; \
	else \
		echo "No /usr/bin/chromium: tests/test_graphiql_browser.py will be skipped (and fail with CI=true)."; \
		echo "Install it as root with: apt-get install --no-install-recommends chromium"; \
	fi
	touch $(STAMP)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
