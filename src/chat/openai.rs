//! OpenAI-compatible Chat Completions (`MODEL_PROVIDER=openai`): OpenAI, Groq, Together,
//! vLLM, Ollama, LM Studio, Cloudflare AI Gateway, ...
//!
//! `POST {OPENAI_BASE_URL}/chat/completions` with `stream: true` and
//! `stream_options.include_usage`; the reply is read from the event stream as it
//! arrives. A server that ignores `stream` and answers with one JSON completion is read
//! too. The API key goes only into the `authorization` header: it is never logged,
//! never returned, and redacted from provider error messages.

use serde_json::{json, Value};

use super::sse::parse_chunk;
use super::upstream::{
    chat_messages, error_message, read_events, read_prefix, status_error, HttpClient,
    UpstreamRequest, UPSTREAM_ERROR_BODY_MAX_BYTES,
};
use super::{ChatModel, DeltaSink, ReplyEnd, Usage};
use crate::error::{Error, Result};
use crate::message::Message;

/// Default `OPENAI_BASE_URL`.
pub const OPENAI_BASE_URL_DEFAULT: &str = "https://api.openai.com/v1";
/// Default `OPENAI_MODEL`.
pub const OPENAI_MODEL_DEFAULT: &str = "gpt-4o-mini";

/// Where and what to ask.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenAiConfig {
    /// `OPENAI_BASE_URL`, without the trailing `/chat/completions`.
    pub base_url: String,
    /// `OPENAI_MODEL`.
    pub model: String,
    /// `OPENAI_API_KEY` (a secret); none for local servers that need no key.
    pub api_key: Option<String>,
    /// `MODEL_MAX_TOKENS`: a bound on the reply, when set.
    pub max_tokens: Option<u32>,
    /// The sampling temperature, when an assistant sets one (else the provider's).
    pub temperature: Option<serde_json::Number>,
}

impl std::fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("max_tokens", &self.max_tokens)
            .field("temperature", &self.temperature)
            .finish()
    }
}

