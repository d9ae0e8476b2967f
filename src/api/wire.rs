//! JSON shapes of the LangGraph Platform API (`Thread`, `ThreadState`, values).

use serde_json::{json, Value};

use super::{ASSISTANT_ID, ASSISTANT_UUID};
use crate::chat::ReplyEnd;
use crate::checkpoint::{CheckpointId, CheckpointRecord, Snapshot};
use crate::message::Message;
use crate::runtime::iso8601;
use crate::thread::{ThreadId, ThreadRecord};

/// State values: `{"messages": [...]}`.
pub fn values_json(messages: &[Message]) -> Value {
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

/// A checkpoint reference `{thread_id, checkpoint_ns, checkpoint_id, checkpoint_map}`.
pub(crate) fn checkpoint_ref(thread_id: &ThreadId, checkpoint_id: &CheckpointId) -> Value {
    json!({
        "thread_id": thread_id.as_str(),
        "checkpoint_ns": "",
        "checkpoint_id": checkpoint_id.as_str(),
        "checkpoint_map": null,
    })
}

/// The run that wrote `checkpoint`. A run is named by the checkpoint holding its input
/// (source `input`, or `fork` on a branch), and its reply follows that checkpoint; so the
/// id is not stored twice per turn (storage per turn is a budget, see README).
pub(crate) fn run_id_of(checkpoint: &CheckpointRecord) -> Option<CheckpointId> {
    let named = checkpoint.metadata.get("run_id").and_then(Value::as_str);
    if let Some(id) = named.and_then(|id| CheckpointId::parse(id).ok()) {
        return Some(id);
    }
    match checkpoint.metadata.get("source").and_then(Value::as_str) {
        Some("input") | Some("fork") => Some(checkpoint.checkpoint_id.clone()),
        Some("loop") => checkpoint.parent_id.clone(),
        _ => None,
    }
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
            let mut metadata = cp.metadata.clone();
            for (key, value) in [
                ("graph_id", ASSISTANT_ID),
                ("assistant_id", ASSISTANT_UUID),
                ("thread_id", thread_id.as_str()),
            ] {
                metadata.entry(key).or_insert_with(|| Value::from(value));
            }
            if let Some(run_id) = run_id_of(cp) {
                metadata
                    .entry("run_id")
                    .or_insert_with(|| Value::from(run_id.as_str()));
            }
            let (next, tasks) = pending_node(snap);
            json!({
                "values": values_json(&snap.messages),
                "next": next,
                "tasks": tasks,
                "checkpoint": checkpoint_ref(thread_id, &cp.checkpoint_id),
                "parent_checkpoint": parent.map(|p| checkpoint_ref(thread_id, p)),
                "metadata": metadata,
                "created_at": iso8601(cp.created_at_ms),
                "checkpoint_id": cp.checkpoint_id.as_str(),
                "parent_checkpoint_id": parent.map(CheckpointId::as_str),
                "interrupts": [],
            })
        }
    }
}

/// What runs next from a checkpoint, as LangGraph's `next` and `tasks`: our one node,
/// `agent`, when the checkpoint holds an input the model has not answered (a run stopped
/// by `interrupt_before`, a failed model call, or a run under way); nothing otherwise.
fn pending_node(snap: &Snapshot) -> (Value, Value) {
    let source = snap
        .checkpoint
        .metadata
        .get("source")
        .and_then(Value::as_str);
    let unanswered = snap
        .messages
        .last()
        .is_some_and(|m| m.kind != crate::message::MessageType::Ai);
    if !(matches!(source, Some("input") | Some("fork")) && unanswered) {
        return (json!([]), json!([]));
    }
    // A stable task id per checkpoint, shaped as a UUID like LangGraph's.
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(format!("agent:{}", snap.checkpoint.checkpoint_id).as_bytes());
    let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
    let id = format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    );
    let task = json!({
        "id": id, "name": "agent", "path": ["__pregel_pull", "agent"], "error": null,
        "interrupts": [], "checkpoint": null, "state": null, "result": null,
    });
    (json!(["agent"]), json!([task]))
}

/// One streamed piece of the reply, as an `AIMessageChunk` whose id is the final AI
/// message's id (chat UIs merge chunks by id and drop chunks without one). The last
/// chunk has no content and carries how the reply ended.
pub(crate) fn message_chunk_json(message_id: &str, content: &str, end: Option<&ReplyEnd>) -> Value {
    let (metadata, usage) = match end {
        Some(end) => (
            json!({"finish_reason": end.finish_reason.as_deref().unwrap_or("stop")}),
            end.usage.map_or(Value::Null, |u| {
                json!({
                    "input_tokens": u.input_tokens,
                    "output_tokens": u.output_tokens,
                    "total_tokens": u.input_tokens + u.output_tokens,
                })
            }),
        ),
        None => (json!({}), Value::Null),
    };
    json!({
        "content": content,
        "additional_kwargs": {},
        "response_metadata": metadata,
        "type": "AIMessageChunk",
        "name": null,
        "id": message_id,
        "tool_calls": [],
        "invalid_tool_calls": [],
        "tool_call_chunks": [],
        "usage_metadata": usage,
    })
}
