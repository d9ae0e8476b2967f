//! [`Message`]'s `Deserialize`, written out. The derive, with `#[serde(flatten)]` on
//! `extra`, buffers every field of every message through serde's private `Content`
//! tree before sorting them out, for each input it decodes from: ~7 KB of wasm. This
//! reads the same fields in the same order, with the same errors (tested against the
//! derive), and puts the other keys straight into `extra`.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::Message;

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MessageVisitor)
    }
}

/// A key of a message object: one of its fields, or a key for `extra`.
enum Key {
    Id,
    Kind,
    Content,
    Name,
    ToolCallId,
    Extra(String),
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("field identifier")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(match key {
            "id" => Key::Id,
            "type" => Key::Kind,
            "content" => Key::Content,
            "name" => Key::Name,
            "tool_call_id" => Key::ToolCallId,
            other => Key::Extra(other.to_string()),
        })
    }
}

struct MessageVisitor;

/// Reads the value of field `name` into `slot`; a second occurrence is an error, as
/// the derive has it (checked before the value is read).
fn read_once<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    map: &mut A,
    slot: &mut Option<T>,
    name: &'static str,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("struct Message")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
        let (mut id, mut kind, mut content) = (None, None, None);
        let (mut name, mut tool_call_id) = (None, None);
        let mut extra = Map::new();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Id => read_once(&mut map, &mut id, "id")?,
                Key::Kind => read_once(&mut map, &mut kind, "type")?,
                Key::Content => read_once(&mut map, &mut content, "content")?,
                Key::Name => read_once(&mut map, &mut name, "name")?,
                Key::ToolCallId => read_once(&mut map, &mut tool_call_id, "tool_call_id")?,
                Key::Extra(key) => {
                    extra.insert(key, map.next_value::<Value>()?);
                }
            }
        }
        Ok(Message {
            id: id.ok_or_else(|| de::Error::missing_field("id"))?,
            kind: kind.ok_or_else(|| de::Error::missing_field("type"))?,
            content: content.ok_or_else(|| de::Error::missing_field("content"))?,
            name: name.unwrap_or_default(),
            tool_call_id: tool_call_id.unwrap_or_default(),
            extra,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::{Message, MessageType};

    /// The derive this module replaces, as the reference (named as it was, since the
    /// name shows in errors).
    mod derived {
        use serde::Deserialize;
        use serde_json::{Map, Value};

        use crate::message::MessageType;

        #[derive(Debug, Deserialize)]
        pub(super) struct Message {
            pub(super) id: String,
            #[serde(rename = "type")]
            pub(super) kind: MessageType,
            pub(super) content: Value,
            #[serde(default)]
            pub(super) name: Option<String>,
            #[serde(default)]
            pub(super) tool_call_id: Option<String>,
            #[serde(default, flatten)]
            pub(super) extra: Map<String, Value>,
        }
    }

    fn same(
        derived: Result<derived::Message, serde_json::Error>,
        ours: Result<Message, serde_json::Error>,
    ) {
        match (derived, ours) {
            (Ok(d), Ok(m)) => {
                assert_eq!(
                    (d.id, d.kind, d.content, d.name, d.tool_call_id, d.extra),
                    (m.id, m.kind, m.content, m.name, m.tool_call_id, m.extra)
                );
            }
            (Err(d), Err(m)) => assert_eq!(d.to_string(), m.to_string()),
            (d, m) => panic!("derive {d:?}, ours {m:?}"),
        }
    }

    #[test]
    fn decodes_as_the_derive_did_from_values_and_text() {
        let cases = [
            r#"{"id": "m1", "type": "human", "content": "hi"}"#,
            r#"{"content": [{"type": "text"}], "type": "ai", "id": "m2", "name": null,
                "tool_call_id": "c", "additional_kwargs": {"a": 1}, "z": [1.5, -2, null]}"#,
            r#"{"id": "m1", "type": "human"}"#,
            r#"{"type": "human", "content": "x"}"#,
            r#"{"id": "m1", "content": "x", "extra": true}"#,
            r#"{"id": 5, "type": "human", "content": "x"}"#,
            r#"{"id": "m1", "type": "robot", "content": "x"}"#,
            r#"{"id": "m1", "type": "human", "content": "x", "name": 3}"#,
            r#"{"id": "m1", "id": "m2", "type": "human", "content": "x"}"#,
            r#"{"id": "m1", "type": "human", "content": "x", "k": 1, "k": 2}"#,
            r#"{"tool_call_id": ["x"], "id": 1}"#,
            r#"["m1", "human", "x"]"#,
            r#""text""#,
            r#"{}"#,
        ];
        for text in cases {
            same(serde_json::from_str(text), serde_json::from_str(text));
            let value: Value = serde_json::from_str(text).unwrap();
            same(
                serde_json::from_value(value.clone()),
                serde_json::from_value(value),
            );
        }
        let message = Message::new(MessageType::Tool, "t", "done");
        let back: Message = serde_json::from_value(json!(message)).unwrap();
        assert_eq!(back, message);
    }
}
