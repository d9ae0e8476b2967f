//! The core's error: what went wrong in storage, the engine or a request's content,
//! by kind, with no notion of HTTP.
//!
//! Every backend fails the same way: a missing thread is [`Error::NotFound`] whether it
//! lives in memory, in SQLite or in a Durable Object. The API's error
//! ([`crate::api::ApiError`]) wraps it, adds what only the HTTP layer can fail on
//! (credentials, CORS, methods), and owns the status code, the stable `code` and the
//! client-facing text; [`Error::Backend`] keeps its source for logs and is answered with
//! a generic 500.

use std::fmt;
use std::sync::Arc;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The request body is not what the endpoint reads at all (not JSON, not an object).
    BadRequest {
        /// Why the body could not be read.
        reason: String,
    },
    /// A field is missing, has the wrong type or an invalid value.
    InvalidInput {
        /// The field, as a dotted path from the body root (e.g. `input.messages`).
        field: String,
        /// What was wrong with it, including what was received.
        reason: String,
    },
    /// The thing asked for does not exist.
    NotFound {
        /// Kind of thing: `thread`, `checkpoint`, `assistant`, `route`.
        what: &'static str,
        /// The id that was asked for.
        id: String,
    },
    /// The request conflicts with the current state (already exists, stale id, busy).
    Conflict {
        /// Which conflict: its `code` for clients.
        kind: ConflictKind,
        /// What conflicts.
        reason: String,
    },
    /// A payload is larger than a limit of the service.
    TooLarge {
        /// What was too large.
        what: String,
        /// Its size in bytes (or items, as `what` says).
        size: usize,
        /// The limit it exceeded.
        limit: usize,
    },
    /// The operation is valid but this backend or build does not support it.
    Unsupported {
        /// What is not supported.
        what: String,
    },
    /// The client remembers a conversation the server does not have (`expected_head`,
    /// `expected_turns`): answered 409 with `code: "memory_mismatch"` instead of a
    /// silent fresh start.
    MemoryMismatch {
        /// What the client expected and what the server has.
        reason: String,
    },
    /// The model provider failed (HTTP error, timeout, malformed or error stream). The
    /// reason names the failure and is shown to clients; it never carries credentials.
    Upstream {
        /// What went wrong upstream.
        reason: String,
    },
    /// The model provider is rate-limiting (HTTP 429): try again later.
    UpstreamBusy {
        /// What the provider said, with its `retry-after` when given.
        reason: String,
    },
    /// A part of the service the request needs could not be reached; the request may be
    /// retried as it was (it is idempotent where this is answered).
    Unavailable {
        /// What could not be reached.
        reason: String,
    },
    /// The model provider sent nothing (no headers, or no next chunk) for this long.
    UpstreamTimeout {
        /// How long the wait was, in milliseconds (`MODEL_TIMEOUT_MS`).
        waited_ms: u64,
    },
    /// The model provider kept sending but did not finish the reply in time.
    UpstreamDeadline {
        /// The deadline, in milliseconds (`MODEL_DEADLINE_MS`).
        deadline_ms: u64,
    },
    /// The storage or runtime failed; the reason is for logs, never for clients.
    Backend {
        /// The backend's own description of the failure.
        reason: String,
        /// The failure it came from, where its type can be kept (JSON, SQLite, I/O);
        /// runtime errors that are JavaScript values keep their text in `reason`.
        source: Option<Source>,
    },
}

/// The error a [`Error::Backend`] came from. Two sources are equal when they read the
/// same: errors of other crates seldom compare.
#[derive(Debug, Clone)]
pub struct Source(Arc<dyn std::error::Error + Send + Sync>);

impl PartialEq for Source {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Source {}

/// Which conflict a [`Error::Conflict`] is: clients switch on its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConflictKind {
    /// The thread id is taken (`thread_exists`).
    ThreadExists,
    /// Another run holds the thread and the strategy is `reject` (`thread_busy`).
    ThreadBusy,
    /// The thread's line of waiting runs is full (`queue_full`).
    QueueFull,
    /// `If-Match` names a checkpoint that is not the head (`not_head`).
    NotHead,
    /// The named checkpoint is not visible yet (Workers KV) (`not_visible_yet`).
    NotVisibleYet,
    /// A checkpoint id is not newer than the thread's newest (`stale_checkpoint`).
    StaleCheckpoint,
    /// A copy's target already holds checkpoints (`target_not_empty`).
    TargetNotEmpty,
    /// The run an `Idempotency-Key` names failed and the thread moved on
    /// (`idempotency_key_spent`).
    IdempotencyKeySpent,
    /// A message-list delta's base is not stored: send the full list
    /// (`base_version_missing`).
    BaseVersionMissing,
    /// The assistant id is taken (`assistant_exists`).
    AssistantExists,
}

