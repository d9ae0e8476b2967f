// The bad-input corpus: requests a client can get wrong, each answered 4xx with a JSON
// `detail` and without touching the thread. `T` in a path is the target thread's id.
// Each case: { name, method, path, body (string | Buffer | object), headers, status }
// (`status` optional: any 4xx passes when it is absent).

const JSON_TYPE = { 'content-type': 'application/json' };
const say = (messages, extra = {}) => ({ assistant_id: 'agent', input: { messages }, ...extra });
const hi = [{ role: 'user', content: 'hi' }];

const malformed = ['{', '{"a":}', '[1,2', 'nul', '{"input": {"messages": [}', '{"a":1,}', "{'a':1}", '{"a": NaN}', '{"a": 01}', '\u0000'];
const notObjects = ['[]', '"text"', '42', 'true', 'null'];
const bodyEndpoints = [
  ['POST', '/threads'],
  ['POST', '/threads/T/runs/wait'],
  ['POST', '/threads/T/runs/stream'],
  ['POST', '/threads/T/state'],
  ['POST', '/threads/search'],
  ['PATCH', '/threads/T'],
  ['POST', '/assistants'],
  ['POST', '/assistants/search'],
];

export const cases = [];
const add = (c) => cases.push({ headers: JSON_TYPE, ...c });

// Malformed JSON and non-object bodies, on every endpoint that reads a body.
for (const [method, path] of bodyEndpoints) {
  for (const body of malformed) add({ name: `malformed ${JSON.stringify(body)} → ${method} ${path}`, method, path, body, status: 400 });
  for (const body of notObjects) add({ name: `not an object ${body} → ${method} ${path}`, method, path, body, status: 400 });
}

// delete_for_runs: the run ids must be a list of short strings.
for (const [label, body] of [
  ['no run_ids', {}],
  ['run_ids a string', { run_ids: 'run-1' }],
  ['run_ids with a number', { run_ids: ['run-1', 7] }],
  ['run_ids with an empty id', { run_ids: [''] }],
  ['too many run_ids', { run_ids: Array.from({ length: 1001 }, (_, i) => `run-${i}`) }],
]) add({ name: `delete_for_runs: ${label}`, method: 'POST', path: '/saver/delete_for_runs', body, status: 422 });

