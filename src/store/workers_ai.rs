//! Embeddings by Workers AI through the `AI` binding (`STORE_EMBEDDINGS=workers-ai`,
//! `STORE_EMBEDDINGS_MODEL`, default [`WORKERS_AI_EMBEDDINGS_MODEL_DEFAULT`]).
//!
//! `AI.run("@cf/baai/bge-base-en-v1.5", {text: [..]})` answers `{shape: [n, dims], data:
//! [[..], ..], pooling}`: one vector per text, in order. The BGE models take at most 100
//! texts a call; a put embeds at most [`STORE_INDEX_TEXTS_MAX`] (32) and a query one, so
//! one call always does. The binding cannot be called offline: the worker's tests reach
//! this code through a stand-in `AI` binding (a Worker serving `run` over RPC), and the
//! request and answer mapping are unit-tested here.
//!
//! [`STORE_INDEX_TEXTS_MAX`]: crate::limits::STORE_INDEX_TEXTS_MAX

use serde_json::{json, Value};

use super::openai::Embedder;
use crate::error::{Error, Result};

/// Default `STORE_EMBEDDINGS_MODEL` with `workers-ai`: BGE base, 768 dimensions.
pub const WORKERS_AI_EMBEDDINGS_MODEL_DEFAULT: &str = "@cf/baai/bge-base-en-v1.5";

/// `AI.run(model, input)` of a model that answers one JSON object (not a stream).
///
/// Not `Send`, like everything on Workers.
#[allow(async_fn_in_trait)]
pub trait AiJsonBinding {
    /// The model's answer, as JSON.
    async fn run_json(&self, model: &str, input: &Value) -> Result<Value>;
}

/// The `AI.run` input for `texts`.
pub fn embeddings_input(texts: &[String]) -> Value {
    json!({ "text": texts })
}

/// The vectors of an answer `{shape, data}` (also inside `result`, as the REST API wraps
/// it), checked against the number of texts asked.
pub fn parse_ai_embeddings(output: &Value, expected: usize) -> Result<Vec<Vec<f32>>> {
    let malformed = |what: &str| Error::Upstream {
        reason: format!("Workers AI's embeddings answer is malformed: {what}"),
    };
    let output = output.get("result").unwrap_or(output);
    let data = output
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("no `data` list"))?;
    if data.len() != expected {
        return Err(malformed(&format!(
            "{} vectors for {expected} texts",
            data.len()
        )));
    }
    data.iter()
        .map(|vector| {
            vector
                .as_array()
                .ok_or_else(|| malformed("a vector is not a list"))?
                .iter()
                .map(|x| x.as_f64().map(|x| x as f32))
                .collect::<Option<Vec<f32>>>()
                .ok_or_else(|| malformed("a vector holds a non-number"))
        })
        .collect()
}

/// A Workers AI embeddings model over an [`AiJsonBinding`].
pub struct WorkersAiEmbedder<A> {
    /// `STORE_EMBEDDINGS_MODEL`.
    pub model: String,
    /// The binding.
    pub ai: A,
}

impl<A: AiJsonBinding> Embedder for WorkersAiEmbedder<A> {
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let output = self
            .ai
            .run_json(&self.model, &embeddings_input(texts))
            .await?;
        parse_ai_embeddings(&output, texts.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Answers as `@cf/baai/bge-*` does, and keeps what it was asked.
    struct FakeAi {
        answer: Value,
        seen: RefCell<Vec<(String, Value)>>,
    }

    impl AiJsonBinding for FakeAi {
        async fn run_json(&self, model: &str, input: &Value) -> Result<Value> {
            self.seen
                .borrow_mut()
                .push((model.to_string(), input.clone()));
            Ok(self.answer.clone())
        }
    }

    fn embedder(answer: Value) -> WorkersAiEmbedder<FakeAi> {
        WorkersAiEmbedder {
            model: WORKERS_AI_EMBEDDINGS_MODEL_DEFAULT.into(),
            ai: FakeAi {
                answer,
                seen: RefCell::new(Vec::new()),
            },
        }
    }

    #[test]
    fn maps_the_texts_to_the_input_and_the_answer_to_vectors() {
        let answer = json!({"shape": [2, 3], "data": [[0.5, 0, 1], [1, 2, 3]], "pooling": "cls"});
        let ai = embedder(answer);
        let texts = ["tea".to_string(), "coffee".to_string()];
        let vectors = pollster::block_on(ai.embed(&texts)).unwrap_or_default();
        assert_eq!(vectors, vec![vec![0.5, 0.0, 1.0], vec![1.0, 2.0, 3.0]]);
        let seen = ai.ai.seen.borrow();
        assert_eq!(seen[0].0, "@cf/baai/bge-base-en-v1.5");
        assert_eq!(seen[0].1, json!({"text": ["tea", "coffee"]}));
        // Nothing to embed: no call.
        drop(seen);
        let none = pollster::block_on(ai.embed(&[])).unwrap_or_default();
        assert!(none.is_empty());
        assert_eq!(ai.ai.seen.borrow().len(), 1);
    }

    #[test]
    fn a_wrapped_answer_is_read_and_a_wrong_one_refused() {
        let wrapped = json!({"result": {"shape": [1, 2], "data": [[1, 2]]}, "success": true});
        assert_eq!(
            parse_ai_embeddings(&wrapped, 1).ok(),
            Some(vec![vec![1.0, 2.0]])
        );
        for (bad, expected) in [
            (json!({"data": [[1, 2]]}), 2),
            (json!({"shape": [1]}), 1),
            (json!({"data": [["x"]]}), 1),
            (json!({"data": [3]}), 1),
        ] {
            let err = parse_ai_embeddings(&bad, expected).unwrap_err();
            assert!(matches!(err, Error::Upstream { .. }), "{bad}: {err:?}");
        }
    }
}
