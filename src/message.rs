//! Messages and the `add_messages` reducer.
//!
//! Input arrives in three dialects, all accepted: `{role, content}` (OpenAI style, SDK
//! docs), `{type, content}` (`useStream`), and full LangChain dicts that already carry an
//! `id` (`RemoteGraph`), plus LangChain's serialized `{"lc": 1, "type": "constructor"}`
//! form. Output is always the LangChain dict `{type, content, id, ...}`.
//!
//! The reducer follows LangGraph's `add_messages`: a message whose id is new is appended;
//! one whose id exists replaces it in place; `{"type": "remove", "id": ...}` removes that
//! message (an unknown id is an error, as in LangGraph); removing the id
//! [`REMOVE_ALL_MESSAGES`] clears the list.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
mod decode;
mod parse;

pub use parse::{parse_message, parse_messages};

/// The id that, removed, clears the whole message list (LangGraph's `REMOVE_ALL_MESSAGES`).
pub const REMOVE_ALL_MESSAGES: &str = "__remove_all__";

/// Longest accepted message id.
pub const MESSAGE_ID_MAX_LEN: usize = 256;

/// Who a message is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    /// The user.
    Human,
    /// The assistant (the model).
    Ai,
    /// Instructions to the model.
    System,
    /// The result of a tool call.
    Tool,
}

impl MessageType {
    /// The LangChain `type` name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Human => "human",
            MessageType::Ai => "ai",
            MessageType::System => "system",
            MessageType::Tool => "tool",
        }
    }
}

/// One message of a conversation. `Deserialize` is written out in `decode.rs`, to the
/// same wire shape as these attributes give it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// Unique within the thread; assigned by the server when the client sends none.
    pub id: String,
    /// Who it is from.
    #[serde(rename = "type")]
    pub kind: MessageType,
    /// A string, or a list of content parts (`{"type": "text", "text": ...}`, images, ...).
    pub content: Value,
    /// Optional author name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For tool messages: the call this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Every other field the client sent (`additional_kwargs`, `tool_calls`, ...), kept
    /// as is and returned unchanged.
    #[serde(default, flatten)]
    pub extra: Map<String, Value>,
}

impl Message {
    /// A message of `kind` with string content.
    pub fn new(kind: MessageType, id: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            id: id.into(),
            kind,
            content: Value::String(content.into()),
            name: None,
            tool_call_id: None,
            extra: Map::new(),
        }
    }

    /// The message's text: the string content, or its text parts joined by spaces.
    pub fn text(&self) -> String {
        match &self.content {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    Value::String(s) => Some(s.as_str()),
                    Value::Object(o) => o.get("text").and_then(Value::as_str),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        }
    }

    /// The LangChain dict clients receive: `{content, additional_kwargs,
    /// response_metadata, type, name, id, ...}`; AI messages also carry `tool_calls`,
    /// `invalid_tool_calls` and `usage_metadata`, as LangGraph's server sends them.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("content".into(), self.content.clone());
        out.insert("additional_kwargs".into(), json!({}));
        out.insert("response_metadata".into(), json!({}));
        out.insert("type".into(), Value::from(self.kind.as_str()));
        out.insert(
            "name".into(),
            self.name.clone().map_or(Value::Null, Value::String),
        );
        out.insert("id".into(), Value::String(self.id.clone()));
        match self.kind {
            MessageType::Ai => {
                out.insert("tool_calls".into(), json!([]));
                out.insert("invalid_tool_calls".into(), json!([]));
                out.insert("usage_metadata".into(), Value::Null);
            }
            MessageType::Tool => {
                out.insert(
                    "tool_call_id".into(),
                    self.tool_call_id.clone().map_or(Value::Null, Value::String),
                );
            }
            MessageType::Human | MessageType::System => {}
        }
        for (key, value) in &self.extra {
            out.insert(key.clone(), value.clone());
        }
        Value::Object(out)
    }

    /// Size of the message as stored, in bytes.
    pub fn stored_size(&self) -> usize {
        serde_json::to_string(self).map_or(usize::MAX, |s| s.len())
    }
}

