#!/usr/bin/env bash
# Run copy-ops locally, on a local stand-in of Azure: installs what running needs (once),
# starts Azurite (its blob service on 127.0.0.1:10010, its queue service on 10001, data
# kept in .azurite/; two accounts, the development account and a partner's, `partner`),
# the stand-in in front of its blob service on 10000 (tag queries answered and paged as
# Azure pages them; a copy from another account pending for a while with progress, as
# Azure's are, and one within an account at once: devkit/pacing.py), then the function app:
# `func start` where Azure Functions Core Tools is installed, else the development host
# (python -m devhost), which plays App Service Authentication: COPY_AUTH=both (a bearer token
# names its caller, a request without one is a key's holder, an admin) with the named callers'
# COPY_POLICY (`python -m devkit policy`; both over local.settings.json, unless set in the
# environment of make run).
# Ctrl-C, or SIGTERM to make or to its process group, stops everything this script started
# (the app, then the stand-in, then Azurite); it refuses to start while a port it needs is taken.
#   COPY_STANDIN_RATE   bytes a second a copy from another account moves (default 262144)
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-7071}
BLOB_PORT=10000
AZURITE_BLOB_PORT=10010
QUEUE_PORT=10001
TABLE_PORT=10012
RATE=${COPY_STANDIN_RATE:-262144}
# The partner's blob the examples copy: another account's, on the same Azurite.
BIG=http://127.0.0.1:$BLOB_PORT/partner/exports/big.bin

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Before anything is installed or started: every port this script serves must be free.
for port in "$PORT" "$BLOB_PORT" "$QUEUE_PORT" "$AZURITE_BLOB_PORT" "$TABLE_PORT"; do
  if port_open "$port"; then
    echo "port $port is taken (another make run, a func start, or your own Azurite?): stop it first;" >&2
    echo "make run starts the app on $PORT, Azurite and the stand-in of Azure on $BLOB_PORT-$TABLE_PORT itself" >&2
    exit 1
  fi
done

scripts/setup.sh run
if [ ! -f local.settings.json ]; then
  cp local.settings.sample.json local.settings.json
  echo "created local.settings.json from local.settings.sample.json"
fi

