//! The worker's settings, read from its environment (wrangler.toml `[vars]` and
//! secrets). Plain Rust, so every rule is unit-tested natively; `edge/` only hands over
//! two lookups, one for vars and one for secrets.
//!
//! The rules that matter for safety live here:
//! - **Closed by default**: outside `DEV_MODE`, a deployment with no `AUTH_MODE` and no
//!   credentials refuses thread data (503 `auth_not_configured`); running open takes an
//!   explicit `AUTH_MODE=none`.
//! - A mode whose secret is missing (`jwt` without `JWT_SECRET`) is an error on every
//!   request, never an open door.
//! - `ALLOWED_ORIGINS=*` is refused when credentials are configured; in `DEV_MODE`, local
//!   browser origins (`localhost`, `127.0.0.1`, `[::1]`, any port) are allowed.

use crate::api::auth::KeySource;
use crate::api::auth::{
    AuthSettings, JwtSettings, JWT_HS256_MIN_KEY_BYTES, JWT_MAX_LIFETIME_S_DEFAULT,
};
use crate::api::cors::CorsPolicy;
use crate::chat::openai::{OpenAiConfig, OPENAI_BASE_URL_DEFAULT, OPENAI_MODEL_DEFAULT};
use crate::chat::upstream::{MODEL_DEADLINE_MS_DEFAULT, MODEL_TIMEOUT_MS_DEFAULT};
use crate::chat::workers_ai::WORKERS_AI_MODEL_DEFAULT;
use crate::chat::{ContextBudget, ContextSettings, ModelOverrides};
use crate::error::{Error, Result};

/// Where checkpoints are kept (`MEMORY_BACKEND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryBackend {
    /// `durable_object` (default): each thread's own SQLite-backed Durable Object.
    DurableObject,
    /// `kv`: Workers KV, turns still serialized by the thread's Durable Object.
    Kv,
    /// `memory`: the isolate's memory; forgets on restart (demonstrates the bug only).
    Memory,
}

impl MemoryBackend {
    /// The name `/info` reports.
    pub fn name(self) -> &'static str {
        match self {
            MemoryBackend::DurableObject => "durable_object",
            MemoryBackend::Kv => "kv",
            MemoryBackend::Memory => "memory",
        }
    }
}

/// Which model answers (`MODEL_PROVIDER`), with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelChoice {
    /// `memory-demo` (default): the built-in deterministic responder.
    Demo,
    /// `openai`: any OpenAI-compatible Chat Completions server.
    OpenAi(OpenAiConfig),
    /// `workers-ai`: the `AI` binding.
    WorkersAi {
        /// `WORKERS_AI_MODEL`.
        model: String,
        /// `MODEL_MAX_TOKENS`.
        max_tokens: Option<u32>,
        /// The sampling temperature, when an assistant sets one.
        temperature: Option<serde_json::Number>,
    },
}

impl ModelChoice {
    /// The model's name as `/info` reports it.
    pub fn name(&self) -> String {
        match self {
            ModelChoice::Demo => "memory-demo".to_string(),
            ModelChoice::OpenAi(config) => format!("openai:{}", config.model),
            ModelChoice::WorkersAi { model, .. } => format!("workers-ai:{model}"),
        }
    }
}

impl Settings {
    /// The settings for a run of an assistant: its `overrides` in place of the
    /// deployment's system prompt, model, temperature and reply bound (the built-in demo
    /// responder has none of the model's).
    pub fn with_overrides(&self, overrides: &ModelOverrides) -> Settings {
        let mut settings = self.clone();
        if let Some(prompt) = &overrides.system_prompt {
            settings.context.system_prompt = Some(prompt.clone());
        }
        match &mut settings.model {
            ModelChoice::Demo => {}
            ModelChoice::OpenAi(OpenAiConfig {
                model,
                max_tokens,
                temperature,
                ..
            })
            | ModelChoice::WorkersAi {
                model,
                max_tokens,
                temperature,
            } => {
                if let Some(name) = &overrides.model {
                    model.clone_from(name);
                }
                if overrides.max_tokens.is_some() {
                    *max_tokens = overrides.max_tokens;
                }
                if overrides.temperature.is_some() {
                    temperature.clone_from(&overrides.temperature);
                }
            }
        }
        settings
    }
}