// Runs: wrong types, missing keys, unknown fields, bad values.
const runBodies = [
  // (No input, or `input: null`, is not a mistake: it continues the state as it is.)
  ['input a string', { assistant_id: 'agent', input: 'hi' }],
  ['input a list', { assistant_id: 'agent', input: [1] }],
  ['input without messages', { assistant_id: 'agent', input: { question: 'hi' } }],
  ['input empty object', { assistant_id: 'agent', input: {} }],
  ['input unknown key without messages', { assistant_id: 'agent', input: { todos: [] } }],
  ['messages empty', say([])],
  ['messages a number', say(42)],
  ['messages null', say(null)],
  ['message a number', say([42])],
  ['message without content', say([{ role: 'user' }])],
  ['content a number', say([{ role: 'user', content: 42 }])],
  ['content null', say([{ role: 'user', content: null }])],
  ['unknown role', say([{ role: 'wizard', content: 'hi' }])],
  ['role a number', say([{ role: 7, content: 'hi' }])],
  ['unknown type', say([{ type: 'robot', content: 'hi' }])],
  ['id a number', say([{ role: 'user', content: 'hi', id: 5 }])],
  ['remove an unknown id', say([{ type: 'remove', id: 'no-such-message' }])],
  ['assistant_id a number', { assistant_id: 42, input: { messages: hi } }],
  ['unknown assistant', { assistant_id: 'other-graph', input: { messages: hi } }],
  ['multitask bogus', say(hi, { multitask_strategy: 'shout' })],
  ['interrupt_before a number', say(hi, { interrupt_before: 3 })],
  ['interrupt_before a list of numbers', say(hi, { interrupt_before: [1] })],
  ['interrupt_after an object', say(hi, { interrupt_after: { agent: true } })],
  ['command a string', { assistant_id: 'agent', command: 'resume' }],
  ['command with input', say(hi, { command: { resume: 'x' } })],
  ['command goto', { assistant_id: 'agent', command: { goto: 'agent' } }],
  ['command update without messages', { assistant_id: 'agent', command: { update: { todos: [] } } }],
  ['multitask a number', say(hi, { multitask_strategy: 3 })],
  ['if_not_exists maybe', say(hi, { if_not_exists: 'maybe' })],
  ['checkpoint_id not an id', say(hi, { checkpoint_id: 'yesterday' })],
  ['checkpoint_id a number', say(hi, { checkpoint_id: 12 })],
  ['checkpoint_id unknown', say(hi, { checkpoint_id: '01a20b00-0000-7000-8000-000000000000' })],
  ['metadata a string', say(hi, { metadata: 'x' })],
  ['metadata a list', say(hi, { metadata: [] })],
  ['expected_turns a string', say(hi, { expected_turns: 'many' })],
  ['expected_turns negative', say(hi, { expected_turns: -1 })],
  ['expected_head not an id', say(hi, { expected_head: 'abc' })],
  ['expected_head unknown (amnesia)', say(hi, { expected_head: '01a20b00-0000-7000-8000-000000000000' })],
  ['expected_turns beyond the thread (amnesia)', say(hi, { expected_turns: 999 })],
];
for (const [name, body] of runBodies) {
  add({ name: `runs/wait: ${name}`, method: 'POST', path: '/threads/T/runs/wait', body });
}
for (const [name, body] of runBodies.slice(0, 12)) {
  add({ name: `runs/stream: ${name}`, method: 'POST', path: '/threads/T/runs/stream', body: { ...body, stream_mode: ['messages-tuple'] } });
}
add({ name: 'runs/stream: stream_mode a number', method: 'POST', path: '/threads/T/runs/stream', body: say(hi, { stream_mode: 42 }), status: 422 });
add({ name: 'runs/stream: stream_mode an object', method: 'POST', path: '/threads/T/runs/stream', body: say(hi, { stream_mode: { values: true } }), status: 422 });
add({ name: 'If-Match not the head', method: 'POST', path: '/threads/T/runs/wait', body: say(hi), headers: { ...JSON_TYPE, 'if-match': '01a20b00-0000-7000-8000-000000000000' }, status: 409 });
add({ name: 'If-Match not an id', method: 'POST', path: '/threads/T/runs/wait', body: say(hi), headers: { ...JSON_TYPE, 'if-match': 'not/an id' }, status: 422 });
add({ name: 'If-Match another id', method: 'POST', path: '/threads/T/runs/wait', body: say(hi), headers: { ...JSON_TYPE, 'if-match': 'abc' }, status: 409 });
add({ name: 'Idempotency-Key too long', method: 'POST', path: '/threads/T/runs/wait', body: say(hi), headers: { ...JSON_TYPE, 'idempotency-key': 'k'.repeat(300) }, status: 422 });
// The corpus thread's first turn was sent with the key `corpus-key`: another body with it.
add({ name: 'Idempotency-Key reused with another body', method: 'POST', path: '/threads/T/runs/wait', body: say(hi), headers: { ...JSON_TYPE, 'idempotency-key': 'corpus-key' }, status: 422 });

