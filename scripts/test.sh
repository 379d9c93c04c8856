#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install, lint, type-check, test.
# pytest starts Azurite itself (tests/conftest.py) on a free loopback port, in memory,
# and stops it whatever happens. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