/// Everything the worker reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `MEMORY_BACKEND`.
    pub backend: MemoryBackend,
    /// `DEV_MODE=true`: `/__dev/*` routes, open local use, local browser origins.
    pub dev_mode: bool,
    /// `AUTH_MODE` with `API_KEYS`, `JWT_SECRET`, `JWT_ISSUER`, `JWT_AUDIENCE`.
    pub auth: AuthSettings,
    /// `ALLOWED_ORIGINS`, and local origins in dev mode.
    pub cors: CorsPolicy,
    /// `MODEL_PROVIDER` and its settings.
    pub model: ModelChoice,
    /// `MODEL_TIMEOUT_MS`: the longest wait for the model's headers or next chunk.
    pub model_timeout_ms: u64,
    /// `MODEL_DEADLINE_MS`: the longest a whole reply may take.
    pub model_deadline_ms: u64,
    /// `SYSTEM_PROMPT`, `CONTEXT_MAX_MESSAGES`, `CONTEXT_MAX_CHARS`.
    pub context: ContextSettings,
}

/// Why a deployment with no auth configured refuses thread data.
pub const AUTH_NOT_CONFIGURED: &str = "no authentication is configured: set the API_KEYS and/or JWT_SECRET secrets (AUTH_MODE=api_key or jwt), or set AUTH_MODE=none to serve without authentication on purpose";

/// Reads the settings. `var` looks up a plain variable, `secret` a secret (which may
/// also be given as a plain variable locally); empty values count as unset. An invalid
/// setting is an error ([`Error::Backend`]: a 500 on every request, logged), never a
/// silent default that opens the worker up.
pub fn from_env(
    var: impl Fn(&str) -> Option<String>,
    secret: impl Fn(&str) -> Option<String>,
) -> Result<Settings> {
    let var = |name: &str| var(name).filter(|v| !v.is_empty());
    let secret = |name: &str| secret(name).filter(|v| !v.is_empty()).or_else(|| var(name));
    let number = |name: &str| -> Result<Option<u64>> {
        var(name)
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| Error::backend(format_args!("{name}={v:?} is not a whole number")))
            })
            .transpose()
    };
    let backend = match var("MEMORY_BACKEND").as_deref() {
        None | Some("durable_object") => MemoryBackend::DurableObject,
        Some("memory") => MemoryBackend::Memory,
        Some("kv") => MemoryBackend::Kv,
        Some(other) => {
            return Err(Error::backend(format_args!(
                "MEMORY_BACKEND={other:?} is not supported (durable_object, kv, memory)"
            )))
        }
    };
    let max_tokens = number("MODEL_MAX_TOKENS")?.map(|n| n.min(u32::MAX as u64) as u32);
    let model = model_choice(&var, &secret, max_tokens)?;
    let defaults = ContextBudget::default();
    let context = ContextSettings {
        system_prompt: var("SYSTEM_PROMPT"),
        budget: ContextBudget {
            max_messages: number("CONTEXT_MAX_MESSAGES")?
                .map_or(defaults.max_messages, |n| n as usize),
            max_chars: number("CONTEXT_MAX_CHARS")?.map_or(defaults.max_chars, |n| n as usize),
        },
    };
    let dev_mode = var("DEV_MODE").as_deref() == Some("true");
    let auth = auth_settings(&var, &secret, dev_mode)?;
    let origins = list(var("ALLOWED_ORIGINS"));
    if origins.iter().any(|o| o == "*") && !auth.is_open() {
        return Err(Error::backend(
            "ALLOWED_ORIGINS=* while credentials are configured: list the browser origins that may call the API",
        ));
    }
    Ok(Settings {
        backend,
        dev_mode,
        auth,
        cors: CorsPolicy {
            origins,
            local_origins: dev_mode,
        },
        model,
        model_timeout_ms: number("MODEL_TIMEOUT_MS")?.unwrap_or(MODEL_TIMEOUT_MS_DEFAULT),
        model_deadline_ms: number("MODEL_DEADLINE_MS")?.unwrap_or(MODEL_DEADLINE_MS_DEFAULT),
        context,
    })
}