// Background runs and run records.
for (const [name, body] of runBodies.slice(0, 12)) {
  add({ name: `background run: ${name}`, method: 'POST', path: '/threads/T/runs', body });
}
for (const [name, method, path, body, status] of [
  ['after_seconds negative', 'POST', '/threads/T/runs', say(hi, { after_seconds: -1 }), 422],
  ['after_seconds a string', 'POST', '/threads/T/runs', say(hi, { after_seconds: 'soon' }), 422],
  ['after_seconds beyond a day', 'POST', '/threads/T/runs', say(hi, { after_seconds: 90000 }), 422],
  ['stream_resumable a string', 'POST', '/threads/T/runs', say(hi, { stream_resumable: 'yes' }), 422],
  ['stateless: on_completion bogus', 'POST', '/runs', say(hi, { on_completion: 'shred' }), 422],
  ['stateless: input without messages', 'POST', '/runs', { assistant_id: 'agent', input: { q: 1 } }, 422],
  ['batch: empty', 'POST', '/runs/batch', [], 422],
  ['batch: an object', 'POST', '/runs/batch', say(hi), 422],
  ['batch: an item not an object', 'POST', '/runs/batch', [say(hi), 7], 422],
  ['batch: a bad item', 'POST', '/runs/batch', [say(hi), say([])], 422],
  ['batch: unknown assistant', 'POST', '/runs/batch', [say(hi, { assistant_id: 'other-graph' })], 404],
  ['list: limit a word', 'GET', '/threads/T/runs?limit=ten', undefined, 422],
  ['list: limit too large', 'GET', '/threads/T/runs?limit=5000', undefined, 422],
  ['list: offset negative', 'GET', '/threads/T/runs?offset=-1', undefined, 422],
  ['get: unknown run', 'GET', '/threads/T/runs/01a20b00-0000-7000-8000-000000000000', undefined, 404],
  ['delete: unknown run', 'DELETE', '/threads/T/runs/01a20b00-0000-7000-8000-000000000000', undefined, 404],
  ['cancel: unknown run', 'POST', '/threads/T/runs/01a20b00-0000-7000-8000-000000000000/cancel', undefined, 404],
  ['cancel: action bogus', 'POST', '/threads/T/runs/R/cancel?action=explode', undefined, 422],
  ['cancel: wait bogus', 'POST', '/threads/T/runs/R/cancel?wait=maybe', undefined, 422],
  ['join: unknown run', 'GET', '/threads/T/runs/01a20b00-0000-7000-8000-000000000000/join', undefined, 404],
  ['join a run of an unknown thread', 'GET', '/threads/no-such-thread/runs/R/join', undefined, 404],
  ['run id overlong', 'GET', `/threads/T/runs/${'r'.repeat(80)}`, undefined, 422],
]) add({ name: `runs: ${name}`, method, path, body, status });
add({ name: 'runs: stream with a Last-Event-ID not ours', method: 'GET', path: '/threads/T/runs/R/stream', headers: { ...JSON_TYPE, 'last-event-id': '1795940838186-0' }, status: 422 });

// State updates.
for (const [name, body] of [
  ['values unknown key', { values: { todos: [] } }],
  ['values a string', { values: 'x' }],
  ['values.messages a number', { values: { messages: 1 } }],
  ['as_node a number', { values: { messages: hi }, as_node: 3 }],
  ['checkpoint_id not an id', { values: { messages: hi }, checkpoint_id: 'x' }],
]) add({ name: `state update: ${name}`, method: 'POST', path: '/threads/T/state', body });

