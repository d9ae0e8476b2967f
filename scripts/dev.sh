#!/usr/bin/env bash
# Builds the worker and serves it with the demo on http://127.0.0.1:8787, keeping
# Durable Object storage in .dev-state/ (survives restarts of this command).
# Settings come from the environment: MEMORY_BACKEND, MODEL_PROVIDER, DEV_MODE, PORT.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash scripts/setup.sh
bash scripts/build-worker.sh
PORT="${PORT:-8787}"
args=(dev --local --ip 127.0.0.1 --port "$PORT" --persist-to "$ROOT/.dev-state" --show-interactive-dev-session=false)
args+=(--var "MEMORY_BACKEND:${MEMORY_BACKEND:-durable_object}")
args+=(--var "MODEL_PROVIDER:${MODEL_PROVIDER:-memory-demo}")
args+=(--var "DEV_MODE:${DEV_MODE:-true}")
echo "edge-memory: serving the API and the demo on http://127.0.0.1:$PORT (storage: .dev-state/)"
exec "$NODE22" "$WRANGLER_JS" "${args[@]}"