/// A comma-separated list, trimmed, without empty entries.
fn list(raw: Option<String>) -> Vec<String> {
    raw.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

fn model_choice(
    var: &impl Fn(&str) -> Option<String>,
    secret: &impl Fn(&str) -> Option<String>,
    max_tokens: Option<u32>,
) -> Result<ModelChoice> {
    Ok(match var("MODEL_PROVIDER").as_deref() {
        None | Some("memory-demo") => ModelChoice::Demo,
        Some("openai") => ModelChoice::OpenAi(OpenAiConfig {
            base_url: var("OPENAI_BASE_URL").unwrap_or_else(|| OPENAI_BASE_URL_DEFAULT.into()),
            model: var("OPENAI_MODEL").unwrap_or_else(|| OPENAI_MODEL_DEFAULT.into()),
            api_key: secret("OPENAI_API_KEY"),
            max_tokens,
            temperature: None,
        }),
        Some("workers-ai") => ModelChoice::WorkersAi {
            model: var("WORKERS_AI_MODEL").unwrap_or_else(|| WORKERS_AI_MODEL_DEFAULT.into()),
            max_tokens,
            temperature: None,
        },
        Some(other) => {
            return Err(Error::backend(format_args!(
                "MODEL_PROVIDER={other:?} is not supported (memory-demo, openai, workers-ai)"
            )))
        }
    })
}

/// Most public keys a JWKS may hold: a bound on what is kept and searched per request.
pub const JWKS_KEYS_MAX: usize = 32;

/// `JWT_JWKS_URL` (https, or http for a local identity provider) or `JWT_PUBLIC_KEYS` (a
/// JWKS), validated: each key has a `kty` the server verifies (RSA, EC).
fn key_source(url: Option<String>, keys: Option<String>) -> Result<Option<KeySource>> {
    match (url, keys) {
        (Some(_), Some(_)) => Err(Error::backend(
            "set one of JWT_JWKS_URL and JWT_PUBLIC_KEYS, not both",
        )),
        (Some(url), None) if url.starts_with("https://") || url.starts_with("http://") => {
            Ok(Some(KeySource::Url(url)))
        }
        (Some(url), None) => Err(Error::backend(format_args!(
            "JWT_JWKS_URL={url:?} is not an http(s) URL"
        ))),
        (None, Some(text)) => parse_jwks(&text)
            .map(|keys| Some(KeySource::Static(keys)))
            .map_err(|why| Error::backend(format_args!("JWT_PUBLIC_KEYS: {why}"))),
        (None, None) => Ok(None),
    }
}

/// The keys of a JWKS document (`{"keys": [...]}`), each an RSA or EC public key.
pub fn parse_jwks(text: &str) -> std::result::Result<Vec<serde_json::Value>, String> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
    let keys = doc
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or("not a JWKS: expected {\"keys\": [...]}")?;
    if keys.is_empty() || keys.len() > JWKS_KEYS_MAX {
        return Err(format!(
            "expected 1 to {JWKS_KEYS_MAX} keys, got {}",
            keys.len()
        ));
    }
    for key in keys {
        match key.get("kty").and_then(serde_json::Value::as_str) {
            Some("RSA" | "EC") => {}
            other => return Err(format!("a key's kty is {other:?}; RSA and EC are verified")),
        }
    }
    Ok(keys.clone())
}

