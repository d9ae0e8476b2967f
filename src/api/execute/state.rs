//! A thread's state: read at the head or a checkpoint, updated without a run, and its
//! history.

use serde_json::{json, Map, Value};

use super::{thread_for_write, with_head};
use crate::api::wire::checkpoint_ref;
use crate::api::{state_json, HttpResponse, IfNotExists, IndexUpdate};
use crate::chat::{ChatModel, Engine};
use crate::checkpoint::{CheckpointId, Checkpointer, ListQuery};
use crate::error::Result;
use crate::limits::LIST_LIMIT_MAX;
use crate::message::MessageOp;
use crate::thread::ThreadId;

/// `GetState`: the state at `checkpoint_id`, or at the head (with the head headers).
pub(super) async fn get_state<C: Checkpointer>(
    store: &C,
    thread_id: &ThreadId,
    checkpoint_id: Option<CheckpointId>,
) -> Result<HttpResponse> {
    store.get_thread(thread_id).await?;
    let at_head = checkpoint_id.is_none();
    let snapshot = match checkpoint_id {
        Some(id) => Some(store.get(thread_id, &id).await?),
        None => store.latest(thread_id).await?,
    };
    let parent = snapshot
        .as_ref()
        .and_then(|s| s.checkpoint.parent_id.clone());
    let response = HttpResponse::ok(state_json(thread_id, snapshot.as_ref(), parent.as_ref()));
    Ok(match &snapshot {
        Some(s) if at_head => with_head(response, &s.checkpoint),
        _ => response,
    })
}

/// `UpdateState`: `ops` applied as a checkpoint of their own, no model asked.
pub(super) async fn update_state<C: Checkpointer, M: ChatModel>(
    engine: &Engine<'_, C, M>,
    thread_id: &ThreadId,
    (ops, checkpoint_id): (Vec<MessageOp>, Option<CheckpointId>),
    if_not_exists: IfNotExists,
    owner: Option<&str>,
) -> Result<HttpResponse> {
    let mut record = thread_for_write(engine, thread_id, if_not_exists, owner).await?;
    let checkpoint = engine
        .update_state(thread_id, ops, checkpoint_id.as_ref())
        .await?;
    record.updated_at_ms = checkpoint.created_at_ms;
    let response = HttpResponse::ok(json!({
        "checkpoint": checkpoint_ref(thread_id, &checkpoint.checkpoint_id),
    }));
    Ok(with_head(response, &checkpoint).with_index(IndexUpdate::Upsert { record }))
}

/// `History`: the states of the thread's checkpoints, newest first, filtered.
pub(super) async fn history<C: Checkpointer>(
    store: &C,
    thread_id: &ThreadId,
    (limit, before): (usize, Option<CheckpointId>),
    metadata: Map<String, Value>,
    checkpoint_id: Option<CheckpointId>,
) -> Result<HttpResponse> {
    store.get_thread(thread_id).await?;
    if let Some(before) = &before {
        // An unknown `before` is an error, not an empty or a whole history.
        store.window(thread_id, Some(before), 0, &[]).await?;
    }
    // With a metadata filter, read more records than asked and filter them.
    let query = ListQuery {
        before,
        limit: if metadata.is_empty() && checkpoint_id.is_none() {
            limit
        } else {
            LIST_LIMIT_MAX
        },
    };
    let ids: Vec<CheckpointId> = store
        .list(thread_id, &query)
        .await?
        .into_iter()
        .filter(|r| {
            checkpoint_id
                .as_ref()
                .is_none_or(|id| r.checkpoint_id == *id)
        })
        .filter(|r| metadata.iter().all(|(k, v)| r.metadata.get(k) == Some(v)))
        .take(limit)
        .map(|r| r.checkpoint_id)
        .collect();
    // Every entry's state, built in one pass where the store can.
    let states = store
        .states(thread_id, &ids)
        .await?
        .iter()
        .map(|snapshot| {
            let parent = snapshot.checkpoint.parent_id.as_ref();
            state_json(thread_id, Some(snapshot), parent)
        })
        .collect();
    Ok(HttpResponse::ok(Value::Array(states)))
}