/// One change to a thread's message list, as a run or a state update sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MessageOp {
    /// Append the message, or replace the one with the same id in place.
    Upsert {
        /// The message.
        message: Message,
    },
    /// Remove the message with this id.
    Remove {
        /// The id to remove.
        id: String,
    },
    /// Remove every message.
    RemoveAll,
}

impl MessageOp {
    /// The message id this op concerns, if any.
    pub fn message_id(&self) -> Option<&str> {
        match self {
            MessageOp::Upsert { message } => Some(&message.id),
            MessageOp::Remove { id } => Some(id),
            MessageOp::RemoveAll => None,
        }
    }

    /// The message this op writes, if any.
    pub fn message(&self) -> Option<&Message> {
        match self {
            MessageOp::Upsert { message } => Some(message),
            _ => None,
        }
    }
}

/// Applies `ops` to `state` with `add_messages` semantics and returns the new list.
///
/// Fails, changing nothing the caller can see, when an op removes an id that is not in
/// the list. Runs in time linear in `state.len() + ops.len()`.
pub fn add_messages<'a>(
    state: Vec<Message>,
    ops: impl IntoIterator<Item = &'a MessageOp>,
) -> Result<Vec<Message>> {
    let mut slots: Vec<Option<Message>> = state.into_iter().map(Some).collect();
    let mut index: HashMap<String, usize> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, m)| m.as_ref().map(|m| (m.id.clone(), i)))
        .collect();
    for op in ops {
        match op {
            MessageOp::Upsert { message } => match index.get(&message.id) {
                Some(&i) => slots[i] = Some(message.clone()),
                None => {
                    index.insert(message.id.clone(), slots.len());
                    slots.push(Some(message.clone()));
                }
            },
            MessageOp::Remove { id } => match index.remove(id) {
                Some(i) => slots[i] = None,
                None => {
                    return Err(Error::invalid(
                        "messages",
                        format!("cannot remove message '{id}': no message with that id"),
                    ))
                }
            },
            MessageOp::RemoveAll => {
                slots.clear();
                index.clear();
            }
        }
    }
    Ok(slots.into_iter().flatten().collect())
}

