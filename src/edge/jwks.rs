//! RS256/ES256 bearer tokens, verified with WebCrypto against the identity provider's
//! public keys (`JWT_JWKS_URL`, fetched and cached; or `JWT_PUBLIC_KEYS`). Verification is
//! asynchronous, so it runs before authentication, which then accepts exactly the token
//! verified here (`HttpRequest::verified_token`) and checks its claims.

use std::cell::RefCell;

use js_sys::{Function, Object, Promise, Reflect, Uint8Array, JSON};
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{Fetch, Headers, Method};

use crate::api::auth::{parse_token, JwtSettings, KeySource};
use crate::config::parse_jwks;
use crate::runtime::{Clock, SystemClock};

/// How long fetched keys are used when the response names no `max-age`, in ms.
const JWKS_TTL_MS_DEFAULT: i64 = 5 * 60 * 1000;
/// The longest fetched keys are used, whatever `max-age` says, in ms.
const JWKS_TTL_MS_MAX: i64 = 24 * 3600 * 1000;
/// The soonest the keys are fetched again for an unknown `kid` (a key rotation), in ms: a
/// flood of tokens with made-up `kid`s costs one fetch per 10 s per isolate, not one each.
const JWKS_REFETCH_MIN_MS: i64 = 10 * 1000;
/// Largest JWKS document read, in bytes.
const JWKS_MAX_BYTES: usize = 64 * 1024;

/// The keys fetched from `JWT_JWKS_URL`, per isolate.
struct Cached {
    url: String,
    keys: Vec<Value>,
    fetched_ms: i64,
    expires_ms: i64,
}

