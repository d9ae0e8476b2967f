// A stand-in for Workers AI's `AI.run` for `@cf/baai/bge-*` embedding models: the answer
// shape `{shape: [n, dims], data, pooling}`, vectors from the words of each text (a word
// hashed into one of 64 dimensions), so texts sharing words are near. It refuses what the
// real binding would: another model, or an input that is not `{text: [strings]}`.
import { WorkerEntrypoint } from 'cloudflare:workers';

const DIMS = 64;
const MODEL = '@cf/baai/bge-small-en-v1.5';

function vector(text) {
  const out = new Array(DIMS).fill(0);
  for (const word of text.toLowerCase().match(/[a-z0-9]+/g) ?? []) {
    let h = 2166136261;
    for (const c of word) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
    out[h % DIMS] += 1;
  }
  return out;
}

export class MockAi extends WorkerEntrypoint {
  async run(model, input) {
    if (model !== MODEL) throw new Error(`mock Workers AI: unknown model ${model}`);
    const texts = input?.text;
    const keys = Object.keys(input ?? {});
    if (!Array.isArray(texts) || keys.length !== 1 || !texts.every((t) => typeof t === 'string')) {
      throw new Error(`mock Workers AI: input must be {text: [strings]}, got ${JSON.stringify(input)}`);
    }
    return { shape: [texts.length, DIMS], data: texts.map(vector), pooling: 'cls' };
  }
}

export default {
  fetch() {
    return new Response('mock Workers AI: RPC only', { status: 404 });
  },
};
