//! What an assistant changes about the model for its runs: the system prompt, the
//! provider's model, the temperature and the reply's token bound, read from the
//! assistant's `context` and `config.configurable` (LangGraph's two places for a graph's
//! run settings).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};
use crate::message::json_type_name;

/// Longest `model` name an assistant may set (provider model names are short).
pub const MODEL_NAME_MAX_LEN: usize = 256;

/// The model settings of an assistant; each `None` leaves the deployment's setting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelOverrides {
    /// `system_prompt`: shown first to the model instead of `SYSTEM_PROMPT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// `model`: the provider's model name instead of `OPENAI_MODEL` / `WORKERS_AI_MODEL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `temperature`: sent to the provider (it has no deployment default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<Number>,
    /// `max_tokens`: the reply's bound instead of `MODEL_MAX_TOKENS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

impl ModelOverrides {
    /// The keys read, in `context` first, then in `config.configurable`.
    pub const KEYS: [&'static str; 4] = ["system_prompt", "model", "temperature", "max_tokens"];

    /// Reads the settings of an assistant: each key from `context` if it is there,
    /// else from `config.configurable`. A key with a value of the wrong kind is an
    /// error naming where it is (`null` counts as absent).
    pub fn read(context: &Map<String, Value>, config: &Map<String, Value>) -> Result<Self> {
        let configurable = match config.get("configurable") {
            Some(Value::Object(c)) => Some(c),
            _ => None,
        };
        let pick = |key: &str| -> Option<(String, &Value)> {
            match context.get(key) {
                Some(value) if !value.is_null() => Some((format!("context.{key}"), value)),
                _ => configurable
                    .and_then(|c| c.get(key))
                    .filter(|v| !v.is_null())
                    .map(|v| (format!("config.configurable.{key}"), v)),
            }
        };
        Ok(ModelOverrides {
            system_prompt: pick("system_prompt")
                .map(|(field, v)| text(&field, v, usize::MAX))
                .transpose()?,
            model: pick("model")
                .map(|(field, v)| text(&field, v, MODEL_NAME_MAX_LEN))
                .transpose()?,
            temperature: pick("temperature")
                .map(|(field, v)| temperature(&field, v))
                .transpose()?,
            max_tokens: pick("max_tokens")
                .map(|(field, v)| max_tokens(&field, v))
                .transpose()?,
        })
    }

    /// Whether nothing is overridden.
    pub fn is_empty(&self) -> bool {
        *self == ModelOverrides::default()
    }
}

fn text(field: &str, value: &Value, max_len: usize) -> Result<String> {
    match value {
        Value::String(s) if s.len() > max_len => Err(Error::invalid(
            field,
            format!("must be at most {max_len} bytes, got {}", s.len()),
        )),
        Value::String(s) if max_len < usize::MAX && s.trim().is_empty() => {
            Err(Error::invalid(field, "must not be empty"))
        }
        Value::String(s) => Ok(s.clone()),
        other => Err(Error::invalid(
            field,
            format!("must be a string, got {}", json_type_name(other)),
        )),
    }
}

fn temperature(field: &str, value: &Value) -> Result<Number> {
    match value {
        Value::Number(n) if n.as_f64().is_some_and(|t| t.is_finite() && t >= 0.0) => Ok(n.clone()),
        Value::Number(n) => Err(Error::invalid(
            field,
            format!("must be a number ≥ 0, got {n}"),
        )),
        other => Err(Error::invalid(
            field,
            format!("must be a number, got {}", json_type_name(other)),
        )),
    }
}

fn max_tokens(field: &str, value: &Value) -> Result<u32> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .filter(|&n| n > 0)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| Error::invalid(field, format!("must be a whole number ≥ 1, got {n}"))),
        other => Err(Error::invalid(
            field,
            format!("must be a whole number, got {}", json_type_name(other)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn context_comes_before_configurable() {
        let read = ModelOverrides::read(
            &map(json!({"system_prompt": "From context", "model": null})),
            &map(
                json!({"configurable": {"system_prompt": "From config", "model": "m-1",
                "temperature": 0.2, "max_tokens": 64, "other": true}}),
            ),
        )
        .unwrap();
        assert_eq!(read.system_prompt.as_deref(), Some("From context"));
        assert_eq!(read.model.as_deref(), Some("m-1"));
        assert_eq!(read.temperature, Some(Number::from_f64(0.2).unwrap()));
        assert_eq!(read.max_tokens, Some(64));
        assert!(ModelOverrides::read(&Map::new(), &Map::new())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn wrong_kinds_name_their_field() {
        for (context, field) in [
            (json!({"system_prompt": 5}), "context.system_prompt"),
            (json!({"model": ""}), "context.model"),
            (json!({"temperature": "hot"}), "context.temperature"),
            (json!({"temperature": -1}), "context.temperature"),
            (json!({"max_tokens": 0}), "context.max_tokens"),
            (json!({"max_tokens": 1.5}), "context.max_tokens"),
        ] {
            let err = ModelOverrides::read(&map(context), &Map::new()).unwrap_err();
            assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
            assert!(err.to_string().contains(field), "{err}");
        }
        let err = ModelOverrides::read(
            &Map::new(),
            &map(json!({"configurable": {"max_tokens": "many"}})),
        )
        .unwrap_err();
        assert!(err.to_string().contains("config.configurable.max_tokens"));
    }
}
