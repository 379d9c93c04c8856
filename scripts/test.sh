#!/usr/bin/env bash
# The whole suite, from a fresh machine: install, lint, type-check, then the tests in
# parallel (pytest-xdist; each worker starts its own Azurite, tests/conftest.py). Python 3.11
# runs every tier; Python 3.13 runs what depends on the interpreter: the pure suite, the
# edges and the real Functions worker (docs/testing.md says why the rest does not).
#   scripts/test.sh          everything (make test, CI)
#   scripts/test.sh fast     the unit tier on 3.11, in seconds (make test-fast)
# Further arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# Two cores run three workers: a system test spends most of its time waiting on its hosts.
WORKERS=${COPY_OPS_TEST_WORKERS:-3}
parallel=(-n "$WORKERS" --dist loadfile)

if [ "${1:-}" = fast ]; then
  shift
  scripts/setup.sh
  exec .venv/bin/python -m pytest -m unit -p no:cacheprovider "$@"
fi

scripts/setup.sh
# The deployment templates, checked statically (each skipped check says why in the file),
# in the background meanwhile: it takes a core for a quarter of a minute.
checkov_log=$(mktemp)
.venv-checkov/bin/checkov -d infra --framework bicep --compact --quiet --skip-download > "$checkov_log" 2>&1 &
checkov=$!
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# The layers and walls (pyproject.toml [tool.importlinter]).
.venv/bin/lint-imports
checkov_status=0
wait "$checkov" || checkov_status=$?
cat "$checkov_log"
rm -f "$checkov_log"
[ "$checkov_status" = 0 ] || { echo "checkov found the templates wanting (above)" >&2; exit "$checkov_status"; }
echo "== tests on $(.venv/bin/python --version): every tier"
.venv/bin/python -m pytest "${parallel[@]}" -m "not py313" "$@"
echo "== tests on $(.venv313/bin/python --version): what depends on the interpreter"
.venv313/bin/python -m pytest "${parallel[@]}" -m "interpreter or py313" -p no:cacheprovider "$@"
