//! Who is calling: API keys for servers, JWTs for browser users.
//!
//! - `x-api-key` matching one of `API_KEYS`: a service, which may use every thread.
//! - `Authorization: Bearer <JWT>` signed RS256/ES256 by an identity provider's keys
//!   (checked by the worker with WebCrypto before authentication, see
//!   [`HttpRequest::verified_token`](crate::api::HttpRequest::verified_token)) or HS256
//!   with `JWT_SECRET`: a user, named by the token's `sub`, who owns the threads it
//!   creates and sees no other.
//! - Neither configured (`AUTH_MODE=none`): anyone; server-made thread ids (random
//!   UUIDv4, 122 random bits) are then the only capability.
//!
//! Failures are 401 and never mention threads.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::ApiError;
use crate::error::Error;

/// Authentication fails with the API's errors (401, 503), not the core's.
type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Clock skew tolerated on `exp` and `nbf`, in seconds: clocks of token issuers and of
/// the edge differ by a little; a minute is the common allowance.
pub const JWT_LEEWAY_S: i64 = 60;

/// Longest accepted token: a bound on work done for an unauthenticated request.
pub const JWT_MAX_LEN: usize = 8 * 1024;

/// Shortest accepted HS256 key, in bytes: RFC 7518 §3.2 requires a key at least as long
/// as the hash (256 bits); a short shared secret can be brute-forced offline from one
/// token.
pub const JWT_HS256_MIN_KEY_BYTES: usize = 32;

/// Longest token lifetime accepted by default (`JWT_MAX_LIFETIME_S`), in seconds: a week.
/// Identity providers issue tokens for minutes to a day; a token valid for years is a
/// long-lived password that cannot be revoked.
pub const JWT_MAX_LIFETIME_S_DEFAULT: i64 = 7 * 24 * 3600;

/// Longest accepted `sub`: it is stored with every thread the user owns.
pub const JWT_SUB_MAX_LEN: usize = 256;

/// The metadata key that names a thread's owner (the `sub` of its creator).
pub const OWNER_KEY: &str = "owner";

/// Where the public keys of RS256/ES256 tokens come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `JWT_JWKS_URL`: the identity provider's JWKS, fetched and cached by the worker.
    Url(String),
    /// `JWT_PUBLIC_KEYS`: a JWKS (`{"keys": [...]}`) given in the configuration.
    Static(Vec<Value>),
}

/// How JWTs are checked.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct JwtSettings {
    /// `JWT_SECRET`: the HS256 key; empty when HS256 tokens are not accepted.
    pub secret: Vec<u8>,
    /// `JWT_JWKS_URL` or `JWT_PUBLIC_KEYS`: public keys for RS256/ES256 tokens, whose
    /// signatures the worker checks with WebCrypto before authentication.
    pub keys: Option<KeySource>,
    /// `JWT_ISSUER`: when set, `iss` must equal it.
    pub issuer: Option<String>,
    /// `JWT_AUDIENCE`: when set, `aud` must be or contain it.
    pub audience: Option<String>,
    /// `JWT_MAX_LIFETIME_S`: when set, `exp` may be at most this far after `iat` (or
    /// after now, for a token without `iat`).
    pub max_lifetime_s: Option<i64>,
}

impl std::fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSettings")
            .field("secret", &"***")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("max_lifetime_s", &self.max_lifetime_s)
            .field("keys", &self.keys)
            .finish()
    }
}

/// How callers authenticate (`AUTH_MODE` and its secrets).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthSettings {
    /// `API_KEYS`.
    pub api_keys: Vec<String>,
    /// `JWT_SECRET` & co., when users sign in with tokens.
    pub jwt: Option<JwtSettings>,
    /// Set when a deployment configured no authentication at all (no `AUTH_MODE`, no
    /// secrets, not `DEV_MODE`): every thread route is refused with this reason.
    pub not_configured: Option<String>,
}

impl AuthSettings {
    /// Whether requests need no credentials at all (`AUTH_MODE=none`).
    pub fn is_open(&self) -> bool {
        self.api_keys.is_empty() && self.jwt.is_none() && self.not_configured.is_none()
    }
}

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No authentication is configured.
    Anyone,
    /// A server holding an API key: every thread.
    Service,
    /// A user (the token's `sub`): only the threads it owns.
    User(String),
}

impl Caller {
    /// The owner this caller's thread calls are scoped to, if any.
    pub fn owner(&self) -> Option<&str> {
        match self {
            Caller::User(sub) => Some(sub),
            _ => None,
        }
    }
}

