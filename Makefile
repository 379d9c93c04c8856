.PHONY: setup test test-fast run demo bench lint

setup:
	scripts/setup.sh

# The whole suite: installs everything, starts Azurite, lints, type-checks, tests (tiers:
# docs/testing.md).
test:
	scripts/test.sh

# The unit tier, on every edit: pure and service logic, in seconds.
test-fast:
	scripts/test.sh fast

# Azurite and the function app, locally.
run:
	scripts/run.sh

# Watch one copy finish and another get aborted at its deadline (about 15 s).
demo:
	scripts/setup.sh
	.venv/bin/python -m devhost.demo

# Benchmarks: sweep throughput, requests per operation, cold start, start latency.
bench:
	scripts/setup.sh
	.venv/bin/python -m bench

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy && .venv/bin/lint-imports