impl ConflictKind {
    /// The stable, machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            ConflictKind::ThreadExists => "thread_exists",
            ConflictKind::ThreadBusy => "thread_busy",
            ConflictKind::QueueFull => "queue_full",
            ConflictKind::NotHead => "not_head",
            ConflictKind::NotVisibleYet => "not_visible_yet",
            ConflictKind::StaleCheckpoint => "stale_checkpoint",
            ConflictKind::TargetNotEmpty => "target_not_empty",
            ConflictKind::IdempotencyKeySpent => "idempotency_key_spent",
            ConflictKind::BaseVersionMissing => "base_version_missing",
            ConflictKind::AssistantExists => "assistant_exists",
        }
    }
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Backend`] from a description.
    pub fn backend(reason: impl fmt::Display) -> Self {
        Error::Backend {
            reason: reason.to_string(),
            source: None,
        }
    }

    /// [`Error::Backend`] caused by `source`, which [`std::error::Error::source`] returns.
    pub fn backend_from(
        context: impl fmt::Display,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Backend {
            reason: format!("{context}: {source}"),
            source: Some(Source(Arc::new(source))),
        }
    }

    /// Shorthand for [`Error::NotFound`] of a thread.
    pub fn thread_not_found(id: impl Into<String>) -> Self {
        Error::NotFound {
            what: "thread",
            id: id.into(),
        }
    }
}

/// What a 404 for an unknown thread usually means, and what to pass instead.
pub const THREAD_NOT_FOUND_HELP: &str = "This usually means the client's thread id is not stable (a new id per request, per process or per page load) or the thread was deleted: pass the thread_id the thread was created with (store it per user or session), or send if_not_exists: \"create\" to start a thread under your own id.";

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadRequest { reason } => write!(f, "Malformed request body: {reason}"),
            Error::MemoryMismatch { reason } => write!(f, "Memory mismatch: {reason}"),
            Error::InvalidInput { field, reason } => write!(f, "Invalid `{field}`: {reason}"),
            // LangGraph's server's words for an unknown assistant.
            Error::NotFound {
                what: "assistant",
                id,
            } => write!(f, "No assistant found for \"{id}\""),
            // The memory doctor's words for the commonest cause (README: When memory does
            // not persist).
            Error::NotFound {
                what: "thread",
                id,
            } => write!(f, "Thread '{id}' not found. {THREAD_NOT_FOUND_HELP}"),
            Error::NotFound { what, id } => write!(f, "{} '{id}' not found", capitalize(what)),
            Error::Conflict { reason, .. } => write!(f, "{reason}"),
            Error::TooLarge { what, size, limit } => {
                write!(
                    f,
                    "{what} is too large: {size} exceeds the limit of {limit}"
                )
            }
            Error::Unsupported { what } => write!(f, "Not supported: {what}"),
            Error::Upstream { reason } => write!(f, "Model provider failed: {reason}"),
            Error::UpstreamBusy { reason } => write!(f, "Model provider busy: {reason}"),
            Error::Unavailable { reason } => write!(f, "Temporarily unavailable: {reason}"),
            Error::UpstreamTimeout { waited_ms } => write!(
                f,
                "Model provider timed out: nothing received for {waited_ms} ms (MODEL_TIMEOUT_MS)"
            ),
            Error::UpstreamDeadline { deadline_ms } => write!(
                f,
                "Model provider did not finish the reply within {deadline_ms} ms (MODEL_DEADLINE_MS)"
            ),
            Error::Backend { reason, .. } => write!(f, "storage backend failed: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Backend {
                source: Some(Source(source)),
                ..
            } => Some(source.as_ref()),
            _ => None,
        }
    }
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        // Only stored data is decoded with `?`; request bodies go through the API layer,
        // which reports their errors as `BadRequest`/`InvalidInput` itself.
        Error::backend_from("stored JSON could not be decoded", err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_error_keeps_its_source() {
        let json = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        let err = Error::from(json);
        let source = std::error::Error::source(&err).expect("the JSON error");
        assert!(source.to_string().contains("EOF"), "{source}");
        assert!(err
            .to_string()
            .starts_with("storage backend failed: stored JSON"));
        assert!(std::error::Error::source(&Error::backend("disk on fire")).is_none());
        assert_eq!(err.clone(), err);
    }

    #[test]
    fn an_unknown_thread_says_what_it_usually_means() {
        let text = Error::thread_not_found("abc").to_string();
        assert!(text.starts_with("Thread 'abc' not found. This usually means"));
    }
}
