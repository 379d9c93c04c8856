#!/usr/bin/env bash
# Installs what the project needs, on a fresh machine or an old checkout:
# a virtualenv with the Python packages, and Azurite from npm (pinned in package-lock.json).
# Re-running is cheap: each step is skipped while its inputs are unchanged.
#   scripts/setup.sh       everything: the app, the CLI, the test and lint tools, checkov
#   scripts/setup.sh run   only what running the app locally needs (make run): the app's
#                          packages, the CLI, Azurite
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-all}

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "copy-ops needs Python 3.11 or newer ($PYTHON is $("$PYTHON" --version 2>&1))" >&2; exit 1; }
command -v npm >/dev/null || { echo "copy-ops needs Node.js and npm (for Azurite)" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -d' ' -f1)
run_stamp=.venv/.run-requirements.sha
run_want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  :  # everything is installed, running included
elif [ "$MODE" = run ]; then
  if [ "$(cat "$run_stamp" 2>/dev/null)" != "$run_want" ]; then
    echo "installing the app's Python packages into .venv (once)"
    # Errors only: a first `make run` shows its banner, not a page of pip's notices.
    .venv/bin/python -m pip install --quiet --quiet --disable-pip-version-check -r requirements.txt -e .
    echo "$run_want" > "$run_stamp"
  fi
else
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements-dev.txt
  echo "$want" > "$stamp"
  echo "$run_want" > "$run_stamp"
fi

npm_stamp=node_modules/.package-lock.sha
npm_want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -x node_modules/.bin/azurite-blob ] || [ "$(cat "$npm_stamp" 2>/dev/null)" != "$npm_want" ]; then
  echo "installing Azurite from npm into node_modules (once)"
  npm ci --no-audit --no-fund --loglevel=error > /dev/null
  echo "$npm_want" > "$npm_stamp"
fi

[ "$MODE" = run ] && exit 0

# checkov, for the infrastructure templates, in its own environment.
if [ ! -x .venv-checkov/bin/python ]; then
  "$PYTHON" -m venv .venv-checkov
fi
checkov_stamp=.venv-checkov/.requirements.sha
checkov_want=$(sha256sum requirements-checkov.txt | cut -d' ' -f1)
if [ "$(cat "$checkov_stamp" 2>/dev/null)" != "$checkov_want" ]; then
  .venv-checkov/bin/python -m pip install --quiet -r requirements-checkov.txt
  echo "$checkov_want" > "$checkov_stamp"
fi

