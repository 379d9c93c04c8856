#!/usr/bin/env bash
# Installs what the project needs, on a fresh machine or an old checkout: the Python
# environments (by uv, from PyPI: a tenth of pip's time on a fresh machine) and Azurite from
# npm (pinned in package-lock.json), the two at once. Re-running is cheap: each step is
# skipped while its inputs are unchanged.
#   scripts/setup.sh       everything: .venv (the app, the CLI, the test and lint tools),
#                          .venv313 (the suite's Python 3.13 part, the real worker), checkov
#   scripts/setup.sh run   only what running the app locally needs (make run): the app's
#                          packages, the CLI, Azurite
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-all}

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "copy-ops needs Python 3.11 or newer ($PYTHON is $("$PYTHON" --version 2>&1))" >&2; exit 1; }
command -v npm >/dev/null || { echo "copy-ops needs Node.js and npm (for Azurite)" >&2; exit 1; }

# Azurite from npm, in the background while Python's packages install.
npm_stamp=node_modules/.package-lock.sha
npm_want=$(sha256sum package-lock.json | cut -d' ' -f1)
npm_job=
if [ ! -x node_modules/.bin/azurite-blob ] || [ "$(cat "$npm_stamp" 2>/dev/null)" != "$npm_want" ]; then
  echo "installing Azurite from npm into node_modules (once)"
  { npm ci --no-audit --no-fund --loglevel=error > /dev/null && echo "$npm_want" > "$npm_stamp"; } &
  npm_job=$!
fi

# uv, the installer, lives in .venv beside the tools it installs (requirements-setup.txt pins it).
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
uv_stamp=.venv/.setup.sha
uv_want=$(sha256sum requirements-setup.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/uv ] || [ "$(cat "$uv_stamp" 2>/dev/null)" != "$uv_want" ]; then
  .venv/bin/python -m pip install --quiet --quiet --disable-pip-version-check -r requirements-setup.txt
  echo "$uv_want" > "$uv_stamp"
fi
# install ENV STAMP FILE... [-- ARG...]: the requirements FILEs (and the further ARGs) into
# ENV, unless its stamp says they are in already.
install() {
  local env=$1 stamp=$1/$2 want files=() args=()
  shift 2
  while [ $# -gt 0 ] && [ "$1" != -- ]; do files+=("$1"); args+=(-r "$1"); shift; done
  [ $# -gt 0 ] && shift
  args+=("$@")
  want=$({ cat "${files[@]}" pyproject.toml; echo "$*"; } | sha256sum | cut -d' ' -f1)
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  .venv/bin/uv pip install --quiet --python "$env/bin/python" "${args[@]}"
  echo "$want" > "$stamp"
}

if [ "$MODE" = run ]; then
  # The app's packages and the CLI (editable): all that running needs. The whole
  # environment's stamp, when present, says this is in too.
  everything=$({ cat requirements.txt requirements-dev.txt pyproject.toml; echo; } | sha256sum | cut -d' ' -f1)
  if [ "$(cat .venv/.requirements.sha 2>/dev/null)" != "$everything" ]; then
    install .venv .run-requirements.sha requirements.txt -- -e .
  fi
else
  install .venv .requirements.sha requirements.txt requirements-dev.txt
  # The Python 3.13 environment: the suite's part that depends on the interpreter, and the
  # real Functions worker of 3.13 (scripts/setup-313.sh finds the interpreter).
  scripts/setup-313.sh
  # checkov, for the infrastructure templates, in its own environment: its many pins must not move ours.
  if [ ! -x .venv-checkov/bin/python ]; then
    .venv/bin/uv venv --quiet --python "$PYTHON" .venv-checkov
  fi
  install .venv-checkov .requirements.sha requirements-checkov.txt
fi

if [ -n "$npm_job" ] && ! wait "$npm_job"; then
  echo "npm ci failed: Azurite is not installed" >&2
  exit 1
fi