// Threads, search, history.
for (const [name, method, path, body] of [
  ['create: thread_id a number', 'POST', '/threads', { thread_id: 5 }],
  ['create: thread_id with a slash', 'POST', '/threads', { thread_id: 'a/b' }],
  ['create: thread_id overlong', 'POST', '/threads', { thread_id: 'x'.repeat(200) }],
  ['create: thread_id empty', 'POST', '/threads', { thread_id: '' }],
  ['create: if_exists bogus', 'POST', '/threads', { if_exists: 'sometimes' }],
  ['create: the target again', 'POST', '/threads', { thread_id: 'T' }],
  ['create: metadata a list', 'POST', '/threads', { metadata: [1] }],
  ['create: ttl a bare number', 'POST', '/threads', { ttl: 1 }],
  ['create: ttl zero', 'POST', '/threads', { ttl: { strategy: 'delete', ttl: 0 } }],
  ['create: ttl strategy keep_latest', 'POST', '/threads', { ttl: { strategy: 'keep_latest', ttl: 1 } }],
  ['create: supersteps a string', 'POST', '/threads', { supersteps: 'x' }],
  ['create: superstep without updates', 'POST', '/threads', { supersteps: [{}] }],
  ['create: superstep on an unknown node', 'POST', '/threads', { supersteps: [{ updates: [{ values: { messages: [] }, as_node: 'nope' }] }] }],
  ['create: superstep as a command', 'POST', '/threads', { supersteps: [{ updates: [{ command: { update: {} } }] }] }],
  ['patch: ttl a string', 'PATCH', '/threads/T', { ttl: 'soon' }],
  ['patch: metadata a string', 'PATCH', '/threads/T', { metadata: 'x' }],
  ['search: limit a string', 'POST', '/threads/search', { limit: 'ten' }],
  ['search: offset negative', 'POST', '/threads/search', { offset: -1 }],
  ['search: sort_by bogus', 'POST', '/threads/search', { sort_by: 'mood' }],
  ['search: metadata a string', 'POST', '/threads/search', { metadata: 'x' }],
  ['search: status bogus', 'POST', '/threads/search', { status: 'sleepy' }],
  ['history: limit negative', 'POST', '/threads/T/history', { limit: -1 }],
  ['history: limit a string', 'POST', '/threads/T/history', { limit: 'all' }],
  ['history: before not an id', 'POST', '/threads/T/history', { before: 'not an id' }],
  ['history: before unknown', 'POST', '/threads/T/history', { before: 'x' }],
]) add({ name, method, path, body });

// Assistants: wrong types, unknown graphs and ids, the system assistant is fixed.
const NO_SUCH_ASSISTANT = '00000000-0000-4000-8000-000000000000';
for (const [name, method, path, body, status] of [
  ['create: no graph_id', 'POST', '/assistants', {}, 422],
  ['create: unknown graph', 'POST', '/assistants', { graph_id: 'nope' }, 404],
  ['create: assistant_id not a UUID', 'POST', '/assistants', { graph_id: 'agent', assistant_id: 'mine' }, 422],
  ['create: config a list', 'POST', '/assistants', { graph_id: 'agent', config: [1] }, 422],
  ['create: configurable a string', 'POST', '/assistants', { graph_id: 'agent', config: { configurable: 'x' } }, 422],
  ['create: temperature a string', 'POST', '/assistants', { graph_id: 'agent', context: { temperature: 'hot' } }, 422],
  ['create: max_tokens zero', 'POST', '/assistants', { graph_id: 'agent', config: { configurable: { max_tokens: 0 } } }, 422],
  ['create: system_prompt a number', 'POST', '/assistants', { graph_id: 'agent', context: { system_prompt: 7 } }, 422],
  ['create: name a number', 'POST', '/assistants', { graph_id: 'agent', name: 5 }, 422],
  ['create: if_exists bogus', 'POST', '/assistants', { graph_id: 'agent', if_exists: 'maybe' }, 422],
  ['create: the system assistant again', 'POST', '/assistants', { graph_id: 'agent', assistant_id: 'fe096781-5601-53d2-b2f6-0d3403f7e9ca' }, 409],
  ['search: sort_by bogus', 'POST', '/assistants/search', { sort_by: 'mood' }, 422],
  ['search: sort_order bogus', 'POST', '/assistants/search', { sort_order: 'up' }, 422],
  ['search: select unknown field', 'POST', '/assistants/search', { select: ['password'] }, 422],
  ['search: limit a string', 'POST', '/assistants/search', { limit: 'ten' }, 422],
  ['search: window too large', 'POST', '/assistants/search', { offset: 20000 }, 422],
  ['count: metadata a string', 'POST', '/assistants/count', { metadata: 'x' }, 422],
  ['get: unknown assistant', 'GET', `/assistants/${NO_SUCH_ASSISTANT}`, undefined, 404],
  ['get: not an assistant id', 'GET', '/assistants/other-graph', undefined, 404],
  ['graph: unknown assistant', 'GET', `/assistants/${NO_SUCH_ASSISTANT}/graph`, undefined, 404],
  ['patch: unknown assistant', 'PATCH', `/assistants/${NO_SUCH_ASSISTANT}`, { name: 'x' }, 404],
  ['patch: the system assistant', 'PATCH', '/assistants/agent', { name: 'x' }, 422],
  ['patch: config a string', 'PATCH', `/assistants/${NO_SUCH_ASSISTANT}`, { config: 'x' }, 422],
  ['delete: unknown assistant', 'DELETE', `/assistants/${NO_SUCH_ASSISTANT}`, undefined, 404],
  ['delete: the system assistant', 'DELETE', '/assistants/fe096781-5601-53d2-b2f6-0d3403f7e9ca', undefined, 422],
  ['delete: delete_threads bogus', 'DELETE', `/assistants/${NO_SUCH_ASSISTANT}?delete_threads=maybe`, undefined, 422],
  ['versions: metadata a list', 'POST', `/assistants/${NO_SUCH_ASSISTANT}/versions`, { metadata: [] }, 422],
  ['versions: unknown assistant', 'POST', `/assistants/${NO_SUCH_ASSISTANT}/versions`, {}, 404],
  ['latest: version missing', 'POST', `/assistants/${NO_SUCH_ASSISTANT}/latest`, {}, 422],
  ['latest: unknown assistant', 'POST', `/assistants/${NO_SUCH_ASSISTANT}/latest`, { version: 1 }, 404],
  ['run: unknown assistant UUID', 'POST', '/threads/T/runs/wait', say(hi, { assistant_id: NO_SUCH_ASSISTANT }), 404],
  ['stateless run: unknown assistant UUID', 'POST', '/runs/wait', say(hi, { assistant_id: NO_SUCH_ASSISTANT }), 404],
  ['PUT an assistant', 'PUT', `/assistants/${NO_SUCH_ASSISTANT}`, undefined, 405],
]) add({ name: `assistants: ${name}`, method, path, body, status });

