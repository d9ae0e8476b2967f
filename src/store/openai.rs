//! The embeddings port, and its OpenAI-compatible provider: `POST {base}/embeddings`
//! `{"model", "input": [texts]}` → `{"data": [{"index", "embedding": [..]}]}` (OpenAI,
//! Azure-style gateways, vLLM, Ollama, LM Studio, Cloudflare AI Gateway, ...).
//!
//! The key goes only into the `authorization` header; it is never logged or returned.

use serde_json::{json, Value};

use super::embed::LocalEmbedder;
use super::workers_ai::WORKERS_AI_EMBEDDINGS_MODEL_DEFAULT;
use crate::chat::upstream::{
    error_message, read_prefix, status_error, HttpClient, UpstreamRequest,
    UPSTREAM_ERROR_BODY_MAX_BYTES,
};
use crate::error::{Error, Result};

/// Largest embeddings answer read: 1,000 texts of 1,536 dimensions as JSON fit.
pub const EMBEDDINGS_ANSWER_MAX_BYTES: usize = 32 * 1024 * 1024;

/// Turns texts into vectors, one per text, in order.
///
/// Not `Send`, like everything on Workers.
#[allow(async_fn_in_trait)]
pub trait Embedder {
    /// The vectors of `texts`; an error names the provider's failure.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>>;
}

impl Embedder for LocalEmbedder {
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        Ok(texts
            .iter()
            .map(|t| LocalEmbedder::embed(self, t))
            .collect())
    }
}

/// Where and what to ask.
#[derive(Clone, PartialEq, Eq)]
pub struct EmbeddingsConfig {
    /// The API base, without `/embeddings` (`https://api.openai.com/v1`).
    pub base_url: String,
    /// The model (`text-embedding-3-small`).
    pub model: String,
    /// The key (a secret), if the server needs one.
    pub api_key: Option<String>,
}

impl std::fmt::Debug for EmbeddingsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("EmbeddingsConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The request for `texts`.
pub fn embeddings_request(config: &EmbeddingsConfig, texts: &[String]) -> UpstreamRequest {
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(key) = &config.api_key {
        headers.push(("authorization".into(), format!("Bearer {key}")));
    }
    UpstreamRequest {
        url: format!("{}/embeddings", config.base_url.trim_end_matches('/')),
        headers,
        body: json!({"model": config.model, "input": texts, "encoding_format": "float"})
            .to_string(),
    }
}

/// The vectors of an embeddings answer, in the order of the texts asked (`index`).
pub fn parse_embeddings(body: &[u8], expected: usize) -> Result<Vec<Vec<f32>>> {
    let malformed = |what: &str| Error::Upstream {
        reason: format!("the embeddings provider's answer is malformed: {what}"),
    };
    let answer: Value = serde_json::from_slice(body).map_err(|_| malformed("not JSON"))?;
    let data = answer
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("no `data` list"))?;
    let mut out: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (position, entry) in data.iter().enumerate() {
        let index = entry
            .get("index")
            .and_then(Value::as_u64)
            .map_or(position, |i| i as usize);
        let vector = entry
            .get("embedding")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed("an entry has no `embedding` list"))?
            .iter()
            .map(|x| x.as_f64().map(|x| x as f32))
            .collect::<Option<Vec<f32>>>()
            .ok_or_else(|| malformed("an embedding holds a non-number"))?;
        let slot = out
            .get_mut(index)
            .ok_or_else(|| malformed("an index is out of range"))?;
        *slot = Some(vector);
    }
    out.into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| malformed("fewer embeddings than texts"))
}

/// An OpenAI-compatible embeddings provider over an [`HttpClient`].
pub struct OpenAiEmbedder<'a, H> {
    /// Sends the request (`fetch` on Workers).
    pub client: &'a H,
    /// Where and what to ask.
    pub config: &'a EmbeddingsConfig,
}

impl<H: HttpClient> Embedder for OpenAiEmbedder<'_, H> {
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let request = embeddings_request(self.config, texts);
        let mut response = self.client.post(&request).await?;
        if response.status != 200 {
            let body = read_prefix(&mut response.body, UPSTREAM_ERROR_BODY_MAX_BYTES).await?;
            let secret = self.config.api_key.as_deref();
            return Err(status_error(
                "the embeddings provider",
                response.status,
                &error_message(&body, secret),
                response.retry_after.as_deref(),
                "STORE_EMBEDDINGS_API_KEY",
                "STORE_EMBEDDINGS_BASE_URL and STORE_EMBEDDINGS_MODEL",
            ));
        }
        let body = read_prefix(&mut response.body, EMBEDDINGS_ANSWER_MAX_BYTES).await?;
        parse_embeddings(&body, texts.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_by_index_and_checked() {
        let body = br#"{"data":[{"index":1,"embedding":[0.5,1]},{"index":0,"embedding":[2,3]}]}"#;
        assert_eq!(
            parse_embeddings(body, 2).ok(),
            Some(vec![vec![2.0, 3.0], vec![0.5, 1.0]])
        );
        assert!(parse_embeddings(body, 3).is_err());
        assert!(parse_embeddings(b"{\"data\":[{\"embedding\":[\"x\"]}]}", 1).is_err());
        assert!(parse_embeddings(b"nope", 1).is_err());
    }

    #[test]
    fn the_request_names_model_texts_and_key() {
        let config = EmbeddingsConfig {
            base_url: "http://x/v1/".into(),
            model: "m".into(),
            api_key: Some("sk".into()),
        };
        let request = embeddings_request(&config, &["a".to_string()]);
        assert_eq!(request.url, "http://x/v1/embeddings");
        assert!(request
            .headers
            .contains(&("authorization".into(), "Bearer sk".into())));
        let body: Value = serde_json::from_str(&request.body).unwrap_or_default();
        assert_eq!(body["input"], json!(["a"]));
        assert_eq!(body["model"], "m");
    }
}