/// The JSON type of `value`, for error messages ("got a number").
pub fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MESSAGE_MAX_BYTES;
    use crate::runtime::SeededEntropy;

    fn ops(value: Value) -> Vec<MessageOp> {
        parse_messages(&value, "input.messages", &SeededEntropy::new(1)).unwrap()
    }

    fn upsert(kind: MessageType, id: &str, text: &str) -> MessageOp {
        MessageOp::Upsert {
            message: Message::new(kind, id, text),
        }
    }

    #[test]
    fn three_dialects_parse_to_the_same_message() {
        let a = ops(json!([{"role": "user", "content": "hi", "id": "m1"}]));
        let b = ops(json!([{"type": "human", "content": "hi", "id": "m1"}]));
        let c = ops(json!([{"type": "human", "content": "hi", "id": "m1",
            "additional_kwargs": {}, "response_metadata": {}, "name": null}]));
        let d = ops(json!([{"lc": 1, "type": "constructor",
            "id": ["langchain", "schema", "messages", "HumanMessage"],
            "kwargs": {"content": "hi", "id": "m1"}}]));
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a, d);
    }

    #[test]
    fn ids_are_assigned_when_missing() {
        let parsed =
            ops(json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]));
        let ids: Vec<_> = parsed.iter().filter_map(MessageOp::message_id).collect();
        assert_eq!(ids.len(), 2);
        assert_ne!(ids[0], ids[1]);
        assert_eq!(ids[0].len(), 36);
    }

    #[test]
    fn output_has_langchain_shape() {
        let m = Message::new(MessageType::Ai, "x", "hello");
        let out = m.to_json();
        assert_eq!(out["type"], "ai");
        assert_eq!(out["id"], "x");
        assert_eq!(out["content"], "hello");
        assert_eq!(out["tool_calls"], json!([]));
        assert_eq!(out["additional_kwargs"], json!({}));
        assert!(out["name"].is_null());
    }

    #[test]
    fn extra_fields_round_trip() {
        let parsed = ops(json!([{"type": "ai", "content": "", "id": "a1",
            "tool_calls": [{"name": "search", "args": {}, "id": "c1"}]}]));
        let out = parsed[0].message().unwrap().to_json();
        assert_eq!(out["tool_calls"][0]["name"], "search");
    }

    #[test]
    fn reducer_appends_replaces_and_removes() {
        let state = add_messages(
            vec![],
            &[
                upsert(MessageType::Human, "1", "a"),
                upsert(MessageType::Ai, "2", "b"),
                upsert(MessageType::Human, "3", "c"),
            ],
        )
        .unwrap();
        let state = add_messages(state, &[upsert(MessageType::Ai, "2", "B")]).unwrap();
        assert_eq!(
            state.iter().map(Message::text).collect::<Vec<_>>(),
            ["a", "B", "c"]
        );
        let state = add_messages(state, &[MessageOp::Remove { id: "1".into() }]).unwrap();
        assert_eq!(
            state.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            ["2", "3"]
        );
        // Removed then re-added: goes to the end.
        let state = add_messages(
            state,
            &[
                MessageOp::Remove { id: "2".into() },
                upsert(MessageType::Ai, "2", "again"),
            ],
        )
        .unwrap();
        assert_eq!(
            state.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            ["3", "2"]
        );
        let cleared = add_messages(
            state,
            &[MessageOp::RemoveAll, upsert(MessageType::Human, "9", "z")],
        )
        .unwrap();
        assert_eq!(cleared.len(), 1);
        assert_eq!(cleared[0].id, "9");
    }

    #[test]
    fn removing_an_unknown_id_fails() {
        let err = add_messages(vec![], &[MessageOp::Remove { id: "nope".into() }]).unwrap_err();
        assert!(err.to_string().contains("nope"));
    }

    #[test]
    fn remove_dialect() {
        assert_eq!(
            ops(json!([{"type": "remove", "id": "x"}])),
            vec![MessageOp::Remove { id: "x".into() }]
        );
        assert_eq!(
            ops(json!([{"type": "remove", "id": REMOVE_ALL_MESSAGES}])),
            vec![MessageOp::RemoveAll]
        );
    }

    #[test]
    fn bad_messages_name_the_field() {
        let e = SeededEntropy::new(1);
        let cases = [
            (json!(5), "input.messages"),
            (json!([5]), "input.messages[0]"),
            (json!([{"content": "x"}]), "input.messages[0]"),
            (json!([{"role": "user"}]), "input.messages[0].content"),
            (
                json!([{"role": "user", "content": 3}]),
                "input.messages[0].content",
            ),
            (
                json!([{"role": "wizard", "content": "x"}]),
                "input.messages[0]",
            ),
            (
                json!([{"role": "user", "content": "x", "id": 7}]),
                "input.messages[0].id",
            ),
            (
                json!([{"role": "tool", "content": "x"}]),
                "input.messages[0].tool_call_id",
            ),
        ];
        for (value, field) in cases {
            let err = parse_messages(&value, "input.messages", &e).unwrap_err();
            match &err {
                Error::InvalidInput { field: f, .. } => assert_eq!(f, field, "{value}"),
                other => panic!("{value}: {other:?}"),
            }
        }
    }

    #[test]
    fn oversized_message_is_rejected() {
        let big = "x".repeat(MESSAGE_MAX_BYTES + 1);
        let err = parse_messages(
            &json!([{"role": "user", "content": big}]),
            "input.messages",
            &SeededEntropy::new(1),
        )
        .unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }), "{err:?}");
    }
}
