// LangGraph's checkpointer validation suite (@langchain/langgraph-checkpoint-validation)
// on EdgeMemorySaver against a running worker:
//   EDGE_MEMORY_URL=http://127.0.0.1:8787 npx validate-checkpointer ./test/validation.initializer.mjs
// EDGE_MEMORY_API_KEY: sent as x-api-key. EDGE_MEMORY_JWT_SECRET (a worker with
// AUTH_MODE=jwt): each checkpointer is a new JWT user, so `list` without a thread id sees
// only what that checkpointer wrote. Without it, point the suite at a worker with no other
// threads. Each checkpointer deletes the threads it wrote when the suite destroys it.
import { createHmac, randomUUID } from 'node:crypto';

import { EdgeMemorySaver } from '../src/index.js';

const url = process.env.EDGE_MEMORY_URL;
if (!url) throw new Error('validation.initializer.mjs: set EDGE_MEMORY_URL to the worker under test');

/** An HS256 JWT for a new user of the worker. */
function tokenFor(sub, secret) {
  const b64 = (data) => Buffer.from(data).toString('base64url');
  const claims = { sub, exp: Math.floor(Date.now() / 1000) + 3600, iss: process.env.EDGE_MEMORY_JWT_ISSUER };
  const input = `${b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64(JSON.stringify(claims))}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** The saver under test, remembering the threads it wrote so that they can go. */
class ValidatedSaver extends EdgeMemorySaver {
  written = new Set();

  async put(config, ...rest) {
    this.written.add(config?.configurable?.thread_id);
    return super.put(config, ...rest);
  }

  async putWrites(config, ...rest) {
    this.written.add(config?.configurable?.thread_id);
    return super.putWrites(config, ...rest);
  }
}

export default {
  checkpointerName: '@edge-memory/langgraph',

  createCheckpointer() {
    const secret = process.env.EDGE_MEMORY_JWT_SECRET;
    return new ValidatedSaver({
      url,
      apiKey: process.env.EDGE_MEMORY_API_KEY,
      token: secret ? tokenFor(`validation-${randomUUID()}`, secret) : undefined,
    });
  },

  async destroyCheckpointer(saver) {
    for (const threadId of saver.written) {
      if (threadId !== undefined) await saver.deleteThread(threadId);
    }
  },
};