/// Which embedder the store uses (`STORE_EMBEDDINGS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbeddingsChoice {
    /// `local` (the default): [`LocalEmbedder`], in the worker, no network.
    Local,
    /// `openai`: an OpenAI-compatible `/embeddings` server (`STORE_EMBEDDINGS_BASE_URL`,
    /// `STORE_EMBEDDINGS_MODEL`, secret `STORE_EMBEDDINGS_API_KEY`).
    OpenAi(EmbeddingsConfig),
    /// `workers-ai`: Workers AI through the `AI` binding, `STORE_EMBEDDINGS_MODEL`
    /// (default [`WORKERS_AI_EMBEDDINGS_MODEL_DEFAULT`]).
    WorkersAi {
        /// The model (`@cf/baai/bge-small-en-v1.5`, ...).
        model: String,
    },
    /// `off`: nothing is embedded and a search's `query` is ignored, as in LangGraph's
    /// server without an `index` configured.
    Off,
}

/// Default `STORE_EMBEDDINGS_BASE_URL`.
pub const EMBEDDINGS_BASE_URL_DEFAULT: &str = "https://api.openai.com/v1";
/// Default `STORE_EMBEDDINGS_MODEL`.
pub const EMBEDDINGS_MODEL_DEFAULT: &str = "text-embedding-3-small";

impl EmbeddingsChoice {
    /// Reads the `STORE_EMBEDDINGS*` settings (`var` for plain variables, `secret` for
    /// the key); an unknown choice is an error naming the accepted ones.
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        secret: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let choice = var("STORE_EMBEDDINGS").filter(|v| !v.is_empty());
        match choice.as_deref() {
            None | Some("local") => Ok(EmbeddingsChoice::Local),
            Some("off") => Ok(EmbeddingsChoice::Off),
            Some("workers-ai") => Ok(EmbeddingsChoice::WorkersAi {
                model: var("STORE_EMBEDDINGS_MODEL")
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| WORKERS_AI_EMBEDDINGS_MODEL_DEFAULT.into()),
            }),
            Some("openai") => Ok(EmbeddingsChoice::OpenAi(EmbeddingsConfig {
                base_url: var("STORE_EMBEDDINGS_BASE_URL")
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| EMBEDDINGS_BASE_URL_DEFAULT.into()),
                model: var("STORE_EMBEDDINGS_MODEL")
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| EMBEDDINGS_MODEL_DEFAULT.into()),
                api_key: secret("STORE_EMBEDDINGS_API_KEY")
                    .or_else(|| var("STORE_EMBEDDINGS_API_KEY"))
                    .filter(|v| !v.is_empty()),
            })),
            Some(other) => Err(Error::backend(format_args!(
                "STORE_EMBEDDINGS={other} is not one of local, openai, workers-ai, off"
            ))),
        }
    }
}

#[cfg(test)]
mod choice_tests {
    use super::*;

    #[test]
    fn settings_choose_the_embedder() {
        let none = |_: &str| None;
        assert_eq!(
            EmbeddingsChoice::from_vars(none, none).ok(),
            Some(EmbeddingsChoice::Local)
        );
        let vars = |name: &str| match name {
            "STORE_EMBEDDINGS" => Some("openai".to_string()),
            "STORE_EMBEDDINGS_BASE_URL" => Some("http://127.0.0.1:9/v1".to_string()),
            _ => None,
        };
        let key = |name: &str| (name == "STORE_EMBEDDINGS_API_KEY").then(|| "sk".to_string());
        match EmbeddingsChoice::from_vars(vars, key) {
            Ok(EmbeddingsChoice::OpenAi(config)) => {
                assert_eq!(config.base_url, "http://127.0.0.1:9/v1");
                assert_eq!(config.model, EMBEDDINGS_MODEL_DEFAULT);
                assert_eq!(config.api_key.as_deref(), Some("sk"));
            }
            other => panic!("{other:?}"),
        }
        let ai = |name: &str| (name == "STORE_EMBEDDINGS").then(|| "workers-ai".to_string());
        assert_eq!(
            EmbeddingsChoice::from_vars(ai, none).ok(),
            Some(EmbeddingsChoice::WorkersAi {
                model: WORKERS_AI_EMBEDDINGS_MODEL_DEFAULT.into()
            })
        );
        let bad = |name: &str| (name == "STORE_EMBEDDINGS").then(|| "magic".to_string());
        assert!(EmbeddingsChoice::from_vars(bad, none).is_err());
    }
}
