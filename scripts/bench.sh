#!/usr/bin/env bash
# The benchmark: set up, build the worker with dev routes (its counters) and the release
# build (weighed, and measured for runtime CPU and cold start), run bench/run.mjs
# (arguments pass through, e.g. `make bench ARGS="--turns 300"`; `ARGS=--peer` also runs
# ../shared/peers/cf-agents/ side by side, `ARGS=--scale` the full-size scale simulation).
# Writes bench/results/latest.{json,png}.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash scripts/setup.sh
bash scripts/build-worker.sh dev
bash scripts/build-worker.sh release
# The Store in one shard at 1k and 10k items (put, search, filtered, semantic query).
"$NODE22" bench/store.mjs
exec "$NODE22" bench/run.mjs "$@"
