#!/usr/bin/env bash
# Installs everything the build and the tests need. Idempotent: skips what is present.
# Reaches only the package registries (crates.io, npm, PyPI, Debian).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

have_version() { # have_version CMD VERSION
  command -v "$1" >/dev/null 2>&1 && "$1" --version 2>/dev/null | grep -q "$2"
}

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || rustup target add wasm32-unknown-unknown
if ! have_version worker-build "$WORKER_BUILD_VERSION"; then
  cargo install --locked worker-build --version "$WORKER_BUILD_VERSION"
fi
if ! have_version wasm-pack "$WASM_PACK_VERSION"; then
  cargo install --locked wasm-pack --version "$WASM_PACK_VERSION"
fi
if ! have_version wasm-bindgen "$WASM_BINDGEN_VERSION"; then
  # Not --locked: its lock file names a dependency version that is not published.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

# npm packages: wrangler (workerd), Node 22 for it, binaryen (wasm-opt), test clients.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
   || [ ! -x "$NODE22" ] || [ ! -f "$WRANGLER_JS" ]; then
  # `npm ci`: exactly the lock file, which it never rewrites (a test run leaves no
  # tracked file modified).
  npm ci --no-audit --no-fund --loglevel=error
fi
# agent-chat-ui's Next.js proxy for its test, apart: Next.js without its optional native
# binaries (~150 MB the handler does not use). `npm ci` never rewrites the lock file.
proxy=tests/proxy
if [ ! -f $proxy/node_modules/.package-lock.json ] || [ $proxy/package-lock.json -nt $proxy/node_modules/.package-lock.json ]; then
  (cd $proxy && npm ci --omit=optional --no-audit --no-fund --loglevel=error)
fi
# The JavaScript client (clients/js, @edge-memory/langgraph): its pinned dev dependencies
# (LangGraph.js, LangChain.js, LangGraph's checkpointer validation suite), apart. Its
# package.json overrides vite's optional Windows-only dependency, which the registry does
# not serve, with an empty package: `npm ci` needs every dependency in the lock file.
js=clients/js
if [ ! -f $js/node_modules/.package-lock.json ] || [ $js/package-lock.json -nt $js/node_modules/.package-lock.json ]; then
  (cd $js && npm ci --no-audit --no-fund --loglevel=error)
fi
# Debian's Chromium for the browser tests (Playwright drives it; no browser download).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: /usr/bin/chromium is missing; install Debian's chromium package (as root: apt-get install chromium)" >&2
    exit 1
  fi
fi

# Python: the clients the end-to-end tests drive (langgraph-sdk, RemoteGraph) and the
# benchmark's baseline and plots (SqliteSaver, matplotlib), pinned, in one venv.
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
requirements=(tests/python/requirements.txt bench/requirements.txt)
# Reinstalled when these change, the client's own metadata (name, packages) included.
installed_from=("${requirements[@]}" clients/python/pyproject.toml)
if ! cat "${installed_from[@]}" | cmp -s - .venv/.installed-requirements.txt; then
  # The client was distributed as `edge-memory` before it took the family's name
  # (langgraph-checkpoint-edge-memory): the old editable install goes.
  .venv/bin/pip uninstall --quiet --yes --disable-pip-version-check edge-memory 2>/dev/null || true
  .venv/bin/pip install --quiet --disable-pip-version-check "${requirements[@]/#/-r}"
  cat "${installed_from[@]}" > .venv/.installed-requirements.txt
fi

echo "setup: toolchain ready (worker-build $WORKER_BUILD_VERSION, wasm-bindgen $WASM_BINDGEN_VERSION, wrangler $("$NODE22" "$WRANGLER_JS" --version 2>/dev/null | tail -1))"
