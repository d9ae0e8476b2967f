//! JSON shapes of the LangGraph Platform API (`Thread`, `ThreadState`, values).

use serde_json::{json, Value};

use crate::checkpoint::{CheckpointId, Snapshot};
use crate::message::Message;
use crate::runtime::iso8601;
use crate::thread::{ThreadId, ThreadRecord};

/// State values: `{"messages": [...]}`.
pub(crate) fn values_json(messages: &[Message]) -> Value {
    json!({ "messages": messages.iter().map(Message::to_json).collect::<Vec<_>>() })
}

/// A `Thread`: `values` is the head state, or `null` for a thread without checkpoints.
pub fn thread_json(record: &ThreadRecord, latest: Option<&Snapshot>) -> Value {
    let state_updated = latest.map_or(record.updated_at_ms, |s| s.checkpoint.created_at_ms);
    json!({
        "thread_id": record.thread_id.as_str(),
        "created_at": iso8601(record.created_at_ms),
        "updated_at": iso8601(record.updated_at_ms),
        "state_updated_at": iso8601(state_updated),
        "metadata": record.metadata,
        "status": record.status.as_str(),
        "config": {},
        "values": latest.map(|s| values_json(&s.messages)),
        "interrupts": {},
    })
}

fn checkpoint_ref(thread_id: &ThreadId, checkpoint_id: &CheckpointId) -> Value {
    json!({
        "thread_id": thread_id.as_str(),
        "checkpoint_ns": "",
        "checkpoint_id": checkpoint_id.as_str(),
        "checkpoint_map": null,
    })
}

/// A `ThreadState`. For a thread with no checkpoint, `checkpoint` is `null` (clients
/// such as `useStream` rely on that).
pub fn state_json(
    thread_id: &ThreadId,
    snapshot: Option<&Snapshot>,
    parent: Option<&CheckpointId>,
) -> Value {
    match snapshot {
        None => json!({
            "values": {},
            "next": [],
            "tasks": [],
            "checkpoint": null,
            "parent_checkpoint": null,
            "metadata": null,
            "created_at": null,
            "interrupts": [],
        }),
        Some(snap) => {
            let cp = &snap.checkpoint;
            json!({
                "values": values_json(&snap.messages),
                "next": [],
                "tasks": [],
                "checkpoint": checkpoint_ref(thread_id, &cp.checkpoint_id),
                "parent_checkpoint": parent.map(|p| checkpoint_ref(thread_id, p)),
                "metadata": cp.metadata,
                "created_at": iso8601(cp.created_at_ms),
                "checkpoint_id": cp.checkpoint_id.as_str(),
                "parent_checkpoint_id": parent.map(CheckpointId::as_str),
                "interrupts": [],
            })
        }
    }
}
