// edge-memory demo: a chat whose memory lives in the thread's Durable Object.
//
// Thread identity done right: a thread is created once (POST /threads), its id kept in
// the URL (?thread=) and in localStorage, and a reload restores the conversation from
// GET /threads/{id}/state. Replies stream from POST /threads/{id}/runs/stream.

const $ = (id) => document.getElementById(id);
const BROWSER_KEY = 'edge-memory.browser';
const THREAD_KEY = 'edge-memory.thread';
const HISTORY_LIMIT = 50;

const state = {
  browserId: localStorage.getItem(BROWSER_KEY) || crypto.randomUUID(),
  threadId: null,
  // The newest checkpoint this page has seen: sent as `expected_head`, so a server that
  // lost the conversation says so (409 memory_mismatch) instead of starting afresh.
  head: null,
  forkFrom: null,
  busy: false,
  devMode: false,
};
localStorage.setItem(BROWSER_KEY, state.browserId);

// This browser is a client of its own to the memory doctor (the worker's detectors).
const clientHeaders = () => ({ 'x-edge-memory-client': state.browserId });

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: body === undefined ? clientHeaders() : { ...clientHeaders(), 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  noteHints(res);
  if (!res.ok) {
    let detail = `${res.status} ${res.statusText}`;
    try { detail = (await res.json()).detail ?? detail; } catch { /* not JSON */ }
    const err = new Error(detail);
    err.status = res.status;
    throw err;
  }
  return res.status === 204 ? null : res.json();
}

// The memory doctor: a response naming a hint (x-edge-memory-hint) shows this browser's
// hints from GET /diagnostics in the inspector, each with what it means and the fix.
function noteHints(res) {
  if (res.headers.get('x-edge-memory-hint')) showHints().catch(() => {});
}

async function showHints() {
  const res = await fetch('/diagnostics', { headers: clientHeaders() });
  if (!res.ok) return;
  const { hints } = await res.json();
  const list = $('hints');
  list.replaceChildren();
  for (const hint of hints) {
    const li = document.createElement('li');
    li.dataset.code = hint.code;
    const code = document.createElement('code');
    code.textContent = hint.code;
    const what = document.createElement('p');
    what.textContent = `${hint.symptom}: ${hint.explanation} (seen ${hint.count}×)`;
    const fix = document.createElement('p');
    fix.className = 'fix';
    fix.textContent = `Fix: ${hint.fix}`;
    li.append(code, what, fix);
    list.append(li);
  }
  $('hints-none').hidden = hints.length > 0;
}

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = !message;
}

function setBusy(busy) {
  state.busy = busy;
  $('send').disabled = busy;
  $('input').setAttribute('aria-busy', String(busy));
}

function setThread(threadId) {
  if (threadId !== state.threadId) state.head = null;
  state.threadId = threadId;
  const url = new URL(location.href);
  if (threadId) {
    localStorage.setItem(THREAD_KEY, threadId);
    url.searchParams.set('thread', threadId);
  } else {
    localStorage.removeItem(THREAD_KEY);
    url.searchParams.delete('thread');
  }
  history.replaceState(null, '', url);
  $('thread-id').textContent = threadId ?? 'none yet';
}

function text(message) {
  const c = message.content;
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) return c.map((p) => (typeof p === 'string' ? p : p.text ?? '')).join(' ');
  return '';
}

function messageItem(type, content, id) {
  const li = document.createElement('li');
  li.className = type === 'human' ? 'human' : 'ai';
  if (id) li.dataset.id = id;
  const role = document.createElement('span');
  role.className = 'role';
  role.textContent = type === 'human' ? 'You' : 'Assistant';
  const body = document.createElement('span');
  body.className = 'body';
  body.textContent = content;
  li.append(role, body);
  return li;
}

