#!/usr/bin/env bash
# The benchmark: set up, build the worker with dev routes (its counters) and the release
# build (weighed), run bench/run.mjs (arguments pass
# through, e.g. `make bench ARGS="--turns 300"`). Writes bench/results/latest.{json,png}.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash scripts/setup.sh
bash scripts/build-worker.sh dev
bash scripts/build-worker.sh release
exec "$NODE22" bench/run.mjs "$@"