thread_local! {
    static CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

/// The bearer token of `authorization` if it is RS256/ES256 and its signature holds
/// against a configured key; `None` otherwise (authentication then refuses it, or checks
/// it as HS256).
pub(super) async fn verify_bearer(
    authorization: Option<&str>,
    jwt: &JwtSettings,
) -> Option<String> {
    let source = jwt.keys.as_ref()?;
    let token = authorization?
        .strip_prefix("Bearer ")
        .or_else(|| authorization?.strip_prefix("bearer "))?
        .trim_matches(|c: char| c == ' ' || c == '\t');
    let parts = parse_token(token).ok()?;
    if parts.alg != "RS256" && parts.alg != "ES256" {
        return None;
    }
    let key = find_key(source, parts.kid.as_deref(), &parts.alg).await?;
    let valid = webcrypto_verify(
        &parts.alg,
        &key,
        &parts.signature,
        parts.signing_input.as_bytes(),
    )
    .await
    .unwrap_or(false);
    valid.then(|| token.to_string())
}

/// Whether `key` can verify `alg` (no algorithm confusion: RS256 only with RSA keys,
/// ES256 only with P-256 keys) and is named `kid` (any key of the type, when the token
/// names none and there is only one).
fn fits(key: &Value, kid: Option<&str>, alg: &str) -> bool {
    let kty = key.get("kty").and_then(Value::as_str);
    let typed = match alg {
        "RS256" => kty == Some("RSA"),
        "ES256" => kty == Some("EC") && key.get("crv").and_then(Value::as_str) == Some("P-256"),
        _ => false,
    };
    let named = kid.is_none_or(|kid| key.get("kid").and_then(Value::as_str) == Some(kid));
    typed
        && named
        && key
            .get("use")
            .and_then(Value::as_str)
            .is_none_or(|u| u == "sig")
}

fn pick(keys: &[Value], kid: Option<&str>, alg: &str) -> Option<Value> {
    let mut fitting = keys.iter().filter(|k| fits(k, kid, alg));
    let first = fitting.next()?.clone();
    // A token without `kid` must leave no doubt which key signed it.
    (kid.is_some() || fitting.next().is_none()).then_some(first)
}

async fn find_key(source: &KeySource, kid: Option<&str>, alg: &str) -> Option<Value> {
    let url = match source {
        KeySource::Static(keys) => return pick(keys, kid, alg),
        KeySource::Url(url) => url,
    };
    let now = SystemClock.now_ms();
    let (found, fetch_again) = CACHE.with(|cache| match &*cache.borrow() {
        Some(c) if &c.url == url && now < c.expires_ms => {
            let found = pick(&c.keys, kid, alg);
            let rotated = found.is_none() && now - c.fetched_ms >= JWKS_REFETCH_MIN_MS;
            (found, rotated)
        }
        _ => (None, true),
    });
    if found.is_some() || !fetch_again {
        return found;
    }
    match fetch_jwks(url).await {
        Ok((keys, ttl_ms)) => {
            let found = pick(&keys, kid, alg);
            CACHE.with(|cache| {
                *cache.borrow_mut() = Some(Cached {
                    url: url.clone(),
                    keys,
                    fetched_ms: now,
                    expires_ms: now + ttl_ms,
                })
            });
            found
        }
        Err(why) => {
            worker::console_error!("edge-memory: JWT_JWKS_URL could not be read: {why}");
            None
        }
    }
}

/// The keys at `url` and how long to use them (`Cache-Control: max-age`, bounded).
async fn fetch_jwks(url: &str) -> Result<(Vec<Value>, i64), String> {
    let headers = Headers::new();
    headers
        .set("accept", "application/json")
        .map_err(|e| e.to_string())?;
    let request = super::outgoing::outgoing_request(url, Method::Get, Some(&headers), None)
        .map_err(|e| e.to_string())?;
    let mut response = Fetch::Request(request)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status_code() != 200 {
        return Err(format!("answered {}", response.status_code()));
    }
    let max_age_ms = response
        .headers()
        .get("cache-control")
        .ok()
        .flatten()
        .and_then(|cc| {
            cc.split(',')
                .find_map(|d| d.trim().strip_prefix("max-age=")?.parse::<i64>().ok())
        })
        .map_or(JWKS_TTL_MS_DEFAULT, |s| s.saturating_mul(1000))
        .clamp(0, JWKS_TTL_MS_MAX);
    let text = response.text().await.map_err(|e| e.to_string())?;
    if text.len() > JWKS_MAX_BYTES {
        return Err(format!("the document is over {JWKS_MAX_BYTES} bytes"));
    }
    Ok((parse_jwks(&text)?, max_age_ms))
}

/// `crypto.subtle.importKey("jwk", ...)` then `verify(...)`.
async fn webcrypto_verify(
    alg: &str,
    key: &Value,
    signature: &[u8],
    data: &[u8],
) -> Result<bool, JsValue> {
    let (import_params, verify_params) = match alg {
        "RS256" => (
            r#"{"name": "RSASSA-PKCS1-v1_5", "hash": "SHA-256"}"#,
            r#"{"name": "RSASSA-PKCS1-v1_5"}"#,
        ),
        _ => (
            r#"{"name": "ECDSA", "namedCurve": "P-256"}"#,
            r#"{"name": "ECDSA", "hash": "SHA-256"}"#,
        ),
    };
    let crypto = Reflect::get(&js_sys::global(), &"crypto".into())?;
    let subtle = Reflect::get(&crypto, &"subtle".into())?;
    let call = |name: &str, args: &js_sys::Array| -> Result<Promise, JsValue> {
        let f: Function = Reflect::get(&subtle, &name.into())?.dyn_into()?;
        f.apply(&subtle, args)?.dyn_into()
    };
    let jwk: Object = JSON::parse(&key.to_string())?.dyn_into()?;
    let usages = js_sys::Array::of1(&"verify".into());
    let imported = JsFuture::from(call(
        "importKey",
        &js_sys::Array::of5(
            &"jwk".into(),
            &jwk,
            &JSON::parse(import_params)?,
            &false.into(),
            &usages,
        ),
    )?)
    .await?;
    let verified = JsFuture::from(call(
        "verify",
        &js_sys::Array::of4(
            &JSON::parse(verify_params)?,
            &imported,
            &Uint8Array::from(signature).into(),
            &Uint8Array::from(data).into(),
        ),
    )?)
    .await?;
    Ok(verified.as_bool() == Some(true))
}