/// Authenticates a request from its `x-api-key` and `authorization` headers.
/// `verified_token` is a bearer token whose RS256/ES256 signature the worker has already
/// checked against the configured public keys (WebCrypto is asynchronous); any other
/// asymmetric token is refused.
pub fn authenticate(
    settings: &AuthSettings,
    (api_key, authorization): (Option<&str>, Option<&str>),
    now_ms: i64,
    verified_token: Option<&str>,
) -> Result<Caller> {
    if let Some(reason) = &settings.not_configured {
        return Err(ApiError::AuthNotConfigured {
            reason: reason.clone(),
        });
    }
    if settings.is_open() {
        return Ok(Caller::Anyone);
    }
    if let Some(given) = api_key {
        // Compare every key in full, in time independent of where they differ.
        let mut ok = false;
        for key in &settings.api_keys {
            ok |= constant_time_eq(given.as_bytes(), key.as_bytes());
        }
        if ok {
            return Ok(Caller::Service);
        }
    }
    if let (Some(jwt), Some(header)) = (&settings.jwt, authorization) {
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| unauthorized("the Authorization header is not `Bearer <token>`"))?;
        let token = token.trim_matches(|c: char| c == ' ' || c == '\t');
        return verify_jwt(token, jwt, now_ms.div_euclid(1000), verified_token).map(Caller::User);
    }
    Err(ApiError::Unauthorized)
}

fn unauthorized(reason: &str) -> ApiError {
    ApiError::InvalidToken {
        reason: reason.to_string(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A JWT taken apart, its signature not checked yet.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenParts {
    /// The header's `alg`.
    pub alg: String,
    /// The header's `kid`, naming the key that signed it.
    pub kid: Option<String>,
    /// What was signed: `header.payload`, as sent.
    pub signing_input: String,
    /// The signature's bytes.
    pub signature: Vec<u8>,
    /// The payload.
    pub claims: Value,
}

/// Takes a JWT apart (bounded in size); checks nothing about its signature.
pub fn parse_token(token: &str) -> Result<TokenParts> {
    if token.len() > JWT_MAX_LEN {
        return Err(unauthorized("the token is too long"));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(unauthorized("not a JWT (three dot-separated parts)"));
    };
    let header: Value = decode_part(header_b64)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| unauthorized("the signature is not base64url"))?;
    Ok(TokenParts {
        alg: header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        kid: header
            .get("kid")
            .and_then(Value::as_str)
            .map(str::to_string),
        signing_input: token[..header_b64.len() + 1 + payload_b64.len()].to_string(),
        signature,
        claims: decode_part(payload_b64)?,
    })
}

/// Verifies a JWT at `now_s` (seconds since the epoch); returns its `sub`.
///
/// `HS256` is checked with `JWT_SECRET`; `RS256`/`ES256` are accepted only as
/// `verified_token` (their signature checked by the worker against the configured public
/// keys). Never `none`, never another algorithm; `exp` is required; `nbf`, `iat`, the
/// lifetime and `iss`/`aud` when configured are checked.
pub fn verify_jwt(
    token: &str,
    settings: &JwtSettings,
    now_s: i64,
    verified_token: Option<&str>,
) -> Result<String> {
    let parts = parse_token(token)?;
    match parts.alg.as_str() {
        "HS256" if !settings.secret.is_empty() => {
            let mut mac = Hmac::<Sha256>::new_from_slice(&settings.secret)
                .map_err(|_| Error::backend("JWT_SECRET is not a usable HMAC key"))?;
            mac.update(parts.signing_input.as_bytes());
            mac.verify_slice(&parts.signature)
                .map_err(|_| unauthorized("bad signature"))?;
        }
        "RS256" | "ES256" if settings.keys.is_some() => {
            if verified_token != Some(token) {
                return Err(unauthorized(
                    "bad signature, or signed by a key this server does not know",
                ));
            }
        }
        _ => {
            return Err(unauthorized(&format!(
                "only {} tokens are accepted",
                accepted_algs(settings)
            )))
        }
    }
    verify_claims(&parts.claims, settings, now_s)
}

/// The algorithms `settings` accept, for error messages.
fn accepted_algs(settings: &JwtSettings) -> &'static str {
    match (settings.secret.is_empty(), settings.keys.is_some()) {
        (false, true) => "HS256, RS256 and ES256",
        (true, true) => "RS256 and ES256",
        _ => "HS256",
    }
}

/// Verifies an HS256 JWT at `now_s`; returns its `sub` (see [`verify_jwt`]).
pub fn verify_hs256(token: &str, settings: &JwtSettings, now_s: i64) -> Result<String> {
    verify_jwt(token, settings, now_s, None)
}

/// The checks on a token's claims once its signature holds; returns its `sub`.
fn verify_claims(claims: &Value, settings: &JwtSettings, now_s: i64) -> Result<String> {
    check_times(claims, settings, now_s)?;
    if let Some(issuer) = &settings.issuer {
        if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
            return Err(unauthorized("wrong issuer (`iss`)"));
        }
    }
    if let Some(audience) = &settings.audience {
        let ok = match claims.get("aud") {
            Some(Value::String(aud)) => aud == audience,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        };
        if !ok {
            return Err(unauthorized("wrong audience (`aud`)"));
        }
    }
    match claims.get("sub").and_then(Value::as_str) {
        Some(sub) if !sub.is_empty() && sub.len() <= JWT_SUB_MAX_LEN => Ok(sub.to_string()),
        _ => Err(unauthorized("the token has no usable `sub`")),
    }
}

