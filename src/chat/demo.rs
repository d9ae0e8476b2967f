//! The built-in memory demo responder: a deterministic, offline model that visibly
//! depends on the thread's persisted messages.
//!
//! - "My name is Sam" → greets Sam; later "What's my name?" → "Your name is Sam."
//! - "What did I say?" (or "recap") → lists the earlier user messages.
//! - Anything else → echoes, with the number of earlier messages in the thread.
//!
//! It reads only the `messages` it is given (loaded from storage by the engine), so a
//! reply that knows the name proves the conversation survived.

use super::{stream_chunks, ChatModel, DeltaSink, ReplyEnd};
use crate::error::Result;
use crate::message::{Message, MessageType};

/// How many earlier user messages a recap lists.
const RECAP_MAX_ITEMS: usize = 10;
/// How many characters of each message a recap quotes.
const RECAP_QUOTE_CHARS: usize = 80;

/// The default model: deterministic, no network.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryDemoResponder;

impl ChatModel for MemoryDemoResponder {
    fn name(&self) -> &str {
        "memory-demo"
    }

    async fn stream(&self, context: &[Message], sink: &dyn DeltaSink) -> Result<ReplyEnd> {
        // Word by word, so every streaming path is exercised without a network.
        for chunk in stream_chunks(&demo_reply(context)) {
            sink.delta(chunk);
        }
        Ok(ReplyEnd {
            usage: None,
            finish_reason: Some("stop".into()),
        })
    }
}

/// The reply to `messages`; see the module docs.
pub fn demo_reply(messages: &[Message]) -> String {
    let humans: Vec<String> = messages
        .iter()
        .filter(|m| m.kind == MessageType::Human)
        .map(Message::text)
        .collect();
    let Some((last, earlier)) = humans.split_last() else {
        return "Hello! Tell me something and I will remember it.".to_string();
    };
    // ASCII folding: the phrases matched are ASCII, and offsets stay the same.
    let lower = last.to_ascii_lowercase();
    if asks_for_name(&lower) {
        return match earlier.iter().rev().find_map(|text| name_in(text)) {
            Some(name) => format!("Your name is {name}."),
            None => "I don't know your name yet. Tell me with \"My name is ...\".".to_string(),
        };
    }
    if asks_for_recap(&lower) {
        if earlier.is_empty() {
            return "You haven't said anything before this in this thread.".to_string();
        }
        let start = earlier.len().saturating_sub(RECAP_MAX_ITEMS);
        let quotes: Vec<String> = earlier[start..]
            .iter()
            .map(|t| format!("\"{}\"", truncate(t, RECAP_QUOTE_CHARS)))
            .collect();
        return format!("Earlier you said: {}.", quotes.join("; "));
    }
    if let Some(name) = name_in(last) {
        return format!("Nice to meet you, {name}! I'll remember that.");
    }
    let earlier_count = messages.len().saturating_sub(1);
    format!(
        "You said: {}. (This thread holds {earlier_count} earlier message{}.)",
        truncate(last, 400),
        if earlier_count == 1 { "" } else { "s" }
    )
}

fn asks_for_name(lower: &str) -> bool {
    [
        "what's my name",
        "what is my name",
        "whats my name",
        "do you know my name",
        "who am i",
    ]
    .iter()
    .any(|q| lower.contains(q))
}

fn asks_for_recap(lower: &str) -> bool {
    [
        "what did i say",
        "what have i said",
        "what did we talk about",
        "recap",
    ]
    .iter()
    .any(|q| lower.contains(q))
}

/// The name in "... my name is Sam ...", if any.
fn name_in(text: &str) -> Option<String> {
    // ASCII folding keeps every byte offset, so the name is read from the original.
    let at = text.to_ascii_lowercase().find("my name is ")? + "my name is ".len();
    let name: String = text[at..]
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '-' || *c == '\'')
        .collect();
    (!name.is_empty()).then_some(name)
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max_chars).collect();
        format!("{cut}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convo(lines: &[(&str, MessageType)]) -> Vec<Message> {
        lines
            .iter()
            .enumerate()
            .map(|(i, (t, k))| Message::new(*k, i.to_string(), *t))
            .collect()
    }

    #[test]
    fn remembers_the_name_from_the_messages() {
        let h = MessageType::Human;
        let a = MessageType::Ai;
        let msgs = convo(&[
            ("My name is Sam", h),
            ("Nice to meet you", a),
            ("What's my name?", h),
        ]);
        assert_eq!(demo_reply(&msgs), "Your name is Sam.");
        let forgetful = convo(&[("What's my name?", h)]);
        assert!(demo_reply(&forgetful).contains("don't know"));
        assert_eq!(
            demo_reply(&convo(&[("my name is Zoë.", h)])),
            "Nice to meet you, Zoë! I'll remember that."
        );
    }

    #[test]
    fn recaps_earlier_user_messages() {
        let h = MessageType::Human;
        let msgs = convo(&[
            ("I like tea", h),
            ("ok", MessageType::Ai),
            ("What did I say?", h),
        ]);
        assert_eq!(demo_reply(&msgs), "Earlier you said: \"I like tea\".");
    }

    #[test]
    fn echoes_otherwise() {
        let msgs = convo(&[("hello there", MessageType::Human)]);
        assert_eq!(
            demo_reply(&msgs),
            "You said: hello there. (This thread holds 0 earlier messages.)"
        );
    }
}
