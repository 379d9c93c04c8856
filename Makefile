.PHONY: setup test run demo lint

setup:
	scripts/setup.sh

# The whole suite: installs everything, starts Azurite, lints, type-checks, tests.
test:
	scripts/test.sh

# Azurite and the function app, locally.
run:
	scripts/run.sh

# Watch one copy finish and another get aborted at its deadline (about 15 s).
demo:
	scripts/setup.sh
	.venv/bin/python -m devhost.demo

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy
