#!/usr/bin/env bash
# Builds the worker with local tools only:
#   build-worker.sh          the release build into build/ (what `make deploy` ships: no dev routes)
#   build-worker.sh dev      with the `dev-routes` feature into build-dev/ (make dev, the tests, the bench)
# Skips the build when its sources are unchanged since the last one, and writes a new build
# next to the old one, then moves it into place: a running `wrangler dev` never loads a
# half-written wasm.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
flavor="${1:-release}"
case "$flavor" in
  release) out=build; features=() ;;
  dev) out=build-dev; features=(--features dev-routes) ;;
  *) echo "build-worker: unknown flavor $flavor (release, dev)" >&2; exit 2 ;;
esac
for bin in "$WASM_BINDGEN_BIN" "$WASM_OPT_BIN" "$ESBUILD_BIN"; do
  # A set but missing path makes worker-build silently download instead: refuse.
  [ -x "$bin" ] || { echo "build-worker: $bin is missing; run scripts/setup.sh" >&2; exit 1; }
done
stamp=$( (echo "$flavor $WORKER_BUILD_VERSION $WASM_BINDGEN_VERSION"; cat Cargo.toml Cargo.lock rust-toolchain.toml;
  find src -type f | LC_ALL=C sort | xargs cat) | sha256sum | cut -d' ' -f1)
if [ -f "$out/.sources" ] && [ "$(cat "$out/.sources")" = "$stamp" ] && [ -f "$out/index.js" ]; then
  echo "build-worker: $out/ is up to date"
  exit 0
fi
tmp="$out.tmp"
rm -rf "$tmp"
worker-build --release --out-dir "$tmp" . "${features[@]}"
# worker-build leaves the function-name section in (~200 KB raw, ~48 KB gzip); strip it.
# Errors then show wasm function indexes instead of Rust names.
"$WASM_OPT_BIN" "$tmp/index_bg.wasm" --strip-debug --strip-producers \
  --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  -o "$tmp/index_bg.wasm"
echo "$stamp" > "$tmp/.sources"
rm -rf "$out.old"
if [ -d "$out" ]; then mv "$out" "$out.old"; fi
mv "$tmp" "$out"
rm -rf "$out.old"
ls -l "$out/index.js" "$out"/*.wasm
