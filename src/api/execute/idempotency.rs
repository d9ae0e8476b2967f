//! `Idempotency-Key`: a retried run finds the run its key names, within a window of the
//! thread's newest checkpoints and a time to live.

use serde_json::Value;

use crate::api::ENQUEUE_MAX_WAITING;
use crate::checkpoint::{CheckpointId, Checkpointer, ListQuery};
use crate::error::{Error, Result};
use crate::thread::ThreadId;

/// The checkpoint metadata key holding a run's `Idempotency-Key`.
pub const IDEMPOTENCY_KEY: &str = "idempotency_key";

/// The checkpoint metadata key holding the digest of the keyed run's request body.
pub const IDEMPOTENCY_BODY: &str = "idempotency_body";

/// How many of a thread's newest checkpoints a retry's key is looked for in: every run
/// that can be waiting in the thread's line when a retry arrives (two checkpoints each),
/// and a margin. A retry outrun by more turns than that is a new run.
pub const IDEMPOTENCY_WINDOW: usize = 2 * (ENQUEUE_MAX_WAITING + 16);

/// How long an `Idempotency-Key` names its run, in ms (a day, as payment APIs keep
/// theirs): a retry comes within minutes; a key reused later starts a new run.
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 3600 * 1000;

/// What an `Idempotency-Key` names.
pub(super) enum Keyed {
    /// Nothing yet: a new run.
    New,
    /// A run whose input is stored and whose reply is this checkpoint.
    Answered(CheckpointId),
    /// A run whose input is stored, unanswered, and still the head.
    Unanswered,
}

/// Looks for the run that carried `key` (with a request body of digest `body`) among the
/// thread's newest checkpoints younger than [`IDEMPOTENCY_TTL_MS`].
pub(super) async fn find_keyed_run<C: Checkpointer>(
    store: &C,
    thread_id: &ThreadId,
    (key, body): (&str, Option<&str>),
    now_ms: i64,
) -> Result<Keyed> {
    let records = store
        .list(
            thread_id,
            &ListQuery {
                before: None,
                limit: IDEMPOTENCY_WINDOW,
            },
        )
        .await?;
    let Some(input) = records.iter().find(|r| {
        r.metadata.get(IDEMPOTENCY_KEY).and_then(Value::as_str) == Some(key)
            && r.metadata.get("source").and_then(Value::as_str) != Some("loop")
            && now_ms - r.created_at_ms <= IDEMPOTENCY_TTL_MS
    }) else {
        return Ok(Keyed::New);
    };
    let stored_body = input.metadata.get(IDEMPOTENCY_BODY).and_then(Value::as_str);
    if stored_body.is_some() && body.is_some() && stored_body != body {
        return Err(Error::invalid(
            "Idempotency-Key",
            format!("{key:?} was sent before with a different request body; a new request needs a new key"),
        ));
    }
    if let Some(reply) = records.iter().find(|r| {
        r.parent_id.as_ref() == Some(&input.checkpoint_id)
            && r.metadata.get("source").and_then(Value::as_str) == Some("loop")
    }) {
        return Ok(Keyed::Answered(reply.checkpoint_id.clone()));
    }
    if records.first().map(|head| &head.checkpoint_id) == Some(&input.checkpoint_id) {
        return Ok(Keyed::Unanswered);
    }
    Err(Error::Conflict {
        kind: crate::error::ConflictKind::IdempotencyKeySpent,
        reason: format!(
            "the run with Idempotency-Key {key:?} failed and the thread has moved on since; send the turn again with a new key"
        ),
    })
}
