//! The one error type of the crate.
//!
//! Every backend fails the same way: a missing thread is [`Error::NotFound`] whether it
//! lives in memory, in SQLite or in a Durable Object. The HTTP layer maps each variant to
//! a status code (see [`Error::status`]); 4xx variants carry a reason meant for the
//! client, [`Error::Backend`] is logged and answered with a generic 500.

use std::fmt;

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
    /// The method is not allowed on this path.
    MethodNotAllowed {
        /// The method that was used.
        method: String,
    },
    /// The operation is valid but this backend or build does not support it.
    Unsupported {
        /// What is not supported.
        what: String,
    },
    /// The request carries no valid credentials (API key). Says nothing about threads.
    Unauthorized,
    /// The request's bearer token is not valid (expired, forged, ...). Says nothing
    /// about threads.
    InvalidToken {
        /// What is wrong with the token.
        reason: String,
    },
    /// The deployment has no authentication configured, so it refuses thread data
    /// (closed by default). Answered 503 until an operator configures it.
    AuthNotConfigured {
        /// What to configure.
        reason: String,
    },
    /// The request is refused whoever sends it (a CORS preflight from an origin not
    /// on the list).
    Forbidden {
        /// Why.
        reason: String,
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
    },
}

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

    /// Shorthand for [`Error::Backend`].
    pub fn backend(reason: impl fmt::Display) -> Self {
        Error::Backend {
            reason: reason.to_string(),
        }
    }

    /// Shorthand for [`Error::NotFound`] of a thread.
    pub fn thread_not_found(id: impl Into<String>) -> Self {
        Error::NotFound {
            what: "thread",
            id: id.into(),
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest { .. } => 400,
            Error::Unauthorized | Error::InvalidToken { .. } => 401,
            Error::MemoryMismatch { .. } => 409,
            Error::Forbidden { .. } => 403,
            Error::AuthNotConfigured { .. } => 503,
            Error::NotFound { .. } => 404,
            Error::MethodNotAllowed { .. } => 405,
            Error::Conflict { .. } => 409,
            Error::TooLarge { .. } => 413,
            Error::InvalidInput { .. } | Error::Unsupported { .. } => 422,
            Error::Upstream { .. } => 502,
            Error::UpstreamBusy { .. } | Error::Unavailable { .. } => 503,
            Error::UpstreamTimeout { .. } | Error::UpstreamDeadline { .. } => 504,
            Error::Backend { .. } => 500,
        }
    }

    /// A stable, machine-readable name of the error for clients to switch on (never
    /// the `detail` text, which may change).
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest { .. } => "bad_request",
            Error::InvalidInput { .. } => "invalid_input",
            Error::NotFound { what, .. } => match *what {
                "thread" => "thread_not_found",
                "checkpoint" => "checkpoint_not_found",
                "assistant" => "assistant_not_found",
                "assistant version" => "assistant_version_not_found",
                "graph" => "graph_not_found",
                "route" => "route_not_found",
                _ => "not_found",
            },
            Error::Conflict { kind, .. } => kind.code(),
            Error::TooLarge { .. } => "too_large",
            Error::MethodNotAllowed { .. } => "method_not_allowed",
            Error::Unsupported { .. } => "unsupported",
            Error::Unauthorized => "unauthorized",
            Error::InvalidToken { .. } => "invalid_token",
            Error::AuthNotConfigured { .. } => "auth_not_configured",
            Error::Forbidden { .. } => "forbidden",
            Error::MemoryMismatch { .. } => "memory_mismatch",
            Error::Upstream { .. } => "model_failed",
            Error::UpstreamBusy { .. } => "model_busy",
            Error::Unavailable { .. } => "unavailable",
            Error::UpstreamTimeout { .. } => "model_timeout",
            Error::UpstreamDeadline { .. } => "model_deadline",
            Error::Backend { .. } => "internal_error",
        }
    }

    /// The `detail` text a client sees. Backend reasons are not exposed.
    pub fn client_detail(&self) -> String {
        match self {
            Error::Backend { .. } => "Internal server error".to_string(),
            other => other.to_string(),
        }
    }
}

/// What a 404 for an unknown thread usually means, and what to pass instead.
pub const THREAD_NOT_FOUND_HELP: &str = "This usually means the client's thread id is not stable (a new id per request, per process or per page load) or the thread was deleted: pass the thread_id the thread was created with (store it per user or session), or send if_not_exists: \"create\" to start a thread under your own id.";

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadRequest { reason } => write!(f, "Malformed request body: {reason}"),
            Error::Unauthorized => write!(
                f,
                "Missing or invalid credentials (send x-api-key, or Authorization: Bearer <JWT>)"
            ),
            Error::InvalidToken { reason } => write!(f, "Invalid bearer token: {reason}"),
            Error::MemoryMismatch { reason } => write!(f, "Memory mismatch: {reason}"),
            Error::Forbidden { reason } => write!(f, "Forbidden: {reason}"),
            Error::AuthNotConfigured { reason } => {
                write!(f, "This deployment refuses thread data: {reason}")
            }
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
            Error::MethodNotAllowed { method } => {
                write!(f, "Method {method} is not allowed on this path")
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
            Error::Backend { reason } => write!(f, "storage backend failed: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

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
        Error::backend(format_args!("stored JSON could not be decoded: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_details() {
        let nf = Error::thread_not_found("abc");
        assert_eq!(nf.status(), 404);
        assert!(nf
            .client_detail()
            .starts_with("Thread 'abc' not found. This usually means"));
        let be = Error::backend("disk on fire");
        assert_eq!(be.status(), 500);
        assert_eq!(be.client_detail(), "Internal server error");
        let inv = Error::invalid("input.messages", "expected a list");
        assert_eq!(inv.status(), 422);
        assert!(inv.client_detail().contains("input.messages"));
    }
}
