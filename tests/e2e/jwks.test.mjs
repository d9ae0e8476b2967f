// JWT with asymmetric keys (issue 20, identity providers): tokens signed RS256 and ES256
// by keys a local JWKS server publishes (as Clerk, Auth0, Supabase, Firebase or Cognito
// do) are accepted by the worker in workerd, verified with WebCrypto; a rotated key is
// fetched on its first unknown `kid`; forged, expired, wrong-audience, `alg: none` and
// HS256-signed-with-the-public-key tokens are 401.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { generateKeyPairSync, sign as cryptoSign, createHmac } from 'node:crypto';
import { startWorker, tempPersistDir, removeDir, freePort } from './harness.mjs';

const AUDIENCE = 'edge-memory-e2e';
const ISSUER = 'https://idp.local/';
const b64 = (data) => Buffer.from(data).toString('base64url');

function keyPair(kind, kid) {
  const { publicKey, privateKey } = kind === 'RS256'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { kind, kid, privateKey, publicKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, use: 'sig', alg: kind } };
}

function signWith(pair, claims, header = {}) {
  const input = `${b64(JSON.stringify({ alg: pair.kind, typ: 'JWT', kid: pair.kid, ...header }))}.${b64(JSON.stringify(claims))}`;
  const signature = pair.kind === 'RS256'
    ? cryptoSign('sha256', Buffer.from(input), pair.privateKey)
    : cryptoSign('sha256', Buffer.from(input), { key: pair.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${b64(signature)}`;
}

const now = () => Math.floor(Date.now() / 1000);
const claimsFor = (sub, extra = {}) => ({ sub, iss: ISSUER, aud: AUDIENCE, iat: now(), exp: now() + 600, ...extra });

let jwks;
let worker;
let persistDir;
let fetches = 0;
const rsa = keyPair('RS256', 'rsa-1');
const ec = keyPair('ES256', 'ec-1');
const rotated = keyPair('RS256', 'rsa-2');
let published = [rsa.jwk, ec.jwk];

before(async () => {
  const port = await freePort();
  jwks = createServer((req, res) => {
    fetches += 1;
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=600' });
    res.end(JSON.stringify({ keys: published }));
  });
  await new Promise((r) => jwks.listen(port, '127.0.0.1', r));
  persistDir = tempPersistDir('jwks');
  worker = await startWorker({
    persistDir,
    vars: { AUTH_MODE: 'jwt', JWT_JWKS_URL: `http://127.0.0.1:${port}/.well-known/jwks.json`, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE },
  });
});

after(async () => {
  await worker?.kill();
  jwks?.close();
  removeDir(persistDir);
});

async function as(token, method, path, body) {
  const res = await fetch(`${worker.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

test('RS256 and ES256 tokens from the JWKS are accepted; each user sees only its threads', async () => {
  const alice = signWith(rsa, claimsFor('alice'));
  const bob = signWith(ec, claimsFor('bob'));
  const created = await as(alice, 'POST', '/threads', {});
  assert.equal(created.status, 200, JSON.stringify(created.body));
  assert.equal(created.body.metadata.owner, 'alice');
  const turn = await as(alice, 'POST', `/threads/${created.body.thread_id}/runs/wait`,
    { input: { messages: [{ role: 'user', content: 'My name is Sam' }] } });
  assert.equal(turn.status, 200);
  assert.equal((await as(bob, 'GET', `/threads/${created.body.thread_id}`)).status, 404, "another user's thread");
  const mine = await as(bob, 'POST', '/threads', {});
  assert.equal(mine.status, 200);
  assert.equal(mine.body.metadata.owner, 'bob');
  assert.ok(fetches <= 1, `the JWKS is fetched once and cached (${fetches})`);
});

test('a rotated key is fetched on its first unknown kid', async () => {
  published = [rsa.jwk, ec.jwk, rotated.jwk];
  // The worker fetched the keys a moment ago: an unknown kid waits for the next fetch
  // window (10 s), then is found. Bounded: one fetch, not one per token.
  const token = signWith(rotated, claimsFor('carol'));
  const before = fetches;
  let status;
  for (let i = 0; i < 15; i += 1) {
    status = (await as(token, 'POST', '/threads/search', {})).status;
    if (status === 200) break;
    await new Promise((r) => setTimeout(r, 2000));
  }
  assert.equal(status, 200, 'the rotated key is accepted');
  assert.ok(fetches - before <= 2, `fetched again once or twice (${fetches - before})`);
});

test('forged, expired, wrong-audience, alg none and HS256-with-the-public-key tokens are 401', async () => {
  const stranger = keyPair('RS256', 'rsa-1'); // same kid, another key
  const publicPem = rsa.publicKey.export({ format: 'pem', type: 'spki' });
  const hsInput = `${b64(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: 'rsa-1' }))}.${b64(JSON.stringify(claimsFor('mallory')))}`;
  const confused = `${hsInput}.${createHmac('sha256', publicPem).update(hsInput).digest('base64url')}`;
  const valid = signWith(rsa, claimsFor('mallory'));
  const [head, payload] = valid.split('.');
  const tampered = `${head}.${b64(JSON.stringify(claimsFor('alice')))}.${valid.split('.')[2]}`;
  const cases = [
    ['forged (another key, same kid)', signWith(stranger, claimsFor('mallory'))],
    ['tampered claims', tampered],
    ['expired', signWith(ec, claimsFor('mallory', { iat: now() - 7200, exp: now() - 3600 }))],
    ['wrong audience', signWith(ec, claimsFor('mallory', { aud: 'another-app' }))],
    ['wrong issuer', signWith(rsa, claimsFor('mallory', { iss: 'https://evil.example/' }))],
    ['alg none', `${b64(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${payload}.`],
    ['HS256 signed with the public key', confused],
    ['ES256 header on an RSA signature', `${b64(JSON.stringify({ alg: 'ES256', typ: 'JWT', kid: 'rsa-1' }))}.${payload}.${valid.split('.')[2]}`],
  ];
  for (const [name, token] of cases) {
    const res = await as(token, 'POST', '/threads', {});
    assert.equal(res.status, 401, `${name}: ${JSON.stringify(res.body)}`);
    assert.match(res.body.code, /invalid_token|unauthorized/, name);
  }
});
