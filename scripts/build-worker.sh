#!/usr/bin/env bash
# Builds the release worker into build/ (index.js + wasm) with local tools only.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
for bin in "$WASM_BINDGEN_BIN" "$WASM_OPT_BIN" "$ESBUILD_BIN"; do
  # A set but missing path makes worker-build silently download instead: refuse.
  [ -x "$bin" ] || { echo "build-worker: $bin is missing; run scripts/setup.sh" >&2; exit 1; }
done
worker-build --release
ls -l build/index.js build/*.wasm 2>/dev/null || ls -lR build | head -20
