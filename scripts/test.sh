#!/usr/bin/env bash
# Sets up and runs every test, fastest first, printing each stage's time.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

declare -a SUMMARY=()
stage() {
  local label="$1"; shift
  local start=$SECONDS
  echo
  echo "==== $label"
  "$@"
  local took=$((SECONDS - start))
  SUMMARY+=("$(printf '%-16s %4ss' "$label" "$took")")
  echo "==== $label: ${took}s"
}

stage setup          bash scripts/setup.sh
stage fmt            cargo fmt --all -- --check
stage clippy-native  cargo clippy --all-targets --locked -- -D warnings
stage clippy-wasm    cargo clippy --all-targets --locked --target wasm32-unknown-unknown --features dev-routes -- -D warnings
stage clippy-release cargo clippy --lib --locked --target wasm32-unknown-unknown -- -D warnings
stage cargo-test     cargo test --locked
# Docs build without a broken link or a missing item, natively and for the worker.
stage doc            env RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --document-private-items
stage doc-wasm       env RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --document-private-items --target wasm32-unknown-unknown --features dev-routes
# Bounded-time fuzzing of request decoding, message normalization and authentication.
stage fuzz           env FUZZ_SECONDS="${FUZZ_SECONDS:-30}" cargo test --locked --test fuzz -- --ignored --nocapture
stage wasm-pack-test wasm-pack --log-level warn test --node . --features dev-routes
stage build-worker   bash scripts/build-worker.sh dev
# The release build too: a test checks it has no dev routes, the bench weighs it.
stage build-release  bash scripts/build-worker.sh release
stage e2e-workerd    "$NODE22" --test --test-concurrency=1 tests/e2e/*.test.mjs
# The JavaScript client (clients/js): LangGraph's validation suite, Node processes, a Worker.
stage e2e-js         "$NODE22" --test --test-concurrency=1 clients/js/test/*.test.mjs
stage browser        "$NODE22" --test --test-concurrency=1 tests/browser/*.test.mjs
stage e2e-python     .venv/bin/python -m pytest -q -p no:cacheprovider tests/python
# A short run of the benchmark so it does not rot; its budgets are for `make bench`.
stage bench-smoke    "$NODE22" bench/run.mjs --smoke

echo
echo "==== stage times"
printf '%s\n' "${SUMMARY[@]}"
echo "total            ${SECONDS}s"