// The AI SDK's chat (`POST /api/chat`, UI messages): the chat id `T` is the thread.
const uiUser = (text, id = 'u-bad') => ({ id, role: 'user', parts: [{ type: 'text', text }] });
for (const [name, body, status] of [
  ['no id', { messages: [uiUser('hi')] }, 422],
  ['id a number', { id: 7, messages: [uiUser('hi')] }, 422],
  ['id with a slash', { id: 'a/b', messages: [uiUser('hi')] }, 422],
  ['messages not a list', { id: 'T', messages: 'hi' }, 422],
  ['messages an object', { id: 'T', messages: { 0: uiUser('hi') } }, 422],
  ['no messages and no message', { id: 'T' }, 422],
  ['both messages and message', { id: 'T', messages: [uiUser('hi')], message: uiUser('hi') }, 422],
  ['an empty transcript', { id: 'T', messages: [] }, 422],
  ['a part without type', { id: 'T', messages: [{ id: 'u', role: 'user', parts: [{ text: 'hi' }] }] }, 422],
  ['a part that is a string', { id: 'T', message: { id: 'u', role: 'user', parts: ['hi'] } }, 422],
  ['a text part without text', { id: 'T', message: { id: 'u', role: 'user', parts: [{ type: 'text' }] } }, 422],
  ['parts missing', { id: 'T', message: { id: 'u', role: 'user' } }, 422],
  ['role tool', { id: 'T', message: { id: 'u', role: 'tool', parts: [] } }, 422],
  ['message id empty', { id: 'T', message: { id: '', role: 'user', parts: [] } }, 422],
  ['trigger unknown', { id: 'T', messages: [uiUser('hi')], trigger: 'resume-stream' }, 422],
  ['messageId a number', { id: 'T', messages: [uiUser('hi')], messageId: 5 }, 422],
  ['regenerate an unknown message', { id: 'T', messages: [], trigger: 'regenerate-message', messageId: 'no-such-message' }, 422],
  ['expected_head the server never had (the amnesia guard)', { id: 'T', message: uiUser('hi'), expected_head: '01a20b00-0000-7000-8000-000000000000' }, 409],
  ['a transcript over 2,000 messages', { id: 'T', messages: Array.from({ length: 2001 }, (_, i) => uiUser('x', `m${i}`)) }, 413],
  ['more than 256 new messages', { id: 'T', messages: Array.from({ length: 300 }, (_, i) => uiUser('x', `n${i}`)) }, 413],
  ['a message over 3 MiB', { id: 'T', message: uiUser('z'.repeat(3 * 1024 * 1024 + 10)) }, 413],
]) add({ name: `ai-sdk chat: ${name}`, method: 'POST', path: '/api/chat', body, status });
for (const [name, method, path, status] of [
  ['messages of an unknown chat', 'GET', '/api/chat/no-such-chat/messages', 404],
  ['messages: chat id with a space', 'GET', '/api/chat/a%20b/messages', 422],
  ['resume: chat id with a space', 'GET', '/api/chat/a%20b/stream', 422],
  ['GET /api/chat', 'GET', '/api/chat', 405],
  ['POST a resume', 'POST', '/api/chat/T/stream', 405],
]) add({ name: `ai-sdk chat: ${name}`, method, path, status });