function renderMessages(messages) {
  const list = $('messages');
  list.replaceChildren();
  if (!messages.length) {
    const li = document.createElement('li');
    li.className = 'empty';
    li.textContent = 'No messages yet. Tell me your name, reload the page, restart the worker, then ask me for it.';
    list.append(li);
  }
  for (const m of messages) list.append(messageItem(m.type, text(m), m.id));
  list.scrollTop = list.scrollHeight;
  $('message-count').textContent = String(messages.length);
}

async function loadThread() {
  if (!state.threadId) {
    renderMessages([]);
    renderInspector([], null);
    return;
  }
  try {
    const threadState = await api('GET', `/threads/${state.threadId}/state`);
    renderMessages(threadState.values?.messages ?? []);
    await refreshInspector();
  } catch (err) {
    if (err.status === 404) {
      setThread(null);
      renderMessages([]);
      renderInspector([], null);
    } else {
      showError(`Could not load the conversation: ${err.message}`);
    }
  }
}

async function refreshInspector() {
  if (!state.threadId) return renderInspector([], null);
  const history = await api('POST', `/threads/${state.threadId}/history`, { limit: HISTORY_LIMIT });
  renderInspector(history, history[0] ?? null);
}

function renderInspector(history, head) {
  $('head-id').textContent = head?.checkpoint?.checkpoint_id ?? '—';
  state.head = head?.checkpoint?.checkpoint_id ?? state.head;
  $('checkpoint-count').textContent = history.length >= HISTORY_LIMIT ? `≥ ${HISTORY_LIMIT}` : String(history.length);
  const list = $('history');
  list.replaceChildren();
  for (const item of history) {
    const li = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    const id = item.checkpoint.checkpoint_id;
    button.dataset.checkpoint = id;
    button.textContent = `step ${item.metadata?.step ?? '?'} · ${item.metadata?.source ?? ''} · ${item.values?.messages?.length ?? 0} msgs · ${id.slice(0, 13)}…`;
    button.addEventListener('click', () => showCheckpoint(item, button));
    li.append(button);
    list.append(li);
  }
  $('checkpoint-view').hidden = true;
}

function showCheckpoint(item, button) {
  for (const b of $('history').querySelectorAll('button')) b.removeAttribute('aria-current');
  button.setAttribute('aria-current', 'true');
  $('checkpoint-view-id').textContent = item.checkpoint.checkpoint_id;
  const list = $('checkpoint-messages');
  list.replaceChildren();
  for (const m of item.values?.messages ?? []) {
    const li = document.createElement('li');
    li.textContent = `${m.type === 'human' ? 'You' : 'Assistant'}: ${text(m)}`;
    list.append(li);
  }
  $('checkpoint-view').hidden = false;
  $('continue-here').onclick = () => {
    state.forkFrom = item.checkpoint.checkpoint_id;
    renderMessages(item.values?.messages ?? []);
    const banner = $('fork-banner');
    banner.textContent = `Your next message continues from checkpoint ${state.forkFrom} (a new branch; the old one stays in history).`;
    banner.hidden = false;
    $('input').focus();
  };
}

async function refreshThreadList() {
  const threads = await api('POST', '/threads/search', { metadata: { browser: state.browserId }, limit: 20 });
  const select = $('thread-list');
  select.replaceChildren(new Option('—', ''));
  for (const t of threads) {
    const first = t.values?.messages?.[0];
    const label = first ? text(first).slice(0, 40) : '(empty)';
    const option = new Option(`${label} · ${t.thread_id.slice(0, 8)}`, t.thread_id);
    option.selected = t.thread_id === state.threadId;
    select.append(option);
  }
}

/** Reads `event:`/`data:` frames from a fetch body as they arrive. */
async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      const data = [];
      for (const line of frame.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
      }
      if (data.length) yield { event, data: JSON.parse(data.join('\n')) };
    }
    if (done) return;
  }
}

