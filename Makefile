.PHONY: setup test run lint

setup:
	scripts/setup.sh

# The whole suite: installs everything, starts Azurite, lints, type-checks, tests.
test:
	scripts/test.sh

# Azurite and the function app, locally.
run:
	scripts/run.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy
