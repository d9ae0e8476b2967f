//! Reading input messages in every accepted dialect (see [`crate::message`]), each
//! error naming the field.

use serde_json::{Map, Value};

use super::{
    json_type_name, Message, MessageOp, MessageType, MESSAGE_ID_MAX_LEN, REMOVE_ALL_MESSAGES,
};
use crate::error::{Error, Result};
use crate::limits::MESSAGE_MAX_BYTES;
use crate::runtime::{uuid_v4, Entropy};

/// Reads a list of input messages in any accepted dialect.
///
/// `field` names the list in error messages (e.g. `input.messages`). Messages without an
/// id get a random one from `entropy`.
pub fn parse_messages(value: &Value, field: &str, entropy: &dyn Entropy) -> Result<Vec<MessageOp>> {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        // A single message dict or string is accepted as a list of one, as LangGraph does.
        Value::Object(_) | Value::String(_) => vec![value],
        other => {
            return Err(Error::invalid(
                field,
                format!("expected a list of messages, got {}", json_type_name(other)),
            ))
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_message(item, &format!("{field}[{i}]"), entropy))
        .collect()
}

/// Reads one input message; see [`parse_messages`].
pub fn parse_message(value: &Value, field: &str, entropy: &dyn Entropy) -> Result<MessageOp> {
    let obj = match value {
        Value::String(text) => {
            let message = Message::new(MessageType::Human, uuid_v4(entropy), text.clone());
            return Ok(MessageOp::Upsert { message });
        }
        Value::Object(obj) => obj,
        other => {
            return Err(Error::invalid(
                field,
                format!(
                    "expected a message object like {{\"role\": \"user\", \"content\": \"...\"}}, got {}",
                    json_type_name(other)
                ),
            ))
        }
    };
    if let Some(kwargs) = serialized_kwargs(obj, field)? {
        return parse_message(&Value::Object(kwargs), field, entropy);
    }
    let kind_raw = kind_name(obj, field)?;
    let id = message_id(obj, field)?;
    let kind = match parse_kind(kind_raw, field)? {
        Kind::Message(kind) => kind,
        Kind::Remove => return removal(id, field),
    };
    let content = message_content(obj, field)?;
    let name = optional_string(obj, "name", field)?;
    let tool_call_id = optional_string(obj, "tool_call_id", field)?;
    if kind == MessageType::Tool && tool_call_id.is_none() {
        return Err(Error::invalid(
            format!("{field}.tool_call_id"),
            "is required for a tool message",
        ));
    }
    let message = Message {
        id: id.unwrap_or_else(|| uuid_v4(entropy)),
        kind,
        content,
        name,
        tool_call_id,
        extra: extra_fields(obj),
    };
    let size = message.stored_size();
    if size > MESSAGE_MAX_BYTES {
        return Err(Error::TooLarge {
            what: format!("`{field}` (bytes)"),
            size,
            limit: MESSAGE_MAX_BYTES,
        });
    }
    Ok(MessageOp::Upsert { message })
}

/// LangChain's serialized form, `{"lc": 1, "type": "constructor", "id": [...,
/// "HumanMessage"], "kwargs": {...}}`: its kwargs, typed by the class name. `None` for
/// any other form.
fn serialized_kwargs(obj: &Map<String, Value>, field: &str) -> Result<Option<Map<String, Value>>> {
    if obj.get("lc").is_none() || obj.get("type").and_then(Value::as_str) != Some("constructor") {
        return Ok(None);
    }
    let class = obj
        .get("id")
        .and_then(Value::as_array)
        .and_then(|path| path.last())
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut kwargs = match obj.get("kwargs") {
        Some(Value::Object(kwargs)) => kwargs.clone(),
        _ => {
            return Err(Error::invalid(
                format!("{field}.kwargs"),
                "is required for a serialized LangChain message",
            ))
        }
    };
    kwargs.insert("type".into(), Value::String(class.to_string()));
    Ok(Some(kwargs))
}