# Job control: each process started below is a job of its own process group (its id is
# the group's), so the cleanup stops it and whatever it started, and Ctrl-C reaches this
# script (and make) alone, which stops them in order. (setsid's process id is not always
# the new group's: it forks when it leads a group already, and a group so missed outlived us.)
set -m
pids=()
# stop_group PID: SIGTERM to the job's process group, then wait until none of it is left
# (SIGKILL after 10 s): the next job is stopped only once this one is gone.
stop_group() {
  kill -TERM -- "-$1" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 -- "-$1" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-$1" 2>/dev/null || true
}
cleanup() {
  # Once, whichever of Ctrl-C, SIGTERM or the exit comes first, and whole: a signal that
  # comes meanwhile (make passes SIGTERM on to this script, which its process group got
  # too; a second Ctrl-C) is ignored, not run as a second cleanup that ends the first.
  trap '' INT TERM
  trap - EXIT
  set +e
  # The app first (it works on storage to the end), then the stand-in, then Azurite.
  local index
  for ((index = ${#pids[@]} - 1; index >= 0; index--)); do stop_group "${pids[index]}"; done
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

wait_port() {
  for _ in $(seq 1 150); do port_open "$1" && return 0; sleep 0.1; done
  echo "$2 did not start (nothing listens on $1)" >&2
  exit 1
}

mkdir -p .azurite
# The development account and a partner's, `partner` (Azurite then serves these only).
AZURITE_ACCOUNTS=$(.venv/bin/python -c 'from devkit.azurite import accounts_setting; print(accounts_setting())') \
  node_modules/.bin/azurite --blobHost 127.0.0.1 --blobPort "$AZURITE_BLOB_PORT" \
  --queueHost 127.0.0.1 --queuePort "$QUEUE_PORT" --tablePort "$TABLE_PORT" \
  --location .azurite --skipApiVersionCheck --disableTelemetry --silent > .azurite/azurite.log 2>&1 &
pids+=($!)
wait_port "$AZURITE_BLOB_PORT" Azurite
wait_port "$QUEUE_PORT" Azurite
.venv/bin/python -m devkit standin --azurite-port "$AZURITE_BLOB_PORT" --port "$BLOB_PORT" --rate "$RATE" \
  > .azurite/standin.log 2>&1 &
pids+=($!)
wait_port "$BLOB_PORT" "the stand-in of Azure"

# Containers and blobs for the examples below (no-ops when they exist), through the stand-in;
# printed, the named callers' COPY_POLICY (devkit/issuer.py), in the same interpreter start.
local_policy=$(.venv/bin/python - <<'PY'
import json

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

from devkit import PARTNER_ACCOUNT, PARTNER_KEY
from devkit.issuer import LOCAL_POLICY

service = BlobServiceClient.from_connection_string("UseDevelopmentStorage=true")
for name in ("incoming", "backups"):
    try:
        service.create_container(name)
    except ResourceExistsError:
        pass
service.get_blob_client("incoming", "hello.txt").upload_blob(b"hello from copy-ops\n", overwrite=True)
# 8 MiB that a partner publishes in its own account (a public container, read with no
# SAS): a copy from another account, about 32 s at the stand-in's pace, longer than the
# examples' 10 s deadline and the sweep's 10 s after it, so the abort is always seen.
partner = BlobServiceClient(
    f"http://127.0.0.1:10000/{PARTNER_ACCOUNT}",
    credential={"account_name": PARTNER_ACCOUNT, "account_key": PARTNER_KEY},
)
try:
    partner.create_container("exports", public_access="blob")
except ResourceExistsError:
    pass
big = partner.get_blob_client("exports", "big.bin")
if not big.exists():
    big.upload_blob(bytes(range(256)) * 32768)
print(json.dumps(LOCAL_POLICY))
PY
)

# Callers signed in only where the development host plays App Service Authentication: Core
# Tools has none to play, so under func start every request is a key's holder's (COPY_AUTH=keys).
if command -v func >/dev/null 2>&1; then
  host=func
else
  host=devhost
  export COPY_AUTH=${COPY_AUTH:-both}
  COPY_POLICY=${COPY_POLICY:-$local_policy}
  export COPY_POLICY
fi
# The host's own token issuer listens on the port above the app's (python -m devkit tokens
# looks on 7072 unless told).
TOKENS=".venv/bin/python -m devkit tokens"
[ "$PORT" = 7071 ] || TOKENS="$TOKENS --issuer http://127.0.0.1:$((PORT + 1))"

cat <<HELP

copy-ops on http://localhost:$PORT, on a local stand-in of Azure (Ctrl-C stops it all)

  export COPY_OPS_URL=http://localhost:$PORT

  # a copy within the account ends at once
  .venv/bin/copy-ops start incoming/hello.txt backups/hello.txt --overwrite

  # watch the deadline kept: Azure's Copy Blob from another account (partner's, on the
  # same Azurite) moves at $RATE bytes/s; at its 10 s deadline the sweep aborts it
  .venv/bin/copy-ops start $BIG backups/big.bin --overwrite --timeout 10 --engine async --wait
  .venv/bin/copy-ops ls --state aborted

  # ...and met: copy-ops' block engine copies it in time (auto picks it for other accounts)
  .venv/bin/copy-ops start $BIG backups/big.bin --overwrite --timeout 10 --engine blocks --wait

  (docs/api.md walks through the whole API with curl; the sweep runs every 10 s here)
HELP
if [ "$host" = devhost ]; then
  cat <<HELP

  # callers signed in (docs/callers.md): alice may copy incoming/ into backups/alice/, bob the
  # partner's exports into backups/bob/, carol (an admin) anything; no token: a key's holder
  ALICE=\$($TOKENS --caller alice) BOB=\$($TOKENS --caller bob)
  .venv/bin/copy-ops --token "\$ALICE" start incoming/hello.txt backups/alice/hello.txt --overwrite
  .venv/bin/copy-ops --token "\$BOB" start incoming/hello.txt backups/bob/hello.txt   # 403, rule team-b
HELP
else
  echo "  (callers signed in with tokens: with the development host only; func start takes keys)"
fi
echo

if [ "$host" = func ]; then
  func start --port "$PORT" &
else
  echo "(Azure Functions Core Tools not found: using the development host, python -m devhost)"
  .venv/bin/python -m devhost --port "$PORT" --quiet &
fi
pids+=($!)
wait "${pids[-1]}"
