#!/usr/bin/env bash
# Builds the worker and serves it with the demo on http://127.0.0.1:8787, keeping
# Durable Object storage in .dev-state/ (survives restarts of this command).
# Settings come from the environment: PORT, every key of wrangler.toml's [vars]
# (MEMORY_BACKEND, MODEL_PROVIDER, DEV_MODE, ALLOWED_ORIGINS, ...), the optional ones
# listed below (AUTH_MODE, JWT_ISSUER, the model's) and the secrets OPENAI_API_KEY,
# API_KEYS and JWT_SECRET (handed to wrangler as secrets, never printed). README:
# Configuration.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash scripts/setup.sh
bash scripts/build-worker.sh dev
PORT="${PORT:-8787}"
args=(dev build-dev/index.js --local --ip 127.0.0.1 --port "$PORT" --persist-to "$ROOT/.dev-state" --show-interactive-dev-session=false)
args+=(--var "DEV_MODE:${DEV_MODE:-true}")
# Every [vars] key of wrangler.toml, and the settings it documents but leaves unset.
toml_vars=$(awk '/^\[/{in_vars=($0=="[vars]")} in_vars && /^[A-Z_]+ *=/{sub(/ *=.*/, ""); print}' wrangler.toml)
optional_vars="AUTH_MODE JWT_ISSUER JWT_AUDIENCE JWT_MAX_LIFETIME_S JWT_JWKS_URL JWT_PUBLIC_KEYS OPENAI_BASE_URL OPENAI_MODEL WORKERS_AI_MODEL
  SYSTEM_PROMPT CONTEXT_MAX_MESSAGES CONTEXT_MAX_CHARS MODEL_TIMEOUT_MS MODEL_DEADLINE_MS MODEL_MAX_TOKENS"
for name in $toml_vars $optional_vars; do
  if [ "$name" != DEV_MODE ] && [ -n "${!name:-}" ]; then args+=(--var "$name:${!name}"); fi
done
# Secrets go through an env file (mode 600): wrangler shows them as hidden.
mkdir -p "$ROOT/.dev-state"
secrets="$ROOT/.dev-state/secrets.env"
( umask 077; : > "$secrets"
  for name in OPENAI_API_KEY API_KEYS JWT_SECRET; do
    if [ -n "${!name:-}" ]; then printf '%s="%s"\n' "$name" "${!name}" >> "$secrets"; fi
  done )
args+=(--env-file "$secrets")
echo "edge-memory: serving the API and the demo on http://127.0.0.1:$PORT (storage: .dev-state/)"
exec "$NODE22" "$WRANGLER_JS" "${args[@]}"
