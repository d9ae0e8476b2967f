//! The context window: what a model is shown of a conversation.
//!
//! A trimmed *view*, never a change to stored history: the system prompt, then the most
//! recent messages within a message and a character budget, starting on a human message,
//! and never an AI tool call without its tool results (or results without their call).

use crate::message::{Message, MessageType};

/// How much of a conversation a model is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextBudget {
    /// At most this many messages besides the system prompt (`CONTEXT_MAX_MESSAGES`).
    pub max_messages: usize,
    /// At most this many characters of message text (`CONTEXT_MAX_CHARS`).
    pub max_chars: usize,
}

impl Default for ContextBudget {
    fn default() -> Self {
        ContextBudget {
            max_messages: CONTEXT_MAX_MESSAGES,
            max_chars: CONTEXT_MAX_CHARS,
        }
    }
}

/// Default `CONTEXT_MAX_MESSAGES`: how many of the newest messages a turn reads and
/// shows the model. A turn never reads the whole thread, so its cost does not grow with
/// the thread.
pub const CONTEXT_MAX_MESSAGES: usize = 100;

/// Default `CONTEXT_MAX_CHARS`: about 8k tokens of English, which fits every current
/// chat model's window with room for the reply.
pub const CONTEXT_MAX_CHARS: usize = 32_000;

/// The most messages `CONTEXT_MAX_MESSAGES` may ask a turn to read: a bound on one
/// turn's storage reads, whatever the configuration says.
pub const CONTEXT_READ_MAX: usize = 1_000;

fn has_tool_calls(message: &Message) -> bool {
    message.kind == MessageType::Ai
        && message
            .extra
            .get("tool_calls")
            .and_then(|v| v.as_array())
            .is_some_and(|calls| !calls.is_empty())
}

/// The view of `messages` (oldest first) a model gets under `budget`, after an optional
/// system prompt. `messages` is not changed.
pub fn context_window(
    system_prompt: Option<&str>,
    messages: &[Message],
    budget: ContextBudget,
) -> Vec<Message> {
    // Walk back from the newest message while the budget holds.
    let mut start = messages.len();
    let mut chars = 0usize;
    while start > 0 {
        let candidate = &messages[start - 1];
        if candidate.kind == MessageType::System {
            break; // earlier system messages are superseded by the system prompt
        }
        let size = candidate.text().chars().count();
        if messages.len() - start + 1 > budget.max_messages || chars + size > budget.max_chars {
            break;
        }
        chars += size;
        start -= 1;
    }
    let mut window = &messages[start..];
    // Start on a human message: a window that opens with tool results (whose call was cut)
    // or an AI reply (whose question was cut) reads as nonsense to the model.
    while let Some(first) = window.first() {
        if first.kind == MessageType::Human {
            break;
        }
        window = &window[1..];
    }
    // An AI tool call at the very end without its results cannot be answered either.
    while let Some(last) = window.last() {
        if has_tool_calls(last) {
            window = &window[..window.len() - 1];
        } else {
            break;
        }
    }
    let mut out = Vec::with_capacity(window.len() + 1);
    match system_prompt.filter(|p| !p.is_empty()) {
        Some(prompt) => out.push(Message::new(MessageType::System, "system-prompt", prompt)),
        // Without a configured prompt, the conversation's own system message (where the
        // walk stopped) still leads.
        None => out.extend(
            messages[..start]
                .last()
                .filter(|m| m.kind == MessageType::System)
                .cloned(),
        ),
    }
    out.extend(window.iter().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(kind: MessageType, id: &str, text: &str) -> Message {
        Message::new(kind, id, text)
    }

    fn tool_call(id: &str) -> Message {
        let mut ai = m(MessageType::Ai, id, "");
        ai.extra.insert(
            "tool_calls".into(),
            json!([{"id": "call-1", "name": "search", "args": {}}]),
        );
        ai
    }

    fn tool_result(id: &str) -> Message {
        let mut tool = m(MessageType::Tool, id, "result");
        tool.tool_call_id = Some("call-1".into());
        tool
    }

    fn ids(window: &[Message]) -> Vec<&str> {
        window.iter().map(|m| m.id.as_str()).collect()
    }

    #[test]
    fn keeps_the_system_prompt_and_the_newest_messages_within_budget() {
        let history: Vec<Message> = (0..10)
            .map(|i| {
                m(
                    if i % 2 == 0 {
                        MessageType::Human
                    } else {
                        MessageType::Ai
                    },
                    &i.to_string(),
                    "0123456789",
                )
            })
            .collect();
        let before = history.clone();
        let window = context_window(
            Some("Be brief."),
            &history,
            ContextBudget {
                max_messages: 4,
                max_chars: 1000,
            },
        );
        assert_eq!(ids(&window), ["system-prompt", "6", "7", "8", "9"]);
        assert_eq!(window[0].kind, MessageType::System);
        let by_chars = context_window(
            None,
            &history,
            ContextBudget {
                max_messages: 100,
                max_chars: 35,
            },
        );
        assert_eq!(
            ids(&by_chars),
            ["8", "9"],
            "30 chars fit; the window starts on a human message"
        );
        assert_eq!(history, before, "stored history unchanged");
    }

    #[test]
    fn a_stored_system_message_leads_when_no_prompt_is_configured() {
        let history = vec![
            m(MessageType::System, "s", "You are a pirate."),
            m(MessageType::Human, "h1", "hi"),
        ];
        assert_eq!(
            ids(&context_window(None, &history, ContextBudget::default())),
            ["s", "h1"]
        );
        assert_eq!(
            ids(&context_window(
                Some("Be brief."),
                &history,
                ContextBudget::default()
            )),
            ["system-prompt", "h1"]
        );
    }

    #[test]
    fn never_splits_a_tool_call_from_its_results() {
        let history = vec![
            m(MessageType::Human, "h1", "look it up"),
            tool_call("a1"),
            tool_result("t1"),
            m(MessageType::Ai, "a2", "found it"),
            m(MessageType::Human, "h2", "thanks"),
        ];
        // A budget that would cut between the call and its result drops the orphan result.
        let window = context_window(
            None,
            &history,
            ContextBudget {
                max_messages: 3,
                max_chars: 1000,
            },
        );
        assert_eq!(ids(&window), ["h2"]);
        let all = context_window(
            None,
            &history,
            ContextBudget {
                max_messages: 5,
                max_chars: 1000,
            },
        );
        assert_eq!(ids(&all), ["h1", "a1", "t1", "a2", "h2"]);
        // A trailing call without results is left out.
        let dangling = vec![m(MessageType::Human, "h1", "q"), tool_call("a1")];
        assert_eq!(
            ids(&context_window(None, &dangling, ContextBudget::default())),
            ["h1"]
        );
    }
}
