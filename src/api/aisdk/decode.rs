//! The AI SDK's request body (`id`, `messages` or `message`, `trigger`, `messageId`)
//! and its `UIMessage`s, read into the thread's messages without loss: a message that
//! is one plain text part is stored as text (what models and LangGraph clients read);
//! any other keeps its parts as they are (files, `data-*` parts, tool parts, parts this
//! server does not know), and its `metadata` in `additional_kwargs`.

use serde_json::{json, Map, Value};

use super::{ChatTurn, Trigger, TRANSCRIPT_MESSAGES_MAX};
use crate::error::{Error, Result};
use crate::limits::MESSAGE_MAX_BYTES;
use crate::message::{json_type_name, Message, MessageType, MESSAGE_ID_MAX_LEN};
use crate::runtime::{uuid_v4, Entropy};
use crate::thread::ThreadId;

/// A decoded `POST /api/chat` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatBody {
    /// `id`: the chat, which is the thread.
    pub thread_id: ThreadId,
    /// What the turn sends and asks.
    pub turn: ChatTurn,
}

/// Reads a `POST /api/chat` body: `id` (the thread), and either `messages` (the whole
/// transcript, the AI SDK's default body) or `message` (only the new one, the slim body
/// of `prepareSendMessagesRequest`); `trigger` and `messageId` as the AI SDK sends them.
/// Other keys (the app's own `body` fields) are ignored.
pub fn parse_chat_body(body: &Map<String, Value>, entropy: &dyn Entropy) -> Result<ChatBody> {
    let thread_id = match body.get("id") {
        Some(Value::String(id)) => ThreadId::parse(id).map_err(|err| rename_field(err, "id"))?,
        None | Some(Value::Null) => {
            return Err(Error::invalid(
                "id",
                "is required: the chat id, which names the thread (useChat sends it)",
            ))
        }
        Some(other) => {
            return Err(Error::invalid(
                "id",
                format!("must be a string, got {}", json_type_name(other)),
            ))
        }
    };
    let trigger = match body.get("trigger") {
        None | Some(Value::Null) => Trigger::Submit,
        Some(Value::String(t)) if t == "submit-message" => Trigger::Submit,
        Some(Value::String(t)) if t == "regenerate-message" => Trigger::Regenerate,
        Some(other) => {
            return Err(Error::invalid(
                "trigger",
                format!("must be \"submit-message\" or \"regenerate-message\", got {other}"),
            ))
        }
    };
    let message_id = match body.get("messageId") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if !id.is_empty() && id.len() <= MESSAGE_ID_MAX_LEN => {
            Some(id.clone())
        }
        Some(other) => {
            return Err(Error::invalid(
                "messageId",
                format!("must be a message id (1 to {MESSAGE_ID_MAX_LEN} characters), got {other}"),
            ))
        }
    };
    let (messages, whole) = sent_messages(body, entropy)?;
    if messages.is_empty() && trigger == Trigger::Submit {
        return Err(Error::invalid(
            "messages",
            "must hold at least one message to answer",
        ));
    }
    Ok(ChatBody {
        thread_id,
        turn: ChatTurn {
            messages,
            whole,
            trigger,
            message_id,
        },
    })
}

/// `messages` (whole) or `message` (slim), decoded; exactly one must be there.
fn sent_messages(body: &Map<String, Value>, entropy: &dyn Entropy) -> Result<(Vec<Message>, bool)> {
    match (body.get("messages"), body.get("message")) {
        (Some(_), Some(_)) => Err(Error::invalid(
            "messages",
            "send either `messages` (the whole transcript) or `message` (only the new one), not both",
        )),
        (Some(Value::Array(items)), None) => {
            if items.len() > TRANSCRIPT_MESSAGES_MAX {
                return Err(Error::TooLarge {
                    what: format!(
                        "messages in one transcript (send only the new one as `message` past {TRANSCRIPT_MESSAGES_MAX})"
                    ),
                    size: items.len(),
                    limit: TRANSCRIPT_MESSAGES_MAX,
                });
            }
            let messages = items
                .iter()
                .enumerate()
                .map(|(i, item)| ui_message(item, &format!("messages[{i}]"), entropy))
                .collect::<Result<Vec<_>>>()?;
            Ok((messages, true))
        }
        (Some(other), None) => Err(Error::invalid(
            "messages",
            format!("must be a list of UIMessages, got {}", json_type_name(other)),
        )),
        (None, Some(message)) => Ok((vec![ui_message(message, "message", entropy)?], false)),
        (None, None) => Err(Error::invalid(
            "messages",
            "is required: the transcript (`messages`) or the new message (`message`)",
        )),
    }
}

