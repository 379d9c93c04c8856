#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install, lint, type-check, then the tests on
# Python 3.11 and again on Python 3.13 (where the real Functions worker also indexes the
# app). pytest starts Azurite itself (tests/conftest.py) on free loopback ports, in
# memory, and stops it whatever happens. Extra arguments go to both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/setup-313.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# The layers and walls (pyproject.toml [tool.importlinter]).
.venv/bin/lint-imports
# The deployment templates, checked statically (each skipped check says why in the file).
.venv-checkov/bin/checkov -d infra --framework bicep --compact --quiet --skip-download
echo "== tests on $(.venv/bin/python --version)"
.venv/bin/python -m pytest "$@"
echo "== tests on $(.venv313/bin/python --version)"
.venv313/bin/python -m pytest -p no:cacheprovider "$@"
