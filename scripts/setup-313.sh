#!/usr/bin/env bash
# The Python 3.13 environment (.venv313): the suite runs on 3.13 too, and the real Azure
# Functions Python worker of 3.13 (azure-functions-runtime) indexes the app there.
# Finds python3.13 on PATH or under pyenv; PYTHON313=/path/to/python3.13 overrides. Run by
# scripts/setup.sh, whose uv (in .venv) makes the environment and installs it.
set -euo pipefail
cd "$(dirname "$0")/.."

is_313() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1; }

find_313() {
  local root candidate
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  # A pyenv shim on PATH may answer for another version: each candidate is asked.
  for candidate in ${PYTHON313:-} $(command -v python3.13 2>/dev/null) \
      $(ls -d "$root"/versions/3.13*/bin/python3.13 2>/dev/null | sort -V -r); do
    if is_313 "$candidate"; then echo "$candidate"; return 0; fi
  done
  return 1
}
if ! PY313=$(find_313); then
  cat >&2 <<MSG
copy-ops runs its tests on Python 3.13 as well as 3.11, and indexes the app with the
Functions worker of Python 3.13: no Python 3.13 was found. Install it (for example
'pyenv install 3.13') or point PYTHON313 at a python3.13, then run this again.
MSG
  exit 1
fi

if [ ! -x .venv313/bin/python ]; then
  .venv/bin/uv venv --quiet --python "$PY313" .venv313
fi
stamp=.venv313/.requirements.sha
want=$(cat requirements.txt requirements-dev.txt requirements-worker.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/uv pip install --quiet --python .venv313/bin/python -r requirements-dev.txt -r requirements-worker.txt
  echo "$want" > "$stamp"
fi