async function send(content) {
  showError('');
  setBusy(true);
  try {
    if (!state.threadId) {
      const thread = await api('POST', '/threads', { metadata: { browser: state.browserId, source: 'demo' } });
      setThread(thread.thread_id);
      renderMessages([]);
    }
    const list = $('messages');
    list.querySelector('.empty')?.remove();
    list.append(messageItem('human', content));
    const reply = messageItem('ai', '');
    list.append(reply);
    list.scrollTop = list.scrollHeight;

    const body = {
      assistant_id: 'agent',
      input: { messages: [{ role: 'user', content }] },
      stream_mode: ['messages-tuple', 'values'],
    };
    if (state.forkFrom) body.checkpoint_id = state.forkFrom;
    if (state.head) body.expected_head = state.head;
    const res = await fetch(`/threads/${state.threadId}/runs/stream`, {
      method: 'POST',
      headers: { ...clientHeaders(), 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify(body),
    });
    noteHints(res);
    if (!res.ok) {
      let detail = `${res.status}`;
      let code = null;
      try { ({ detail = detail, code = null } = await res.json()); } catch { /* not JSON */ }
      reply.remove();
      if (code === 'memory_mismatch') {
        list.lastElementChild?.remove(); // the message was not sent
        const err = new Error(`The server no longer has this conversation, so nothing was sent (${detail}). Start a New chat.`);
        err.complete = true;
        throw err;
      }
      throw new Error(detail);
    }
    let final = null;
    for await (const { event, data } of sseEvents(res)) {
      if (event === 'messages') {
        const [chunk] = data;
        reply.dataset.id = chunk.id;
        reply.querySelector('.body').textContent += chunk.content;
        list.scrollTop = list.scrollHeight;
      } else if (event === 'values') {
        final = data;
      } else if (event === 'error') {
        throw new Error(data.message ?? data.error ?? 'the run failed');
      }
    }
    state.forkFrom = null;
    $('fork-banner').hidden = true;
    if (final?.messages) renderMessages(final.messages);
    await Promise.all([refreshInspector(), refreshThreadList()]);
  } catch (err) {
    showError(err.complete ? err.message : `Sending failed: ${err.message}. Your message was not lost if it shows above; try again.`);
  } finally {
    setBusy(false);
    $('input').focus();
  }
}

async function init() {
  const fromUrl = new URL(location.href).searchParams.get('thread');
  setThread(fromUrl || localStorage.getItem(THREAD_KEY));
  try {
    const info = await api('GET', '/info');
    $('backend').textContent = `${info.storage_backend} · model ${info.model}`;
    state.devMode = Boolean(info.dev_mode);
    $('dev-tools').hidden = !state.devMode;
  } catch (err) {
    showError(`The worker is not answering: ${err.message}`);
  }
  await loadThread();
  await refreshThreadList().catch(() => {});

  $('composer').addEventListener('submit', (event) => {
    event.preventDefault();
    const content = $('input').value.trim();
    if (!content || state.busy) return;
    $('input').value = '';
    send(content);
  });
  $('input').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey) {
      event.preventDefault();
      $('composer').requestSubmit();
    }
  });
  $('new-chat').addEventListener('click', async () => {
    setThread(null);
    state.forkFrom = null;
    $('fork-banner').hidden = true;
    showError('');
    await loadThread();
    await refreshThreadList().catch(() => {});
    $('input').focus();
  });
  $('thread-list').addEventListener('change', async (event) => {
    if (!event.target.value) return;
    setThread(event.target.value);
    await loadThread();
  });
  $('cold-start').addEventListener('click', async () => {
    if (!state.threadId) return;
    const status = $('cold-start-status');
    try {
      await api('POST', `/__dev/cold-start/${state.threadId}`);
      status.textContent = 'The Durable Object was reset. Its next request starts cold and reads only storage.';
    } catch (err) {
      status.textContent = `Cold start failed: ${err.message}`;
    }
  });
  document.body.dataset.ready = 'true';
}

init();
