// A mock OpenAI-compatible Chat Completions server on 127.0.0.1, for the worker's
// `MODEL_PROVIDER=openai` path. It records every request and answers each with the next
// scripted behaviour (default: a streamed reply).
import { createServer } from 'node:http';

/** Behaviours a request can get; each is a function (req, res, body) => void. */
export const behaviours = {
  /** A streamed reply in `pieces`; waits for `gate` (a promise) before the last piece. */
  stream(pieces, { gate, usage = { prompt_tokens: 11, completion_tokens: pieces.length } } = {}) {
    return async (req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write(': keep-alive\n\n');
      for (const [i, text] of pieces.entries()) {
        if (gate && i === pieces.length - 1) await gate;
        const chunk = { id: 'chatcmpl-mock', object: 'chat.completion.chunk', choices: [{ index: 0, delta: i === 0 ? { role: 'assistant', content: text } : { content: text }, finish_reason: null }] };
        // Split each event across two writes: the worker must join them.
        const line = `data: ${JSON.stringify(chunk)}\n\n`;
        const cut = Math.floor(line.length / 2);
        res.write(line.slice(0, cut));
        await new Promise((r) => setTimeout(r, 5));
        res.write(line.slice(cut));
      }
      res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`);
      res.write(`data: ${JSON.stringify({ choices: [], usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens } })}\n\n`);
      res.end('data: [DONE]\n\n');
    };
  },
  /** An HTTP error with an OpenAI-style error body. */
  status(code, message, headers = {}) {
    return (req, res) => {
      res.writeHead(code, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify({ error: { message, type: 'mock_error' } }));
    };
  },
  /** 200, then a chunk that is not JSON. */
  malformed() {
    return (req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end('data: {"choices": [ this is not json\n\n');
    };
  },
  /** Some text, then an error object in the stream. */
  errorMidStream(first) {
    return (req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: first } }] })}\n\n`);
      setTimeout(() => res.end(`data: ${JSON.stringify({ error: { message: 'the mock model overloaded' } })}\n\n`), 20);
    };
  },
  /** A token every `everyMs`, never finishing, until the client goes away. */
  drip(text, everyMs) {
    return (req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const timer = setInterval(() => {
        res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: text }, finish_reason: null }] })}\n\n`);
      }, everyMs);
      res.on('close', () => clearInterval(timer));
    };
  },
  /** Accepts the request and never answers. */
  hang() {
    return () => {};
  },
};

/** `/embeddings`: each text as the counts of its letters a-z (26 dimensions), so texts
 * sharing words are near; answered in reverse order with `index`, as a client must sort. */
function embeddings(res, body) {
  const input = Array.isArray(body?.input) ? body.input : [body?.input ?? ''];
  const vector = (text) => {
    const counts = new Array(26).fill(0);
    for (const ch of String(text).toLowerCase()) {
      const i = ch.charCodeAt(0) - 97;
      if (i >= 0 && i < 26) counts[i] += 1;
    }
    return counts;
  };
  const data = input.map((text, index) => ({ object: 'embedding', index, embedding: vector(text) })).reverse();
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ object: 'list', data, model: body?.model ?? 'mock', usage: { prompt_tokens: 1, total_tokens: 1 } }));
}

/**
 * Starts the mock. Returns { url, requests, next(behaviour), close() }: `requests` holds
 * { headers, body } of every request; `next` queues a behaviour for the next request.
 */
export async function startMockOpenAi() {
  const requests = [];
  const queue = [];
  const sockets = new Set();
  const server = createServer((req, res) => {
    let raw = '';
    req.on('data', (d) => { raw += d; });
    req.on('end', () => {
      let body = null;
      try { body = JSON.parse(raw); } catch { body = raw; }
      requests.push({ method: req.method, path: req.url, headers: req.headers, body });
      if (req.method === 'POST' && req.url === '/v1/embeddings') {
        embeddings(res, body);
        return;
      }
      if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `no route ${req.method} ${req.url}` } }));
        return;
      }
      const behaviour = queue.shift() ?? behaviours.stream(['Hello ', 'from ', 'the mock.']);
      behaviour(req, res, body);
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    next: (behaviour) => queue.push(behaviour),
    close: () => new Promise((r) => {
      for (const s of sockets) s.destroy();
      server.close(r);
    }),
  };
}

// `node tests/e2e/mock_openai.mjs [port]`: run the mock alone, e.g. to try
// `MODEL_PROVIDER=openai OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 make dev` offline.
// It streams a reply that quotes the last user message; a message `sleep N` is answered
// slowly, its words spread over N seconds (the Python run tests cancel such runs).
if (import.meta.url === `file://${process.argv[1]}`) {
  const port = Number(process.argv[2] ?? 8788);
  createServer((req, res) => {
    let raw = '';
    req.on('data', (d) => { raw += d; });
    req.on('end', () => {
      let said = '';
      try { said = JSON.parse(raw).messages.filter((m) => m.role === 'user').at(-1)?.content ?? ''; } catch { /* not JSON */ }
      const words = `The mock model heard: "${said}".`.split(/(?<= )/);
      const slow = /^sleep (\d+(?:\.\d+)?)$/.exec(said);
      if (!slow) return behaviours.stream(words)(req, res);
      let i = 0;
      const pause = (Number(slow[1]) * 1000) / words.length;
      const gate = new Promise((resolve) => {
        const timer = setInterval(() => { if (++i >= words.length) { clearInterval(timer); resolve(); } }, pause);
        res.on('close', () => { clearInterval(timer); resolve(); });
      });
      behaviours.stream(words, { gate })(req, res);
    });
  }).listen(port, '127.0.0.1', () => console.log(`mock OpenAI-compatible server on http://127.0.0.1:${port}/v1`));
}
