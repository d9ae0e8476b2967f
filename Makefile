# edge-memory: the two commands are `make dev` and `make test`.
.PHONY: dev test check bench profile setup build deploy clean

## Set up everything, build, and serve the worker + demo on http://127.0.0.1:8787.
dev:
	bash scripts/dev.sh

## Set up everything and run every test (native, wasm, workerd end to end).
test:
	bash scripts/test.sh

## The fast native stages only (fmt, clippy, cargo test), for quick iteration.
check:
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings
	cargo test --locked

## Benchmarks: turn cost and storage vs thread length, beside LangGraph's SqliteSaver; runtime CPU
## beside the floor, cold start, cost per million turns, hot-spot share (ARGS=--peer, --scale).
bench:
	bash scripts/bench.sh $(ARGS)

## Where a streamed turn's runtime time goes: a CPU profile of the release worker in workerd,
## with its wasm function names (ARGS="--turns 300 --warm 60").
profile: setup
	bash -c 'source scripts/env.sh && "$$NODE22" bench/profile.mjs $(ARGS)'

## Install the toolchain pieces and npm packages (idempotent).
setup:
	bash scripts/setup.sh

## Build the release worker into build/.
build: setup
	bash scripts/build-worker.sh

## Deploy to Cloudflare (needs `wrangler login` or CLOUDFLARE_API_TOKEN).
deploy: build
	bash -c 'source scripts/env.sh && "$$NODE22" "$$WRANGLER_JS" deploy'

clean:
	rm -rf build build-dev target/wasm32-unknown-unknown pkg
