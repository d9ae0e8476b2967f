//! Workers AI through the `AI` binding (`MODEL_PROVIDER=workers-ai`,
//! `WORKERS_AI_MODEL`).
//!
//! `AI.run(model, {messages, stream: true})` answers with a `text/event-stream` of
//! `{"response": "<text>"}` events, a last one with `usage`, then `[DONE]`; models served
//! in OpenAI's chunk format are read too. Not exercised against the real service in
//! tests (it cannot be called offline): the request and event mapping are unit-tested.

use serde_json::{json, Value};

use super::sse::parse_chunk;
use super::upstream::{chat_role, read_events, AiBinding};
use super::{ChatModel, DeltaSink, ReplyEnd, Usage};
use crate::error::{Error, Result};
use crate::message::Message;

/// Default `WORKERS_AI_MODEL`: a current Llama instruct model on Workers AI.
pub const WORKERS_AI_MODEL_DEFAULT: &str = "@cf/meta/llama-3.3-70b-instruct-fp8-fast";

/// The `AI.run` input for `context`.
pub fn run_input(
    context: &[Message],
    max_tokens: Option<u32>,
    temperature: Option<&serde_json::Number>,
) -> Value {
    let messages: Vec<Value> = context
        .iter()
        .map(|m| json!({"role": chat_role(m.kind), "content": m.text()}))
        .collect();
    let mut input = json!({"messages": messages, "stream": true});
    if let Some(max) = max_tokens {
        input["max_tokens"] = json!(max);
    }
    if let Some(temperature) = temperature {
        input["temperature"] = Value::Number(temperature.clone());
    }
    input
}

/// One streamed event: `(text, usage)`.
pub fn parse_event(data: &str) -> Result<(String, Option<Usage>)> {
    let value: Value = serde_json::from_str(data).map_err(|e| Error::Upstream {
        reason: format!("Workers AI sent a malformed stream event ({e})"),
    })?;
    if value.get("choices").is_some() || value.get("error").is_some() {
        let chunk = parse_chunk(data)?;
        let usage = chunk.usage.map(|(input_tokens, output_tokens)| Usage {
            input_tokens,
            output_tokens,
        });
        return Ok((chunk.delta, usage));
    }
    let text = value
        .get("response")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let usage = value.get("usage").filter(|u| u.is_object()).map(|u| Usage {
        input_tokens: u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
        output_tokens: u
            .get("completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    });
    Ok((text, usage))
}

/// A Workers AI model over an [`AiBinding`].
pub struct WorkersAiModel<A> {
    /// `WORKERS_AI_MODEL`.
    pub model: String,
    /// `MODEL_MAX_TOKENS`, when set.
    pub max_tokens: Option<u32>,
    /// The sampling temperature, when an assistant sets one.
    pub temperature: Option<serde_json::Number>,
    /// The binding.
    pub ai: A,
}

impl<A: AiBinding> ChatModel for WorkersAiModel<A> {
    fn name(&self) -> &str {
        &self.model
    }

    async fn stream(&self, context: &[Message], sink: &dyn DeltaSink) -> Result<ReplyEnd> {
        let input = run_input(context, self.max_tokens, self.temperature.as_ref());
        let mut body = self.ai.run(&self.model, &input).await?;
        let mut end = ReplyEnd::default();
        read_events(&mut body, |data| {
            let (text, usage) = parse_event(data)?;
            sink.delta(&text);
            if usage.is_some() {
                end.usage = usage;
            }
            Ok(())
        })
        .await?;
        Ok(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::upstream::scripted::Script;
    use crate::message::MessageType;
    use std::cell::RefCell;

    struct FakeAi {
        script: RefCell<Option<Script>>,
        seen: RefCell<Vec<(String, Value)>>,
    }

    impl AiBinding for FakeAi {
        type Body = Script;
        async fn run(&self, model: &str, input: &Value) -> Result<Script> {
            self.seen
                .borrow_mut()
                .push((model.to_string(), input.clone()));
            self.script
                .borrow_mut()
                .take()
                .ok_or_else(|| Error::backend("no script"))
        }
    }

    struct Collect(RefCell<String>);
    impl DeltaSink for Collect {
        fn delta(&self, text: &str) {
            self.0.borrow_mut().push_str(text);
        }
    }

    #[test]
    fn maps_the_request_and_the_streamed_events() {
        let stream = concat!(
            "data: {\"response\":\"Hello\",\"p\":\"ab\"}\n\n",
            "data: {\"response\":\" Sam\"}\n\n",
            "data: {\"response\":\"\",\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":2,\"total_tokens\":22}}\n\n",
            "data: [DONE]\n\n"
        );
        let model = WorkersAiModel {
            model: WORKERS_AI_MODEL_DEFAULT.to_string(),
            max_tokens: Some(256),
            temperature: None,
            ai: FakeAi {
                script: RefCell::new(Some(Script::of(&[stream.as_bytes()]))),
                seen: RefCell::new(Vec::new()),
            },
        };
        let context = vec![
            Message::new(MessageType::System, "s", "Be brief."),
            Message::new(MessageType::Human, "h", "Hi, I'm Sam"),
            Message::new(MessageType::Ai, "a", "Hi!"),
            Message::new(MessageType::Human, "h2", "Name?"),
        ];
        let sink = Collect(RefCell::new(String::new()));
        let end = pollster::block_on(model.stream(&context, &sink)).unwrap();
        assert_eq!(sink.0.take(), "Hello Sam");
        assert_eq!(end.usage.unwrap().input_tokens, 20);
        let seen = model.ai.seen.borrow();
        assert_eq!(seen[0].0, WORKERS_AI_MODEL_DEFAULT);
        assert_eq!(
            seen[0].1,
            json!({
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi, I'm Sam"},
                    {"role": "assistant", "content": "Hi!"},
                    {"role": "user", "content": "Name?"},
                ],
                "stream": true,
                "max_tokens": 256,
            })
        );
    }

    #[test]
    fn openai_shaped_events_and_errors_are_read() {
        let (text, _) =
            parse_event(r#"{"choices":[{"delta":{"content":"Hi"},"index":0}]}"#).unwrap();
        assert_eq!(text, "Hi");
        for bad in [r#"{"error":{"message":"capacity"}}"#, "nope"] {
            let err = parse_event(bad).unwrap_err();
            assert!(matches!(err, Error::Upstream { .. }), "{err:?}");
        }
    }
}
