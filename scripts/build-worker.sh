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
# worker-build leaves the function-name section in (~200 KB raw, ~48 KB gzip); strip it.
# Errors then show wasm function indexes instead of Rust names.
"$WASM_OPT_BIN" build/index_bg.wasm --strip-debug --strip-producers \
  --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  -o build/index_bg.wasm
ls -l build/index.js build/*.wasm 2>/dev/null || ls -lR build | head -20