// Limits.
const big = 'x'.repeat(3 * 1024 * 1024 + 10);
add({ name: 'body over 4 MiB', method: 'POST', path: '/threads/T/runs/wait', body: JSON.stringify(say([{ role: 'user', content: 'y'.repeat(4 * 1024 * 1024 + 10) }])), status: 413 });
add({ name: 'message over 3 MiB', method: 'POST', path: '/threads/T/runs/wait', body: say([{ role: 'user', content: big }]), status: 413 });
add({ name: 'more than 256 messages', method: 'POST', path: '/threads/T/runs/wait', body: say(Array(300).fill({ role: 'user', content: 'x' })) });
add({ name: 'metadata over 64 KiB', method: 'POST', path: '/threads', body: { metadata: { blob: 'm'.repeat(70 * 1024) } }, status: 413 });

// Encodings and content types.
add({ name: 'invalid UTF-8', method: 'POST', path: '/threads/T/runs/wait', body: Buffer.concat([Buffer.from('{"assistant_id":"agent","input":{"messages":[{"role":"user","content":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}]}}')]), status: 400 });
// Bodies are read as JSON whatever their content-type (as LangGraph's server does), so a
// body that is not JSON is a 400 under every type, and under none.
const notJson = ['a=1&b=2', '<run><input/></run>', '--x\r\ncontent-disposition: form-data; name="a"\r\n\r\n1\r\n--x--', 'hello'];
for (const type of ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'text/html', undefined]) {
  for (const body of notJson) {
    add({ name: `not JSON as ${type ?? 'no content-type'}: ${JSON.stringify(body).slice(0, 20)}`, method: 'POST', path: '/threads/T/runs/wait', body, headers: type ? { 'content-type': type } : {}, status: 400 });
  }
}

// Paths: ids, tricks, routes, methods.
for (const [name, method, path, status] of [
  ['unknown thread', 'GET', '/threads/no-such-thread', 404],
  ['overlong thread id', 'GET', `/threads/${'a'.repeat(300)}`],
  ['dot-dot out to a dev route', 'GET', '/threads/x/../../__dev/storage/T', 404],
  ['encoded dot-dot', 'GET', '/threads/%2e%2e/state', 404],
  ['dot-dot with an encoded slash', 'GET', '/threads/..%2Fstate'],
  ['encoded slash', 'GET', '/threads/T%2Fstate'],
  ['encoded slash to the index object', 'GET', '/threads/index%2Fthreads'],
  ['percent-encoded null', 'GET', '/threads/a%00b'],
  ['space in the id', 'GET', '/threads/a%20b'],
  ['non-ASCII id', 'GET', '/threads/%C3%BC'],
  ['backslash', 'GET', '/threads/a%5Cb'],
  ['unknown route', 'GET', '/nothing/here', 404],
  ['unknown thread sub-route', 'GET', '/threads/T/secrets', 404],
  ['checkpoint not an id', 'GET', '/threads/T/state/not-an-id'],
  ['unknown checkpoint', 'GET', '/threads/T/state/01a20b00-0000-7000-8000-000000000000', 404],
  ['PUT a thread', 'PUT', '/threads/T', 405],
  ['DELETE state', 'DELETE', '/threads/T/state', 405],
  ['PUT runs/wait', 'PUT', '/threads/T/runs/wait', 405],
  ['GET runs/wait (no such run)', 'GET', '/threads/T/runs/wait', 404],
  ['dev routes are off', 'POST', '/__dev/conformance', 404],
  ['POST diagnostics', 'POST', '/diagnostics', 405],
  ['DELETE diagnostics', 'DELETE', '/diagnostics', 405],
  ['a sub-route of diagnostics', 'GET', '/diagnostics/all', 404],
]) add({ name: `path: ${name}`, method, path, status });

