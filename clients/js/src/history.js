// `EdgeMemoryChatMessageHistory`: a LangChain.js chat history kept in edge-memory. The
// session id is the thread id; messages are stored in the chat API's thread format, so
// the conversation shows at `GET /threads/{id}/state`, to the Python history and in the demo.
import { BaseListChatMessageHistory } from '@langchain/core/chat_history';
import { coerceMessageLikeToMessage } from '@langchain/core/messages';

import { Transport, threadPath } from './http.js';

// The id that, removed, clears a thread's messages (LangGraph's REMOVE_ALL_MESSAGES).
const REMOVE_ALL = '__remove_all__';
// Message fields the chat API keeps, beside `type`, `content` and `id`.
const OPTIONAL_FIELDS = [
  'name', 'additional_kwargs', 'response_metadata', 'tool_calls', 'invalid_tool_calls', 'usage_metadata',
  'tool_call_id', 'artifact', 'status',
];

/** A message as the chat API reads it (LangChain's dict form, `type` and `id` set). */
export function messageToWire(message) {
  const wire = { type: message.type ?? message._getType(), content: message.content };
  for (const field of OPTIONAL_FIELDS) {
    const value = message[field];
    if (value !== undefined && value !== null) wire[field] = value;
  }
  // A client-made id makes the write idempotent: a retry after a lost response replaces
  // the stored message instead of adding it twice (add_messages semantics).
  wire.id = message.id || crypto.randomUUID();
  return wire;
}

/**
 * Chat history for one session, kept in that session's Durable Object.
 *
 * `new EdgeMemoryChatMessageHistory({ url, sessionId, apiKey?, token?, fetch?, timeoutMs?,
 * retries? })`. Every call is idempotent (messages carry ids made here), so each is
 * retried on network errors and 502/503/504.
 */
export class EdgeMemoryChatMessageHistory extends BaseListChatMessageHistory {
  lc_namespace = ['edge_memory', 'chat_history'];

  constructor({ sessionId, url, apiKey, token, fetch, timeoutMs, retries } = {}) {
    super();
    if (!sessionId) {
      throw new Error('EdgeMemoryChatMessageHistory needs a sessionId: without one every call starts over');
    }
    this.sessionId = String(sessionId);
    this.http = new Transport({ url, apiKey, token, fetch, timeoutMs, retries });
  }

  /** The conversation, oldest first (empty for a session never written). */
  async getMessages() {
    const state = await this.http.request(
      'GET', threadPath(this.sessionId, '/state'), undefined, { allow404: true, idempotent: true },
    );
    const messages = state?.values?.messages ?? [];
    return messages.map((message) => coerceMessageLikeToMessage(message));
  }

  async addMessage(message) {
    await this.addMessages([message]);
  }

  /** Adds all the messages in one request. */
  async addMessages(messages) {
    await this.update(messages.map(messageToWire));
  }

  /** Empties the conversation (its earlier checkpoints stay in the thread's history). */
  async clear() {
    await this.update([{ type: 'remove', id: REMOVE_ALL }]);
  }

  async update(messages) {
    await this.http.request(
      'POST', threadPath(this.sessionId, '/state'),
      { values: { messages }, as_node: 'history', if_not_exists: 'create' },
      { idempotent: true },
    );
  }
}
