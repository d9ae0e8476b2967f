//! Limits of the service and of the platform, each with its reason.
//!
//! They are enforced in the core, before a backend would fail opaquely, so every backend
//! rejects the same input with the same error.

/// Longest accepted thread id. Ids are Durable Object names and URL path segments; a
/// bound keeps both cheap and stops ids from being used as payload.
pub const THREAD_ID_MAX_LEN: usize = 128;

/// Largest value a Durable Object SQLite row may hold (platform limit: 2 MB per row).
pub const DO_ROW_MAX_BYTES: usize = 2 * 1024 * 1024;

/// Largest single message, serialized: 3 MiB, so a request holding one fits
/// [`REQUEST_BODY_MAX_BYTES`]. Larger than a Durable Object row (2 MB): such messages are
/// stored in parts across rows and read back byte-identical.
pub const MESSAGE_MAX_BYTES: usize = 3 * 1024 * 1024;

/// Largest request body the API reads. The Workers platform accepts 100 MB on the Free
/// plan, far more than a chat turn needs; a tight bound keeps a turn inside the CPU
/// budget below.
pub const REQUEST_BODY_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Most messages one run or state update may add.
pub const INPUT_MESSAGES_MAX: usize = 256;

/// Largest thread metadata object, serialized: it is copied into every thread listing.
pub const METADATA_MAX_BYTES: usize = 64 * 1024;

/// Longest assistant `name` or `description`: each search page lists them, and the
/// worker's run cache keeps them.
pub const ASSISTANT_TEXT_MAX_BYTES: usize = 16 * 1024;

/// How long an `Idempotency-Key` names its run, in ms: a day, as payment APIs keep theirs.
/// A retry comes within minutes (or after a client's reconnect, hours); a key is kept
/// that long however many turns the thread runs meanwhile, and a key reused later starts
/// a new run. The bound keeps the thread object's key table about a day of keyed runs.
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 3600 * 1000;

/// Most checkpoints one history or list call returns.
pub const LIST_LIMIT_MAX: usize = 1000;

/// CPU time a request may use on the Workers Free plan (10 ms). Not enforced here; it is
/// why turns write only their new rows and why limits above are tight.
pub const FREE_PLAN_CPU_MS: u32 = 10;

/// Writes per second a single Workers KV key accepts (platform limit: 1). Why the KV
/// layout never rewrites a key in the course of a conversation.
pub const KV_WRITES_PER_KEY_PER_SECOND: u32 = 1;

/// Largest store item value, serialized: 1 MiB, half a Durable Object row (2 MB) so the
/// row with its namespace, key and timestamps always fits.
pub const STORE_VALUE_MAX_BYTES: usize = 1024 * 1024;

/// Longest store item key. Keys are primary-key text in the shard's SQLite and travel in
/// every URL of `GET /store/items`; a bound keeps both cheap.
pub const STORE_KEY_MAX_BYTES: usize = 1024;

/// Longest store namespace, its labels joined by `.`: it is stored with every item.
pub const STORE_NAMESPACE_MAX_BYTES: usize = 1024;

/// Most items one store search returns (`limit`), as for history pages.
pub const STORE_SEARCH_LIMIT_MAX: usize = 1000;

/// Most texts one item may have embedded (`index` paths, list elements): each is a call
/// to the embedding provider and a vector row.
pub const STORE_INDEX_TEXTS_MAX: usize = 32;
