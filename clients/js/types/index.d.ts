import type { BaseListChatMessageHistory } from '@langchain/core/chat_history';
import type { BaseMessage } from '@langchain/core/messages';
import type { RunnableConfig } from '@langchain/core/runnables';
import type {
  BaseCheckpointSaver, ChannelVersions, Checkpoint, CheckpointListOptions, CheckpointMetadata, CheckpointTuple,
  PendingWrite, SerializerProtocol,
} from '@langchain/langgraph-checkpoint';

/** How to reach an edge-memory worker. */
export interface EdgeMemoryClientOptions {
  /** The worker's base URL; with a service binding, any origin (e.g. `https://edge-memory`). */
  url: string;
  /** Sent as `x-api-key`. */
  apiKey?: string;
  /** A user's JWT, sent as `Authorization: Bearer` (AUTH_MODE=jwt: only that user's threads). */
  token?: string;
  /** Replaces the global `fetch`; in a Worker: `env.EDGE_MEMORY.fetch.bind(env.EDGE_MEMORY)`. */
  fetch?: (input: string, init?: RequestInit) => Promise<Response>;
  /** Milliseconds per request (default 10 000). */
  timeoutMs?: number;
  /** Retries of idempotent calls on network errors and 502/503/504 (default 3). */
  retries?: number;
}

/** Options of {@link EdgeMemorySaver}. */
export interface EdgeMemorySaverOptions extends EdgeMemoryClientOptions {
  /** The serializer (LangGraph.js's `JsonPlusSerializer` if omitted). */
  serde?: SerializerProtocol;
}

/** The blob type of a message list on the wire. */
export declare const MESSAGE_LIST_TYPE: 'em:message_list';

/** The worker refused a request (4xx), failed (5xx) or could not be reached. */
export declare class EdgeMemoryError extends Error {
  /** The HTTP status; `undefined` when the worker could not be reached. */
  readonly status: number | undefined;
  /** The worker's stable error code (`thread_not_found`, `base_version_missing`, ...). */
  readonly code: string | undefined;
  /** The worker's explanation. */
  readonly detail: string;
}

/**
 * A LangGraph.js checkpointer whose checkpoints live in edge-memory's Durable Objects.
 * Its channel versions are sortable strings at run time, as the Python saver's are (so
 * either language continues the other's threads); LangGraph treats versions as opaque
 * `number | string`, and the class is typed as LangGraph's `compile` expects it.
 */
export declare class EdgeMemorySaver extends BaseCheckpointSaver {
  constructor(options: EdgeMemorySaverOptions);
  getTuple(config: RunnableConfig): Promise<CheckpointTuple | undefined>;
  list(config: RunnableConfig, options?: CheckpointListOptions): AsyncGenerator<CheckpointTuple>;
  put(
    config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata, newVersions: ChannelVersions,
  ): Promise<RunnableConfig>;
  putWrites(config: RunnableConfig, writes: PendingWrite[], taskId: string, taskPath?: string): Promise<void>;
  deleteThread(threadId: string): Promise<void>;
  /** Copies a thread's checkpoints and writes into a thread without any (not retried). */
  copyThread(sourceThreadId: string, targetThreadId: string): Promise<void>;
  /** `keep_latest`: each namespace's newest checkpoint stays; `delete`: none do. */
  prune(threadIds: Iterable<string>, strategy?: 'keep_latest' | 'delete'): Promise<void>;
  /** Deletes the checkpoints made by these runs, on every thread they wrote to. */
  deleteForRuns(runIds: Iterable<string>): Promise<void>;
}

/** Options of {@link EdgeMemoryChatMessageHistory}. */
export interface EdgeMemoryChatMessageHistoryOptions extends EdgeMemoryClientOptions {
  /** The conversation's id: a thread id (1–128 of `[A-Za-z0-9._:-]`). */
  sessionId: string;
}

/** A LangChain.js chat history kept in edge-memory (session id = thread id). */
export declare class EdgeMemoryChatMessageHistory extends BaseListChatMessageHistory {
  lc_namespace: string[];
  readonly sessionId: string;
  constructor(options: EdgeMemoryChatMessageHistoryOptions);
  getMessages(): Promise<BaseMessage[]>;
  addMessage(message: BaseMessage): Promise<void>;
  /** Adds all the messages in one request. */
  addMessages(messages: BaseMessage[]): Promise<void>;
  clear(): Promise<void>;
}
