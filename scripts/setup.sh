#!/usr/bin/env bash
# Installs what the project needs, on a fresh machine or an old checkout:
# a virtualenv with the Python packages, and Azurite from npm (pinned in package-lock.json).
# Re-running is cheap: each step is skipped while its inputs are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "copy-ops needs Python 3.11 or newer ($PYTHON is $("$PYTHON" --version 2>&1))" >&2; exit 1; }
command -v npm >/dev/null || { echo "copy-ops needs Node.js and npm (for Azurite)" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements-dev.txt
  echo "$want" > "$stamp"
fi

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

npm_stamp=node_modules/.package-lock.sha
npm_want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -x node_modules/.bin/azurite-blob ] || [ "$(cat "$npm_stamp" 2>/dev/null)" != "$npm_want" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$npm_want" > "$npm_stamp"
fi