/// `AUTH_MODE` and its secrets. Fails closed: a mode whose secret is missing is an
/// error, and no mode with no secrets outside dev mode refuses thread data.
fn auth_settings(
    var: &impl Fn(&str) -> Option<String>,
    secret: &impl Fn(&str) -> Option<String>,
    dev_mode: bool,
) -> Result<AuthSettings> {
    let api_keys = list(secret("API_KEYS"));
    let max_lifetime_s = match var("JWT_MAX_LIFETIME_S") {
        None => JWT_MAX_LIFETIME_S_DEFAULT,
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| {
                Error::backend(format_args!(
                    "JWT_MAX_LIFETIME_S={raw:?} is not a positive number of seconds"
                ))
            })?,
    };
    let secret_key = match secret("JWT_SECRET") {
        Some(key) if key.len() < JWT_HS256_MIN_KEY_BYTES => {
            return Err(Error::backend(format_args!(
                "JWT_SECRET is {} bytes: HS256 needs a key of at least {JWT_HS256_MIN_KEY_BYTES} bytes (e.g. `openssl rand -base64 32`)",
                key.len()
            )))
        }
        other => other,
    };
    let keys = key_source(var("JWT_JWKS_URL"), var("JWT_PUBLIC_KEYS"))?;
    let jwt = (secret_key.is_some() || keys.is_some()).then(|| JwtSettings {
        secret: secret_key.map(String::into_bytes).unwrap_or_default(),
        keys,
        issuer: var("JWT_ISSUER"),
        audience: var("JWT_AUDIENCE"),
        max_lifetime_s: Some(max_lifetime_s),
    });
    let open = api_keys.is_empty() && jwt.is_none();
    match var("AUTH_MODE").as_deref() {
        Some("none") if !open => Err(Error::backend(
            "AUTH_MODE=none while API_KEYS or JWT_SECRET is set: remove them or pick api_key/jwt",
        )),
        Some("none") => Ok(AuthSettings::default()),
        Some("api_key") if api_keys.is_empty() => Err(Error::backend(
            "AUTH_MODE=api_key needs the API_KEYS secret",
        )),
        Some("api_key") => Ok(AuthSettings {
            api_keys,
            ..AuthSettings::default()
        }),
        Some("jwt") if jwt.is_none() => Err(Error::backend(
            "AUTH_MODE=jwt needs the JWT_SECRET secret (HS256) or JWT_JWKS_URL / JWT_PUBLIC_KEYS (RS256, ES256)",
        )),
        // Local development (`make dev`) stays open without a word from the user.
        None if open && dev_mode => Ok(AuthSettings::default()),
        None if open => Ok(AuthSettings {
            not_configured: Some(AUTH_NOT_CONFIGURED.to_string()),
            ..AuthSettings::default()
        }),
        None | Some("jwt") => Ok(AuthSettings {
            api_keys,
            jwt,
            ..AuthSettings::default()
        }),
        Some(other) => Err(Error::backend(format_args!(
            "AUTH_MODE={other:?} is not supported (none, api_key, jwt)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_env(|name| map.get(name).cloned(), |_| None)
    }

    #[test]
    fn a_deployment_without_auth_is_closed() {
        let s = settings(&[]).unwrap();
        assert!(!s.dev_mode);
        assert!(!s.auth.is_open());
        assert_eq!(s.auth.not_configured.as_deref(), Some(AUTH_NOT_CONFIGURED));
        assert!(!s.cors.local_origins);
    }

    #[test]
    fn dev_mode_and_explicit_none_are_open() {
        assert!(settings(&[("DEV_MODE", "true")]).unwrap().auth.is_open());
        let open = settings(&[("AUTH_MODE", "none")]).unwrap();
        assert!(open.auth.is_open());
        assert!(open.auth.not_configured.is_none());
    }

    #[test]
    fn a_mode_without_its_secret_is_an_error() {
        for vars in [
            &[("AUTH_MODE", "jwt")][..],
            &[("AUTH_MODE", "api_key")],
            &[("AUTH_MODE", "none"), ("API_KEYS", "k")],
            &[("AUTH_MODE", "basic")],
            &[("AUTH_MODE", "jwt"), ("DEV_MODE", "true")],
        ] {
            let err = settings(vars).unwrap_err();
            assert!(matches!(err, Error::Backend { .. }), "{vars:?}: {err:?}");
        }
    }

    #[test]
    fn secrets_pick_the_mode() {
        let keys = settings(&[("API_KEYS", "a, b,,")]).unwrap();
        assert_eq!(keys.auth.api_keys, vec!["a", "b"]);
        assert!(keys.auth.not_configured.is_none());
        let key = "k".repeat(JWT_HS256_MIN_KEY_BYTES);
        let jwt = settings(&[("JWT_SECRET", &key), ("JWT_ISSUER", "iss")]).unwrap();
        let jwt = jwt.auth.jwt.unwrap();
        assert_eq!(jwt.issuer.as_deref(), Some("iss"));
        assert_eq!(jwt.max_lifetime_s, Some(JWT_MAX_LIFETIME_S_DEFAULT));
        let short = settings(&[("JWT_SECRET", "short-secret")]).unwrap_err();
        assert!(short.to_string().contains("at least 32 bytes"), "{short}");
        assert!(settings(&[("JWT_SECRET", &key), ("JWT_MAX_LIFETIME_S", "-1")]).is_err());
    }

    #[test]
    fn public_keys_come_from_a_url_or_a_jwks() {
        let url =
            settings(&[("JWT_JWKS_URL", "https://idp.example/.well-known/jwks.json")]).unwrap();
        let jwt = url.auth.jwt.unwrap();
        assert!(jwt.secret.is_empty(), "no HS256 without a secret");
        assert!(matches!(jwt.keys, Some(KeySource::Url(_))));
        let jwks = r#"{"keys": [{"kty": "EC", "crv": "P-256", "kid": "a", "x": "x", "y": "y"}]}"#;
        let fixed = settings(&[("JWT_PUBLIC_KEYS", jwks), ("AUTH_MODE", "jwt")]).unwrap();
        assert!(matches!(fixed.auth.jwt.unwrap().keys, Some(KeySource::Static(k)) if k.len() == 1));
        for bad in [
            &[("JWT_JWKS_URL", "ftp://x")][..],
            &[("JWT_PUBLIC_KEYS", "{}")],
            &[(
                "JWT_PUBLIC_KEYS",
                r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#,
            )],
            &[
                ("JWT_PUBLIC_KEYS", jwks),
                ("JWT_JWKS_URL", "https://a.b/jwks"),
            ],
        ] {
            assert!(settings(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_wildcard_origin_is_refused_with_credentials() {
        let err = settings(&[("API_KEYS", "k"), ("ALLOWED_ORIGINS", "*")]).unwrap_err();
        assert!(err.to_string().contains("ALLOWED_ORIGINS"));
        let open = settings(&[("AUTH_MODE", "none"), ("ALLOWED_ORIGINS", "*")]).unwrap();
        assert_eq!(open.cors.origins, vec!["*"]);
    }

    #[test]
    fn dev_mode_allows_local_origins() {
        let dev = settings(&[("DEV_MODE", "true")]).unwrap();
        assert!(dev.cors.local_origins);
        let deployed = settings(&[("AUTH_MODE", "none"), ("ALLOWED_ORIGINS", "https://a.b")]);
        assert!(!deployed.unwrap().cors.local_origins);
    }

    #[test]
    fn numbers_and_choices_are_checked() {
        assert!(settings(&[("MODEL_TIMEOUT_MS", "soon")]).is_err());
        assert!(settings(&[("MEMORY_BACKEND", "redis")]).is_err());
        assert!(settings(&[("MODEL_PROVIDER", "magic")]).is_err());
        let s = settings(&[
            ("DEV_MODE", "true"),
            ("MEMORY_BACKEND", "kv"),
            ("MODEL_PROVIDER", "openai"),
            ("CONTEXT_MAX_MESSAGES", "7"),
        ])
        .unwrap();
        assert_eq!(s.backend, MemoryBackend::Kv);
        assert_eq!(s.model.name(), format!("openai:{OPENAI_MODEL_DEFAULT}"));
        assert_eq!(s.context.budget.max_messages, 7);
    }

    #[test]
    fn an_assistant_overrides_prompt_and_model_settings() {
        let base = settings(&[
            ("DEV_MODE", "true"),
            ("MODEL_PROVIDER", "openai"),
            ("SYSTEM_PROMPT", "Deployment prompt"),
            ("MODEL_MAX_TOKENS", "100"),
        ])
        .unwrap();
        assert_eq!(base.with_overrides(&ModelOverrides::default()), base);
        let overrides = ModelOverrides {
            system_prompt: Some("Assistant prompt".into()),
            model: Some("other-model".into()),
            temperature: serde_json::Number::from_f64(0.5),
            max_tokens: Some(7),
        };
        let run = base.with_overrides(&overrides);
        assert_eq!(
            run.context.system_prompt.as_deref(),
            Some("Assistant prompt")
        );
        let ModelChoice::OpenAi(config) = &run.model else {
            panic!("still openai")
        };
        assert_eq!(
            (config.model.as_str(), config.max_tokens),
            ("other-model", Some(7))
        );
        assert_eq!(config.temperature, overrides.temperature);
        assert_eq!(run.auth, base.auth);
    }
}