/// The message's `type`, else its `role`, as written.
fn kind_name<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str> {
    match (obj.get("type"), obj.get("role")) {
        (Some(Value::String(t)), _) => Ok(t.as_str()),
        (None, Some(Value::String(r))) => Ok(r.as_str()),
        (Some(other), _) | (None, Some(other)) => Err(Error::invalid(
            field,
            format!(
                "`type`/`role` must be a string, got {}",
                json_type_name(other)
            ),
        )),
        (None, None) => Err(Error::invalid(
            field,
            "needs a `role` (user, assistant, system, tool) or a `type` (human, ai, system, tool)",
        )),
    }
}

/// The message's own `id`, if it has one.
fn message_id(obj: &Map<String, Value>, field: &str) -> Result<Option<String>> {
    match obj.get("id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) if !id.is_empty() && id.len() <= MESSAGE_ID_MAX_LEN => {
            Ok(Some(id.clone()))
        }
        Some(Value::String(_)) => Err(Error::invalid(
            format!("{field}.id"),
            format!("must be 1 to {MESSAGE_ID_MAX_LEN} characters"),
        )),
        Some(other) => Err(Error::invalid(
            format!("{field}.id"),
            format!("must be a string, got {}", json_type_name(other)),
        )),
    }
}

/// What a message's type names: a message, or the removal of one.
enum Kind {
    Message(MessageType),
    Remove,
}

/// The type of a message in any dialect's spelling (`user`, `human`, `HumanMessage`, ...).
fn parse_kind(raw: &str, field: &str) -> Result<Kind> {
    Ok(Kind::Message(match raw.to_ascii_lowercase().as_str() {
        "human" | "user" | "humanmessage" | "humanmessagechunk" => MessageType::Human,
        "ai" | "assistant" | "aimessage" | "aimessagechunk" => MessageType::Ai,
        "system" | "developer" | "systemmessage" | "systemmessagechunk" => MessageType::System,
        "tool" | "toolmessage" | "toolmessagechunk" => MessageType::Tool,
        "remove" | "removemessage" => return Ok(Kind::Remove),
        _ => {
            return Err(Error::invalid(
                field,
                format!(
                    "unknown message type {raw:?}; expected one of human/user, ai/assistant, system, tool, remove"
                ),
            ))
        }
    }))
}

/// A `RemoveMessage`: of the message `id`, or of all of them.
fn removal(id: Option<String>, field: &str) -> Result<MessageOp> {
    match id {
        Some(id) if id == REMOVE_ALL_MESSAGES => Ok(MessageOp::RemoveAll),
        Some(id) => Ok(MessageOp::Remove { id }),
        None => Err(Error::invalid(
            format!("{field}.id"),
            "is required to remove a message",
        )),
    }
}

/// The message's `content`: a string or a list of content parts.
fn message_content(obj: &Map<String, Value>, field: &str) -> Result<Value> {
    match obj.get("content") {
        Some(content @ (Value::String(_) | Value::Array(_))) => Ok(content.clone()),
        Some(other) => Err(Error::invalid(
            format!("{field}.content"),
            format!(
                "must be a string or a list of content parts, got {}",
                json_type_name(other)
            ),
        )),
        None => Err(Error::invalid(format!("{field}.content"), "is required")),
    }
}

/// The fields kept beside the known ones (`tool_calls`, `additional_kwargs`, ...).
fn extra_fields(obj: &Map<String, Value>) -> Map<String, Value> {
    let mut extra = Map::new();
    for (key, value) in obj {
        let known = matches!(
            key.as_str(),
            "type" | "role" | "id" | "content" | "name" | "tool_call_id"
        );
        // Defaults that `to_json` adds back anyway are not worth storing.
        let empty_default = matches!(
            (key.as_str(), value),
            ("additional_kwargs" | "response_metadata", Value::Object(o)) if o.is_empty()
        ) || matches!(
            (key.as_str(), value),
            ("tool_calls" | "invalid_tool_calls", Value::Array(a)) if a.is_empty()
        ) || matches!(
            (key.as_str(), value),
            (
                "usage_metadata" | "example",
                Value::Null | Value::Bool(false)
            )
        );
        if !known && !empty_default {
            extra.insert(key.clone(), value.clone());
        }
    }
    extra
}

fn optional_string(obj: &Map<String, Value>, key: &str, field: &str) -> Result<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Error::invalid(
            format!("{field}.{key}"),
            format!("must be a string, got {}", json_type_name(other)),
        )),
    }
}