// The Store API (`/store/*`): LangGraph's shapes, each mistake a 4xx naming it.
const item = (extra) => ({ namespace: ['ref'], key: 'k', value: { a: 1 }, ...extra });
for (const [name, method, path, body] of [
  ['namespace not a list', 'PUT', '/store/items', item({ namespace: 'ref' })],
  ['dotted label', 'PUT', '/store/items', item({ namespace: ['ref.x'] })],
  ['empty label', 'PUT', '/store/items', item({ namespace: ['ref', ''] })],
  ['non-string label', 'PUT', '/store/items', item({ namespace: ['ref', 1] })],
  ['empty namespace', 'PUT', '/store/items', item({ namespace: [] })],
  ['value a string', 'PUT', '/store/items', item({ value: 'text' })],
  ['value a list', 'PUT', '/store/items', item({ value: [1, 2] })],
  ['value null', 'PUT', '/store/items', item({ value: null })],
  ['value too large', 'PUT', '/store/items', item({ value: { text: 'x'.repeat(1024 * 1024 + 1) } })],
  ['a user root label alone', 'PUT', '/store/items', item({ namespace: ['user:alice'] })],
  ['a user root label with a bad escape', 'PUT', '/store/items', item({ namespace: ['user:a%41', 'x'] })],
  ['search: a user root label naming nobody', 'POST', '/store/items/search', { namespace_prefix: ['user:'] }],
  ['key a number', 'PUT', '/store/items', item({ key: 5 })],
  ['key missing', 'PUT', '/store/items', { namespace: ['ref'], value: {} }],
  ['ttl negative', 'PUT', '/store/items', item({ ttl: -5 })],
  ['index true', 'PUT', '/store/items', item({ index: true })],
  ['delete: namespace a string', 'DELETE', '/store/items', { namespace: 'ref', key: 'k' }],
  ['delete: dotted label', 'DELETE', '/store/items', { namespace: ['ref.users'], key: 'k' }],
  ['search: prefix a string', 'POST', '/store/items/search', { namespace_prefix: 'ref' }],
  ['search: dotted prefix label', 'POST', '/store/items/search', { namespace_prefix: ['ref.users'] }],
  ['search: unknown operator', 'POST', '/store/items/search', { filter: { age: { $in: [1, 2] } } }],
  ['search: comparison with a string', 'POST', '/store/items/search', { filter: { age: { $gt: 'old' } } }],
  ['search: filter a list', 'POST', '/store/items/search', { filter: [1] }],
  ['search: offset beyond the window', 'POST', '/store/items/search', { offset: 1_000_000 }],
  ['namespaces: dotted prefix', 'POST', '/store/namespaces', { prefix: ['a.b'] }],
  ['namespaces: max_depth 0', 'POST', '/store/namespaces', { max_depth: 0 }],
  ['get: no key', 'GET', '/store/items?namespace=ref.users', undefined],
  ['get: no namespace', 'GET', '/store/items?key=u1', undefined],
  ['get: empty label', 'GET', '/store/items?namespace=ref..users&key=u1', undefined],
  ['get: bad escape', 'GET', '/store/items?namespace=ref&key=%zz', undefined],
  ['POST /store/items', 'POST', '/store/items', item({})],
]) add({ name: `store: ${name}`, method, path, body });
