// Starts the built worker in real workerd (wrangler dev, local mode) on 127.0.0.1 and
// stops it the hard way, so tests can prove what survives a cold start.
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const WRANGLER = join(ROOT, 'node_modules/wrangler/bin/wrangler.js');
const STARTUP_TIMEOUT_MS = 60_000;

/** A free TCP port on 127.0.0.1. */
export async function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

/** A fresh persist directory (DO storage lives here across restarts). */
export function tempPersistDir(label = 'edge-memory') {
  return mkdtempSync(join(tmpdir(), `${label}-`));
}

export function removeDir(dir) {
  rmSync(dir, { recursive: true, force: true });
}

/** A deployment with no auth configured is closed: tests that run open say so, unless
 * they configure auth or pass `AUTH_MODE: ''` to see the closed default. */
export function withExplicitAuth(vars) {
  if (['AUTH_MODE', 'API_KEYS', 'JWT_SECRET'].some((k) => k in vars)) {
    return Object.fromEntries(Object.entries(vars).filter(([, v]) => v !== ''));
  }
  return { AUTH_MODE: 'none', ...vars };
}

/**
 * Starts `wrangler dev` on the built worker: build-dev/index.js (dev routes built in), or
 * build/index.js with `release: true`, or the worker of another wrangler `config` (its
 * own `main`; the benchmark's floor), or of several (a list: the first one serves `port`).
 * Returns { url, pid, port, kill(), logText() }; `pid` is also the process group of
 * wrangler and its workerd. `anyStatusIsUp`: up once `/ok` answers at all (for a worker
 * configured to refuse everything). `readyFromLog`: up once wrangler prints "Ready on",
 * without a request, so the worker's first request is still the caller's (a cold start).
 * `env`: more environment variables for wrangler.
 */
export async function startWorker(options = {}) {
  // A port picked here is free when picked, not when wrangler binds it: another process
  // can take it in between. Such a start is retried on a new port; a caller's port is kept.
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await startWorkerOnce({ ...options, port: options.port ?? await freePort() });
    } catch (error) {
      const portTaken = /Address already in use/.test(String(error.message));
      if (!portTaken || options.port !== undefined || attempt >= PORT_ATTEMPTS) throw error;
    }
  }
}

/** How many ports `startWorker` tries when the port it picked is taken before it is bound. */
const PORT_ATTEMPTS = 3;

async function startWorkerOnce({
  persistDir, port, vars = {}, anyStatusIsUp = false, release = false, config, env = {}, readyFromLog = false,
}) {
  const logFile = join(persistDir, `wrangler-${Date.now()}.log`);
  const out = openSync(logFile, 'a');
  // The tests run the build with dev routes (build-dev/); `release` runs what deploys.
  // Several configs: several Workers in one workerd (service bindings between them).
  const script = config
    ? [config].flat().flatMap((path) => ['--config', path])
    : [release ? 'build/index.js' : 'build-dev/index.js'];
  const args = [
    WRANGLER, 'dev', ...script, '--local', '--ip', '127.0.0.1', '--port', String(port),
    '--persist-to', persistDir, '--show-interactive-dev-session=false',
    // Port 0: the system picks the inspector's port when it binds it. A port picked ahead
    // could meanwhile be taken by this very workerd's own ephemeral sockets.
    '--inspector-port', '0',
  ];
  const allVars = config ? vars : withExplicitAuth(vars);
  for (const [key, value] of Object.entries(allVars)) args.push('--var', `${key}:${value}`);
  // detached: its own process group, so a kill reaches workerd too (it otherwise
  // outlives wrangler and keeps the port).
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', out, out],
    env: {
      ...process.env,
      WRANGLER_SEND_METRICS: 'false',
      CLOUDFLARE_CF_FETCH_ENABLED: 'false',
      WRANGLER_LOG_PATH: join(persistDir, 'wrangler-logs'),
      ...env,
    },
  });
  const url = `http://127.0.0.1:${port}`;
  const worker = {
    url,
    port,
    pid: child.pid,
    logText: () => readFileSync(logFile, 'utf8'),
    async kill() {
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
      await waitUntil(async () => !(await isUp(url)), 15_000, 'worker to stop');
    },
  };
  const started = Date.now();
  const up = readyFromLog ? async () => /Ready on http/.test(worker.logText()) : () => isUp(url, anyStatusIsUp);
  while (!(await up())) {
    if (child.exitCode !== null) throw new Error(`wrangler exited (${child.exitCode}):\n${worker.logText()}`);
    if (Date.now() - started > STARTUP_TIMEOUT_MS) {
      await worker.kill();
      throw new Error(`worker did not start in ${STARTUP_TIMEOUT_MS} ms:\n${worker.logText()}`);
    }
    await sleep(readyFromLog ? 5 : 200);
  }
  return worker;
}

/** Whether the worker answers `GET /ok` (with 200, or at all when `anyStatus`: a
 * misconfigured worker answers 500). */
async function isUp(url, anyStatus = false) {
  try {
    const res = await fetch(`${url}/ok`, { signal: AbortSignal.timeout(1000) });
    return res.ok || anyStatus;
  } catch {
    return false;
  }
}

/** Polls `read` until `ok(value)`, for at most `ms`; the value. */
export async function until(read, ok, ms = 10_000) {
  const deadline = Date.now() + ms;
  let value;
  while (Date.now() < deadline) {
    value = await read();
    if (ok(value)) return value;
    await sleep(50);
  }
  throw new Error(`condition not met in ${ms} ms; last value: ${JSON.stringify(value)}`);
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitUntil(check, timeoutMs, what) {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** JSON request helper: returns { status, body }. */
export async function api(url, method, path, body) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)),
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = text; }
  return { status: res.status, body: json, headers: res.headers };
}

export function say(text, extra = {}) {
  return { assistant_id: 'agent', input: { messages: [{ role: 'user', content: text }] }, ...extra };
}

/** Every entry of a history (newest first) continues from the next one: one line, no
 * fork, no gap. */
export function assertLinear(assert, entries, label = 'history') {
  entries.forEach((entry, i) => {
    assert.equal(entry.parent_checkpoint?.checkpoint_id ?? null, entries[i + 1]?.checkpoint.checkpoint_id ?? null,
      `${label}: entry ${i} continues from entry ${i + 1}`);
  });
}

/** An HS256 JWT with `claims`, signed with `secret`. */
export function signHs256(claims, secret) {
  const b64 = (data) => Buffer.from(data).toString('base64url');
  const input = `${b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64(JSON.stringify(claims))}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}