/// `exp` (required), `nbf`, `iat` and the token's lifetime, with [`JWT_LEEWAY_S`].
fn check_times(claims: &Value, settings: &JwtSettings, now_s: i64) -> Result<()> {
    let number = |name: &str| claims.get(name).and_then(Value::as_f64).map(|v| v as i64);
    let Some(exp) = number("exp") else {
        return Err(unauthorized("the token has no `exp`"));
    };
    if now_s > exp.saturating_add(JWT_LEEWAY_S) {
        return Err(unauthorized("the token has expired"));
    }
    if number("nbf").is_some_and(|nbf| now_s.saturating_add(JWT_LEEWAY_S) < nbf) {
        return Err(unauthorized("the token is not valid yet (`nbf`)"));
    }
    let iat = number("iat");
    if iat.is_some_and(|iat| iat > now_s.saturating_add(JWT_LEEWAY_S)) {
        return Err(unauthorized("the token is issued in the future (`iat`)"));
    }
    if let Some(max) = settings.max_lifetime_s {
        if exp.saturating_sub(iat.unwrap_or(now_s)) > max {
            return Err(unauthorized(
                "the token lives longer than this server accepts (JWT_MAX_LIFETIME_S)",
            ));
        }
    }
    Ok(())
}

fn decode_part(part: &str) -> Result<Value> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| unauthorized("a token part is not base64url"))?;
    match serde_json::from_slice(&bytes) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(unauthorized("a token part is not a JSON object")),
    }
}