/// The request for `context`.
pub fn completion_request(config: &OpenAiConfig, context: &[Message]) -> UpstreamRequest {
    let mut body = json!({
        "model": config.model,
        "messages": chat_messages(context),
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if let Some(max) = config.max_tokens {
        body["max_tokens"] = json!(max);
    }
    if let Some(temperature) = &config.temperature {
        body["temperature"] = Value::Number(temperature.clone());
    }
    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("accept".to_string(), "text/event-stream".to_string()),
    ];
    if let Some(key) = config.api_key.as_deref().filter(|k| !k.is_empty()) {
        headers.push(("authorization".to_string(), format!("Bearer {key}")));
    }
    UpstreamRequest {
        url: format!("{}/chat/completions", config.base_url.trim_end_matches('/')),
        headers,
        body: body.to_string(),
    }
}

/// An OpenAI-compatible model over an [`HttpClient`].
pub struct OpenAiModel<H> {
    /// Where and what to ask.
    pub config: OpenAiConfig,
    /// How to reach it.
    pub http: H,
}

impl<H: HttpClient> ChatModel for OpenAiModel<H> {
    fn name(&self) -> &str {
        &self.config.model
    }

    async fn stream(&self, context: &[Message], sink: &dyn DeltaSink) -> Result<ReplyEnd> {
        let request = completion_request(&self.config, context);
        let mut response = self.http.post(&request).await?;
        if !(200..300).contains(&response.status) {
            let body = read_prefix(&mut response.body, UPSTREAM_ERROR_BODY_MAX_BYTES)
                .await
                .unwrap_or_default();
            return Err(status_error(
                "the model provider",
                response.status,
                &error_message(&body, self.config.api_key.as_deref()),
                response.retry_after.as_deref(),
                "OPENAI_API_KEY",
                &format!(
                    "OPENAI_BASE_URL ({}) and OPENAI_MODEL ({})",
                    self.config.base_url, self.config.model
                ),
            ));
        }
        if response.content_type.starts_with("application/json") {
            // A server that ignored `stream: true`.
            let body = read_prefix(&mut response.body, crate::limits::MESSAGE_MAX_BYTES).await?;
            return whole_completion(&body, sink);
        }
        let mut end = ReplyEnd::default();
        let done = read_events(&mut response.body, |data| {
            let chunk = parse_chunk(data)?;
            sink.delta(&chunk.delta);
            if chunk.finish_reason.is_some() {
                end.finish_reason = chunk.finish_reason;
            }
            if let Some((input_tokens, output_tokens)) = chunk.usage {
                end.usage = Some(Usage {
                    input_tokens,
                    output_tokens,
                });
            }
            Ok(())
        })
        .await?;
        if !done && end.finish_reason.is_none() {
            return Err(Error::Upstream {
                reason: "the model stream ended before the reply was complete (no finish_reason, no [DONE])".into(),
            });
        }
        Ok(end)
    }
}

/// Reads a non-streamed chat completion.
fn whole_completion(body: &[u8], sink: &dyn DeltaSink) -> Result<ReplyEnd> {
    let value: Value = serde_json::from_slice(body).map_err(|e| Error::Upstream {
        reason: format!("the model sent malformed JSON ({e})"),
    })?;
    let choice = value.pointer("/choices/0").ok_or_else(|| Error::Upstream {
        reason: "the model's completion has no choices".into(),
    })?;
    let text = choice
        .pointer("/message/content")
        .and_then(Value::as_str)
        .unwrap_or("");
    sink.delta(text);
    let usage = value.get("usage").map(|u| Usage {
        input_tokens: u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
        output_tokens: u
            .get("completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    });
    Ok(ReplyEnd {
        usage,
        finish_reason: choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::upstream::scripted::ScriptedHttp;
    use crate::message::MessageType;
    use std::cell::RefCell;

    struct Collect(RefCell<Vec<String>>);
    impl DeltaSink for Collect {
        fn delta(&self, text: &str) {
            self.0.borrow_mut().push(text.to_string());
        }
    }

    fn config() -> OpenAiConfig {
        OpenAiConfig {
            base_url: "http://127.0.0.1:9/v1/".into(),
            model: "test-model".into(),
            api_key: Some("sk-secret-123".into()),
            max_tokens: Some(64),
            temperature: None,
        }
    }

    fn context() -> Vec<Message> {
        vec![
            Message::new(MessageType::System, "s", "Be brief."),
            Message::new(MessageType::Human, "h", "Hi, I'm Sam"),
        ]
    }

    fn run(http: ScriptedHttp) -> (Result<ReplyEnd>, Vec<String>, ScriptedHttp) {
        let model = OpenAiModel {
            config: config(),
            http,
        };
        let sink = Collect(RefCell::new(Vec::new()));
        let result = pollster::block_on(model.stream(&context(), &sink));
        (result, sink.0.take(), model.http)
    }

    #[test]
    fn streams_deltas_and_usage_from_split_reads() {
        let stream = concat!(
            ": keep-alive\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi \"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Sam ✓\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}\n\n",
            "data: [DONE]\n\n"
        )
        .as_bytes();
        let reads: Vec<&[u8]> = stream.chunks(7).collect();
        let (result, deltas, http) = run(ScriptedHttp::answering(200, "text/event-stream", &reads));
        let end = result.unwrap();
        assert_eq!(deltas.concat(), "Hi Sam ✓");
        assert_eq!(end.finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            end.usage,
            Some(Usage {
                input_tokens: 9,
                output_tokens: 2
            })
        );
        let requests = http.requests.borrow();
        let request = &requests[0];
        assert_eq!(request.url, "http://127.0.0.1:9/v1/chat/completions");
        assert!(request
            .headers
            .contains(&("authorization".into(), "Bearer sk-secret-123".into())));
        let body: Value = serde_json::from_str(&request.body).unwrap();
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["max_tokens"], 64);
        assert_eq!(
            body["messages"],
            json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi, I'm Sam"}])
        );
    }

    #[test]
    fn http_errors_map_to_clear_errors_without_the_key() {
        let cases: [(u16, &str, u16, &str); 5] = [
            (
                401,
                r#"{"error":{"message":"Incorrect API key provided: sk-secret-123"}}"#,
                502,
                "OPENAI_API_KEY",
            ),
            (
                404,
                r#"{"error":{"message":"model not found"}}"#,
                502,
                "OPENAI_MODEL",
            ),
            (
                429,
                r#"{"error":{"message":"Rate limit reached"}}"#,
                503,
                "rate-limiting",
            ),
            (500, "upstream exploded", 502, "failed (500)"),
            (503, "", 502, "failed (503)"),
        ];
        for (status, body, ours, says) in cases {
            let (result, deltas, _) = run(ScriptedHttp::answering(
                status,
                "application/json",
                &[body.as_bytes()],
            ));
            // What the client is answered: the API's status and detail.
            let err = crate::api::ApiError::from(result.unwrap_err());
            assert_eq!(err.status(), ours, "{status}: {err}");
            let detail = err.client_detail();
            assert!(detail.contains(says), "{status}: {detail}");
            assert!(!detail.contains("sk-secret-123"), "{detail}");
            assert!(deltas.is_empty());
        }
    }

    #[test]
    fn malformed_truncated_and_error_streams_fail() {
        for stream in [
            "data: {not json\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: {\"error\":{\"message\":\"overloaded\"}}\n\n",
        ] {
            let (result, _, _) = run(ScriptedHttp::answering(
                200,
                "text/event-stream",
                &[stream.as_bytes()],
            ));
            let err = result.unwrap_err();
            assert!(matches!(err, Error::Upstream { .. }), "{stream}: {err:?}");
        }
        let (timeout, _, _) = run(ScriptedHttp::failing(Error::UpstreamTimeout {
            waited_ms: 10,
        }));
        let err = timeout.unwrap_err();
        assert!(matches!(err, Error::UpstreamTimeout { .. }), "{err:?}");
    }

    #[test]
    fn a_non_streamed_json_completion_is_read_whole() {
        let body = r#"{"choices":[{"message":{"role":"assistant","content":"Hello Sam"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#;
        let (result, deltas, _) = run(ScriptedHttp::answering(
            200,
            "application/json; charset=utf-8",
            &[body.as_bytes()],
        ));
        assert_eq!(result.unwrap().usage.unwrap().output_tokens, 2);
        assert_eq!(deltas.concat(), "Hello Sam");
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        assert!(!format!("{:?}", config()).contains("sk-secret"));
    }
}