/// One `UIMessage` (`{id, role, parts, metadata?}`) as the thread stores it.
pub fn ui_message(value: &Value, field: &str, entropy: &dyn Entropy) -> Result<Message> {
    let Value::Object(obj) = value else {
        return Err(Error::invalid(
            field,
            format!(
                "must be a UIMessage object {{id, role, parts}}, got {}",
                json_type_name(value)
            ),
        ));
    };
    let id = match obj.get("id") {
        Some(Value::String(id)) if !id.is_empty() && id.len() <= MESSAGE_ID_MAX_LEN => id.clone(),
        // A message without an id (a hand-written body) gets one.
        None | Some(Value::Null) => uuid_v4(entropy),
        Some(other) => {
            return Err(Error::invalid(
                format!("{field}.id"),
                format!(
                    "must be a string of 1 to {MESSAGE_ID_MAX_LEN} characters, got {}",
                    json_type_name(other)
                ),
            ))
        }
    };
    let kind = match obj.get("role").and_then(Value::as_str) {
        Some("user") => MessageType::Human,
        Some("assistant") => MessageType::Ai,
        Some("system") => MessageType::System,
        _ => {
            return Err(Error::invalid(
                format!("{field}.role"),
                format!(
                    "must be \"user\", \"assistant\" or \"system\", got {}",
                    obj.get("role")
                        .map_or("nothing".to_string(), Value::to_string)
                ),
            ))
        }
    };
    let parts = ui_parts(obj.get("parts"), &format!("{field}.parts"))?;
    let mut message = Message::new(kind, id, "");
    message.content = stored_content(kind, parts);
    if let Some(metadata) = obj.get("metadata").filter(|m| !m.is_null()) {
        message
            .extra
            .insert("additional_kwargs".into(), json!({ "metadata": metadata }));
    }
    let size = message.stored_size();
    if size > MESSAGE_MAX_BYTES {
        return Err(Error::TooLarge {
            what: format!("{field} (bytes)"),
            size,
            limit: MESSAGE_MAX_BYTES,
        });
    }
    Ok(message)
}

/// `parts`: a list of objects, each with a string `type`; a `text` part has a string
/// `text`.
fn ui_parts(value: Option<&Value>, field: &str) -> Result<Vec<Value>> {
    let parts = match value {
        Some(Value::Array(parts)) => parts,
        Some(other) => {
            return Err(Error::invalid(
                field,
                format!("must be a list of parts, got {}", json_type_name(other)),
            ))
        }
        None => return Err(Error::invalid(field, "is required (a list of parts)")),
    };
    for (i, part) in parts.iter().enumerate() {
        let kind = part.get("type").and_then(Value::as_str);
        match (part, kind) {
            (Value::Object(_), Some("text")) if !part.get("text").is_some_and(Value::is_string) => {
                return Err(Error::invalid(
                    format!("{field}[{i}].text"),
                    "must be a string in a text part",
                ))
            }
            (Value::Object(_), Some(_)) => {}
            _ => {
                return Err(Error::invalid(
                    format!("{field}[{i}].type"),
                    "is required: every part is an object with a string `type`",
                ))
            }
        }
    }
    Ok(parts.clone())
}

/// The content a message is stored with: its text when its parts are the plain form
/// [`super::encode`] writes back for its role, else the parts themselves.
fn stored_content(kind: MessageType, parts: Vec<Value>) -> Value {
    match plain_text(kind, &parts) {
        Some(text) => Value::String(text),
        None => Value::Array(parts),
    }
}

/// The text of parts in the plain form of `kind`: one `{type: "text", text}` for users
/// and system prompts; `step-start` then one finished text part for the assistant (what
/// a streamed reply is on the client).
fn plain_text(kind: MessageType, parts: &[Value]) -> Option<String> {
    let text_part = |part: &Value, state: Option<&str>| -> Option<String> {
        let obj = part.as_object()?;
        let wanted = 2 + usize::from(state.is_some());
        let state_ok = state.is_none_or(|s| obj.get("state").and_then(Value::as_str) == Some(s));
        (obj.len() == wanted && obj.get("type")? == "text" && state_ok)
            .then(|| obj.get("text")?.as_str().map(str::to_string))
            .flatten()
    };
    match (kind, parts) {
        (MessageType::Ai, [step, text]) if step == &json!({"type": "step-start"}) => {
            text_part(text, Some("done"))
        }
        (MessageType::Ai, _) => None,
        (_, [text]) => text_part(text, None),
        _ => None,
    }
}

