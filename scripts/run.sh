#!/usr/bin/env bash
# Run copy-ops locally: installs what is missing, starts Azurite (blob service on
# 127.0.0.1:10000, queue service on 10001 for the work queue, data kept in .azurite/), then the function app: `func start` where
# Azure Functions Core Tools is installed, else the development host (python -m devhost).
# Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-7071}
AZURITE_PORT=10000
QUEUE_PORT=10001

scripts/setup.sh
if [ ! -f local.settings.json ]; then
  cp local.settings.sample.json local.settings.json
  echo "created local.settings.json from local.settings.sample.json"
fi

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if port_open "$AZURITE_PORT" && port_open "$QUEUE_PORT"; then
  echo "Azurite (or another storage emulator) already listens on $AZURITE_PORT and $QUEUE_PORT: using it"
elif port_open "$AZURITE_PORT" || port_open "$QUEUE_PORT"; then
  echo "something listens on $AZURITE_PORT or $QUEUE_PORT but not both: copy-ops needs Azurite's blob and queue services" >&2
  exit 1
else
  mkdir -p .azurite
  # The all-in-one binary: blob and queue (the queue trigger's work queue); its table
  # service, unused, on its usual port.
  setsid node_modules/.bin/azurite --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" \
    --queueHost 127.0.0.1 --queuePort "$QUEUE_PORT" \
    --location .azurite --skipApiVersionCheck --disableTelemetry --silent &
  pids+=($!)
  for _ in $(seq 1 100); do port_open "$AZURITE_PORT" && port_open "$QUEUE_PORT" && break; sleep 0.1; done
  port_open "$AZURITE_PORT" && port_open "$QUEUE_PORT" || { echo "Azurite did not start" >&2; exit 1; }
fi

# Containers and a blob for the curl examples below (no-ops when they exist).
.venv/bin/python - <<'PY'
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

service = BlobServiceClient.from_connection_string("UseDevelopmentStorage=true")
for name in ("incoming", "backups"):
    try:
        service.create_container(name)
    except ResourceExistsError:
        pass
service.get_blob_client("incoming", "hello.txt").upload_blob(b"hello from copy-ops\n", overwrite=True)
PY

cat <<HELP

copy-ops on http://localhost:$PORT  (Ctrl-C stops it and Azurite)

  # start a copy (it finishes at once on Azurite: 201 Created)
  curl -s -X POST http://localhost:$PORT/api/copies -H 'Content-Type: application/json' \\
    -d '{"source": {"container": "incoming", "blob": "hello.txt"},
         "destination": {"container": "backups", "blob": "hello.txt"}, "overwrite": true}'

  # read it back (the id is in the answer), list them, run the sweep now
  curl -s http://localhost:$PORT/api/copies/<id>
  curl -s http://localhost:$PORT/api/copies
  curl -s -X POST http://localhost:$PORT/admin/functions/sweep -H 'Content-Type: application/json' -d '{"input": ""}'

HELP

if command -v func >/dev/null 2>&1; then
  setsid func start --port "$PORT" &
else
  echo "(Azure Functions Core Tools not found: using the development host, python -m devhost)"
  setsid .venv/bin/python -m devhost --port "$PORT" &
fi
pids+=($!)
wait "${pids[-1]}"
