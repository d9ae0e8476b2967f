//! `Idempotency-Key`: a retried run finds the run its key names for
//! [`IDEMPOTENCY_TTL_MS`], however many turns the thread ran since: an answered run's key
//! is kept in the thread object's key table (`checkpoint::keys`); a run not answered yet
//! is found in the thread's newest checkpoints, whose input carries the key.

use serde_json::Value;

use crate::api::ENQUEUE_MAX_WAITING;
use crate::checkpoint::keys::{IdempotencyKeys, KeyedReply};
use crate::checkpoint::{CheckpointId, Checkpointer, ListQuery};
use crate::error::{Error, Result};
use crate::thread::ThreadId;

pub use crate::limits::IDEMPOTENCY_TTL_MS;

/// The checkpoint metadata key holding a run's `Idempotency-Key`.
pub const IDEMPOTENCY_KEY: &str = "idempotency_key";

/// The checkpoint metadata key holding the digest of the keyed run's request body.
pub const IDEMPOTENCY_BODY: &str = "idempotency_body";

/// How many of a thread's newest checkpoints a key not in the key table is looked for
/// in: every run that can be waiting in the thread's line when a retry arrives (two
/// checkpoints each), and a margin. It finds a keyed run not answered yet (its input is
/// the head, or a failed one the thread moved on from), and every keyed run on a backend
/// without a key table.
pub const IDEMPOTENCY_WINDOW: usize = 2 * (ENQUEUE_MAX_WAITING + 16);

/// What an `Idempotency-Key` names.
pub(super) enum Keyed {
    /// Nothing yet: a new run.
    New,
    /// A run whose input is stored and whose reply is this checkpoint.
    Answered(CheckpointId),
    /// A run whose input is stored, unanswered, and still the head.
    Unanswered,
}

/// Looks for the run that carried `key` (with a request body of digest `body`): in the
/// key table, then among the thread's newest checkpoints younger than
/// [`IDEMPOTENCY_TTL_MS`].
pub(super) async fn find_keyed_run<C: Checkpointer>(
    (store, keys): (&C, Option<&dyn IdempotencyKeys>),
    thread_id: &ThreadId,
    (key, body): (&str, Option<&str>),
    now_ms: i64,
) -> Result<Keyed> {
    if let Some(Some(found)) = keys.map(|k| k.find(thread_id, key, now_ms)).transpose()? {
        refuse_another_body(key, found.body.as_deref(), body)?;
        return Ok(Keyed::Answered(found.reply_id));
    }
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
    refuse_another_body(key, stored_body, body)?;
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

/// A key sent before with another request body is a client bug: 422, nothing stored.
fn refuse_another_body(key: &str, stored: Option<&str>, body: Option<&str>) -> Result<()> {
    if stored.is_some() && body.is_some() && stored != body {
        return Err(Error::invalid(
            "Idempotency-Key",
            format!("{key:?} was sent before with a different request body; a new request needs a new key"),
        ));
    }
    Ok(())
}

/// Records that the run `key` (with body digest `body`) was answered by `reply`, so a
/// retry finds it for [`IDEMPOTENCY_TTL_MS`].
pub(super) fn remember_keyed_reply(
    keys: Option<&dyn IdempotencyKeys>,
    thread_id: &ThreadId,
    (key, body): (&str, Option<&str>),
    reply_id: &CheckpointId,
    now_ms: i64,
) -> Result<()> {
    let Some(keys) = keys else {
        return Ok(());
    };
    keys.remember(
        thread_id,
        key,
        &KeyedReply {
            body: body.map(str::to_string),
            reply_id: reply_id.clone(),
            created_at_ms: now_ms,
        },
    )
}