/// The same error, naming `field` (a thread id read from the chat's `id`).
fn rename_field(err: Error, field: &str) -> Error {
    match err {
        Error::InvalidInput { reason, .. } => Error::invalid(field, reason),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::SeededEntropy;

    fn body(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn the_default_and_the_slim_body_decode_to_the_same_messages() {
        let entropy = SeededEntropy::new(1);
        let user = json!({"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Hi"}]});
        let whole = parse_chat_body(
            &body(json!({"id": "chat-1", "messages": [user], "trigger": "submit-message"})),
            &entropy,
        )
        .unwrap();
        let slim =
            parse_chat_body(&body(json!({"id": "chat-1", "message": user})), &entropy).unwrap();
        assert_eq!(whole.thread_id.as_str(), "chat-1");
        assert!(whole.turn.whole && !slim.turn.whole);
        assert_eq!(whole.turn.messages, slim.turn.messages);
        let stored = &slim.turn.messages[0];
        assert_eq!(
            (stored.id.as_str(), stored.kind),
            ("u1", MessageType::Human)
        );
        assert_eq!(stored.content, json!("Hi"));
    }

    #[test]
    fn parts_beyond_plain_text_are_kept_as_sent() {
        let entropy = SeededEntropy::new(1);
        let parts = json!([
            {"type": "text", "text": "Look"},
            {"type": "file", "mediaType": "image/png", "url": "data:image/png;base64,AA=="},
            {"type": "data-weather", "id": "w", "data": {"c": 21}},
            {"type": "something-new", "x": 1}
        ]);
        let message = ui_message(
            &json!({"id": "u", "role": "user", "parts": parts, "metadata": {"at": 5}}),
            "message",
            &entropy,
        )
        .unwrap();
        assert_eq!(message.content, parts);
        assert_eq!(message.text(), "Look");
        assert_eq!(
            message.extra["additional_kwargs"],
            json!({"metadata": {"at": 5}})
        );
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let entropy = SeededEntropy::new(1);
        let user = json!({"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Hi"}]});
        for (sent, field) in [
            (json!({"messages": [user]}), "id"),
            (json!({"id": 5, "messages": [user]}), "id"),
            (json!({"id": "a b", "messages": [user]}), "id"),
            (json!({"id": "c", "messages": "hi"}), "messages"),
            (json!({"id": "c"}), "messages"),
            (json!({"id": "c", "messages": []}), "messages"),
            (
                json!({"id": "c", "messages": [user], "message": user}),
                "messages",
            ),
            (
                json!({"id": "c", "messages": [{"id": "u", "role": "user", "parts": [{"text": "x"}]}]}),
                "messages[0].parts[0].type",
            ),
            (
                json!({"id": "c", "messages": [{"id": "u", "role": "user", "parts": ["x"]}]}),
                "messages[0].parts[0].type",
            ),
            (
                json!({"id": "c", "messages": [{"id": "u", "role": "user", "parts": [{"type": "text"}]}]}),
                "messages[0].parts[0].text",
            ),
            (
                json!({"id": "c", "messages": [{"id": "u", "role": "tool", "parts": []}]}),
                "messages[0].role",
            ),
            (
                json!({"id": "c", "messages": [{"id": "u", "role": "user"}]}),
                "messages[0].parts",
            ),
            (
                json!({"id": "c", "message": {"id": "", "role": "user", "parts": []}}),
                "message.id",
            ),
            (
                json!({"id": "c", "messages": [user], "trigger": "resume-stream"}),
                "trigger",
            ),
            (
                json!({"id": "c", "messages": [user], "messageId": 3}),
                "messageId",
            ),
        ] {
            let err = parse_chat_body(&body(sent.clone()), &entropy).unwrap_err();
            match &err {
                Error::InvalidInput { field: f, .. } => assert_eq!(f, field, "{sent}"),
                other => panic!("{sent}: {other:?}"),
            }
            assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
        }
        let long: Vec<Value> = (0..=TRANSCRIPT_MESSAGES_MAX)
            .map(|_| user.clone())
            .collect();
        let err = parse_chat_body(&body(json!({"id": "c", "messages": long})), &entropy);
        assert!(matches!(err, Err(Error::TooLarge { .. })), "{err:?}");
    }

    #[test]
    fn a_regenerate_may_send_no_messages() {
        let entropy = SeededEntropy::new(1);
        let sent =
            json!({"id": "c", "messages": [], "trigger": "regenerate-message", "messageId": "a1"});
        let chat = parse_chat_body(&body(sent), &entropy).unwrap();
        assert_eq!(chat.turn.trigger, Trigger::Regenerate);
        assert_eq!(chat.turn.message_id.as_deref(), Some("a1"));
    }
}
