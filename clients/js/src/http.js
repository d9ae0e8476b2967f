// HTTP to the worker: bounded retries of idempotent calls only, errors thrown, never
// swallowed. Uses the global `fetch`, or the one given (a Worker's service binding).

/** Idempotent calls are retried this many times on network errors and 502/503/504. */
export const DEFAULT_RETRIES = 3;
/** Default time for one request, in milliseconds. */
export const DEFAULT_TIMEOUT_MS = 10_000;
const RETRY_BACKOFF_MS = 200;
// Answers that say "try again": the request may not have been served.
const RETRYABLE_STATUSES = new Set([502, 503, 504]);
// Network errors raised before the request reached the server: any call may be retried.
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * The worker refused a request (4xx), failed (5xx) or could not be reached.
 * `status` is the HTTP status (`undefined` when unreachable), `code` the worker's stable
 * machine-readable code (`thread_not_found`, `base_version_missing`, ...), `detail` its
 * explanation.
 */
export class EdgeMemoryError extends Error {
  constructor(status, detail, { code, method = '', path = '', cause } = {}) {
    const where = method ? ` (${method} ${path})` : '';
    const prefix = status ? `edge-memory answered ${status}` : 'edge-memory unreachable';
    super(`${prefix}${where}: ${detail}`, cause ? { cause } : undefined);
    this.name = 'EdgeMemoryError';
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

/** `/threads/{id}` with the id escaped, and `suffix`. */
export function threadPath(threadId, suffix = '') {
  return `/threads/${encodeURIComponent(String(threadId))}${suffix}`;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Full jitter: many clients retrying at once do not retry in step. */
function backoff(attempt) {
  return Math.random() * RETRY_BACKOFF_MS * 2 ** attempt;
}

function notSent(error) {
  const code = error?.cause?.code ?? error?.code;
  return NOT_SENT_CODES.has(code);
}

async function errorOf(response, method, path) {
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (body && typeof body === 'object' && 'detail' in body) {
    return new EdgeMemoryError(response.status, String(body.detail), { code: body.code ?? undefined, method, path });
  }
  return new EdgeMemoryError(response.status, text.slice(0, 500), { method, path });
}

/** The response header in which the worker names its memory doctor's hints. */
export const HINT_HEADER = 'x-edge-memory-hint';

/** The symptom map of memory that does not persist, by the worker's stable hint codes. */
export const HINTS = {
  ephemeral_memory: ['Works locally only', 'set MEMORY_BACKEND=durable_object (the default) and keep the thread ids and checkpoint ids the server returned'],
  thread_id_not_stable: ["First message persists, second doesn't", 'generate the thread_id once per conversation (user, session or case id), store it, and pass the same one on every request'],
  new_thread_per_request: ['A new conversation starts on every request', 'create a thread once per conversation and reuse its thread_id instead of creating one per request'],
  checkpoints_unread: ["Checkpoints exist but aren't used", 'pass the same config on every call: { configurable: { thread_id: <stable id> } } (and the same checkpoint_ns), not a new id per invocation'],
};

/** Warns (`console.warn`) the first time each hint code comes back from the worker. */
export class HintLog {
  constructor() {
    this.seen = new Set();
  }

  note(header) {
    for (const code of (header ?? '').split(',').map((c) => c.trim()).filter(Boolean)) {
      if (this.seen.has(code)) continue;
      this.seen.add(code);
      const [symptom, fix] = HINTS[code] ?? ['see GET /diagnostics on the worker', 'see the README: When memory does not persist'];
      console.warn(`edge-memory hint ${code} (${symptom}). Fix: ${fix}`);
    }
  }
}

/**
 * Requests to one worker. Only idempotent calls are retried (network errors and
 * 502/503/504); any call is retried when it never reached the server. A 500 is a bug,
 * not a blip: thrown at once.
 */
export class Transport {
  constructor({ url, apiKey, token, fetch: fetchFn, timeoutMs = DEFAULT_TIMEOUT_MS, retries = DEFAULT_RETRIES } = {}) {
    if (!url) throw new TypeError('edge-memory needs `url`: the worker\'s base URL (any origin with a service binding)');
    this.url = String(url).replace(/\/+$/, '');
    this.headers = { 'content-type': 'application/json' };
    if (apiKey) this.headers['x-api-key'] = apiKey;
    if (token) this.headers.authorization = `Bearer ${token}`;
    this.fetch = fetchFn ?? globalThis.fetch.bind(globalThis);
    this.timeoutMs = timeoutMs;
    this.retries = retries;
    // The memory doctor's hints already warned about (once each).
    this.hints = new HintLog();
  }

  /**
   * Sends one request; the parsed JSON answer (`null` for an empty one). `allow404`: an
   * unknown (or another user's) thread reads as `null`; a missing route still throws.
   */
  async request(method, path, body, { allow404 = false, idempotent = false } = {}) {
    const init = { method, headers: this.headers };
    if (body !== undefined) init.body = JSON.stringify(body);
    for (let attempt = 0; ; attempt += 1) {
      let response;
      try {
        response = await this.fetch(`${this.url}${path}`, { ...init, signal: AbortSignal.timeout(this.timeoutMs) });
      } catch (error) {
        if (attempt < this.retries && (idempotent || notSent(error))) {
          await sleep(backoff(attempt));
          continue;
        }
        throw new EdgeMemoryError(undefined, `${error?.name ?? 'Error'}: ${error?.message ?? error}`, { method, path, cause: error });
      }
      if (idempotent && attempt < this.retries && RETRYABLE_STATUSES.has(response.status)) {
        await response.body?.cancel();
        await sleep(backoff(attempt));
        continue;
      }
      return this.answer(response, method, path, allow404);
    }
  }

  async answer(response, method, path, allow404) {
    this.hints.note(response.headers.get(HINT_HEADER));
    if (response.status >= 400) {
      const error = await errorOf(response, method, path);
      if (allow404 && response.status === 404 && (error.code === undefined || error.code === 'thread_not_found')) {
        return null;
      }
      throw error;
    }
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  }
}