/// Signs `claims` as an HS256 JWT (tests, and servers that mint tokens for the demo).
pub fn sign_hs256(claims: &Value, secret: &[u8]) -> Result<String> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .map_err(|_| Error::backend("not a usable HMAC key"))?;
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    Ok(format!("{signing_input}.{signature}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn settings() -> JwtSettings {
        JwtSettings {
            secret: b"test-secret-of-some-length".to_vec(),
            issuer: Some("https://issuer.example".into()),
            audience: Some("edge-memory".into()),
            max_lifetime_s: Some(3600),
            keys: None,
        }
    }

    fn token(claims: Value) -> String {
        sign_hs256(&claims, &settings().secret).unwrap()
    }

    fn good() -> Value {
        json!({"sub": "alice", "exp": NOW + 600, "iss": "https://issuer.example", "aud": ["x", "edge-memory"]})
    }

    #[test]
    fn a_valid_token_names_its_user() {
        assert_eq!(
            verify_hs256(&token(good()), &settings(), NOW).unwrap(),
            "alice"
        );
        // jwt.io's HS256 example (secret "your-256-bit-secret"): the signature checks out,
        // so the token fails only for lacking `exp`.
        let known = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        let jwt_io = JwtSettings {
            secret: b"your-256-bit-secret".to_vec(),
            ..Default::default()
        };
        let err = verify_hs256(known, &jwt_io, NOW).unwrap_err();
        assert!(err.client_detail().contains("no `exp`"), "{err}");
        let bad = known.replace(".SflK", ".TflK");
        let err = verify_hs256(&bad, &jwt_io, NOW).unwrap_err();
        assert!(err.client_detail().contains("bad signature"), "{err}");
    }

    #[test]
    fn every_bad_token_is_refused() {
        let mut expired = good();
        expired["exp"] = json!(NOW - JWT_LEEWAY_S - 1);
        let mut early = good();
        early["nbf"] = json!(NOW + JWT_LEEWAY_S + 10);
        let mut no_exp = good();
        no_exp.as_object_mut().unwrap().remove("exp");
        let mut wrong_iss = good();
        wrong_iss["iss"] = json!("someone-else");
        let mut wrong_aud = good();
        wrong_aud["aud"] = json!("other-app");
        let mut future_iat = good();
        future_iat["iat"] = json!(NOW + JWT_LEEWAY_S + 10);
        let mut long_lived = good();
        long_lived["iat"] = json!(NOW);
        long_lived["exp"] = json!(NOW + 3601);
        let mut long_without_iat = good();
        long_without_iat["exp"] = json!(NOW + 3601);
        let mut no_sub = good();
        no_sub.as_object_mut().unwrap().remove("sub");
        let forged = sign_hs256(&good(), b"another-secret").unwrap();
        let valid = token(good());
        let (head, rest) = valid.split_once('.').unwrap();
        let none_alg = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            rest.rsplit_once('.').unwrap().0
        ) + ".";
        let tampered = format!(
            "{head}.{}.{}",
            URL_SAFE_NO_PAD.encode(json!({"sub": "mallory", "exp": NOW + 600}).to_string()),
            valid.rsplit('.').next().unwrap()
        );
        let cases = [
            ("expired", token(expired), "expired"),
            ("nbf", token(early), "not valid yet"),
            ("no exp", token(no_exp), "no `exp`"),
            ("iss", token(wrong_iss), "issuer"),
            ("aud", token(wrong_aud), "audience"),
            ("sub", token(no_sub), "sub"),
            ("iat in the future", token(future_iat), "`iat`"),
            ("lifetime", token(long_lived), "JWT_MAX_LIFETIME_S"),
            (
                "lifetime, no iat",
                token(long_without_iat),
                "JWT_MAX_LIFETIME_S",
            ),
            ("forged", forged, "bad signature"),
            ("alg none", none_alg, "HS256"),
            ("tampered", tampered, "bad signature"),
            ("garbage", "not-a-token".into(), "three"),
            ("long", "a".repeat(JWT_MAX_LEN + 1), "too long"),
        ];
        for (name, token, says) in cases {
            let err = verify_hs256(&token, &settings(), NOW).unwrap_err();
            assert_eq!(err.status(), 401, "{name}");
            assert!(err.client_detail().contains(says), "{name}: {err}");
        }
    }

    #[test]
    fn authenticate_picks_the_caller() {
        let settings = AuthSettings {
            api_keys: vec!["k1".into()],
            jwt: Some(settings()),
            not_configured: None,
        };
        let now_ms = NOW * 1000;
        assert_eq!(
            authenticate(&settings, (Some("k1"), None), now_ms, None).unwrap(),
            Caller::Service
        );
        let bearer = format!("Bearer {}", token(good()));
        assert_eq!(
            authenticate(&settings, (None, Some(&bearer)), now_ms, None).unwrap(),
            Caller::User("alice".into())
        );
        assert_eq!(
            authenticate(&settings, (Some("wrong"), None), now_ms, None)
                .unwrap_err()
                .status(),
            401
        );
        assert_eq!(
            authenticate(&settings, (None, None), now_ms, None)
                .unwrap_err()
                .status(),
            401
        );
        assert_eq!(
            authenticate(&AuthSettings::default(), (None, None), now_ms, None).unwrap(),
            Caller::Anyone
        );
    }

    /// An RS256/ES256 token counts only as the token the worker verified; its claims are
    /// checked as any token's; HS256 signed with a public key is refused (alg confusion).
    #[test]
    fn asymmetric_tokens_need_the_workers_verification() {
        let unsigned = |alg: &str, claims: Value| {
            let head = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": "k1"}).to_string());
            let body = URL_SAFE_NO_PAD.encode(claims.to_string());
            format!("{head}.{body}.{}", URL_SAFE_NO_PAD.encode(b"sig"))
        };
        let keys_only = JwtSettings {
            keys: Some(KeySource::Static(vec![json!({"kty": "RSA", "kid": "k1"})])),
            ..settings()
        };
        let keys_only = JwtSettings {
            secret: Vec::new(),
            ..keys_only
        };
        for alg in ["RS256", "ES256"] {
            let token = unsigned(alg, good());
            assert_eq!(
                verify_jwt(&token, &keys_only, NOW, Some(&token)).unwrap(),
                "alice"
            );
            let err = verify_jwt(&token, &keys_only, NOW, None).unwrap_err();
            assert!(err.client_detail().contains("bad signature"), "{err}");
            let other = unsigned(alg, json!({"sub": "mallory", "exp": NOW + 60}));
            assert!(verify_jwt(&other, &keys_only, NOW, Some(&token)).is_err());
            let mut expired = good();
            expired["exp"] = json!(NOW - 3600);
            let old = unsigned(alg, expired);
            assert!(verify_jwt(&old, &keys_only, NOW, Some(&old)).is_err());
            // Without configured keys, a verified marker means nothing.
            assert!(verify_jwt(&token, &settings(), NOW, Some(&token)).is_err());
        }
        // HS256 with the public key as secret: refused when no secret is configured.
        let confused = sign_hs256(&good(), b"-----BEGIN PUBLIC KEY-----").unwrap();
        let err = verify_jwt(&confused, &keys_only, NOW, Some(&confused)).unwrap_err();
        assert!(err.client_detail().contains("RS256 and ES256"), "{err}");
        assert!(verify_jwt(&unsigned("none", good()), &keys_only, NOW, None).is_err());
    }
}
