//! CORS for browser apps on other origins (`ALLOWED_ORIGINS`, and local origins in
//! `DEV_MODE`).
//!
//! An origin on the list gets itself back in `access-control-allow-origin` (with
//! credentials allowed, so `Authorization` works); `*` on the list allows any origin but
//! never with credentials (and is refused by the configuration when credentials are
//! set). In `DEV_MODE`, browser origins on this machine (`localhost`, `127.0.0.1`,
//! `[::1]`, any port) are allowed too, so a local frontend (agent-chat-ui on :3000)
//! works with no configuration; never in a deployment. Origins not allowed get no CORS
//! headers, so browsers refuse them; a preflight from one is answered 403. Same-origin
//! use (the demo, served by the worker itself) needs none of this.

use super::{ApiError, HttpRequest, HttpResponse};

/// Methods the API uses.
const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
/// Request headers a browser app may send, when its preflight names none.
const ALLOW_HEADERS: &str = "content-type, authorization, x-api-key, x-auth-scheme, idempotency-key, if-match, x-expected-head, x-expected-turns, last-event-id, x-edge-memory-client";
/// Response headers a browser app may read.
const EXPOSE_HEADERS: &str = "x-thread-head, x-thread-turns, server-timing, content-location, location, x-edge-memory-ignored-input-keys, x-edge-memory-hint, x-edge-memory-turn";
/// How long a browser may cache a preflight, in seconds.
const PREFLIGHT_MAX_AGE_S: u32 = 600;
/// Longest `access-control-request-headers` echoed back: a bound on work for a request
/// that carries no credentials.
const REQUEST_HEADERS_MAX_LEN: usize = 1024;

/// Which browser origins may call the API.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CorsPolicy {
    /// `ALLOWED_ORIGINS`: exact origins, or `*`.
    pub origins: Vec<String>,
    /// Whether origins on this machine are allowed (`DEV_MODE` only).
    pub local_origins: bool,
}

impl CorsPolicy {
    /// The `access-control-allow-origin` value for `origin` and whether credentials go
    /// with it, if the origin is allowed.
    fn allow(&self, origin: &str) -> Option<(String, bool)> {
        if self.origins.iter().any(|a| a == origin)
            || (self.local_origins && is_local_origin(origin))
        {
            Some((origin.to_string(), true))
        } else if self.origins.iter().any(|a| a == "*") {
            // A wildcard never goes with credentials.
            Some(("*".to_string(), false))
        } else {
            None
        }
    }
}

/// Whether `origin` is a browser origin on this machine: `http(s)://localhost`,
/// `127.0.0.1` or `[::1]`, with any port.
pub fn is_local_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let (host, port) = match rest.strip_prefix("[::1]") {
        Some(port) => ("[::1]", port),
        None => rest.split_at(rest.find(':').unwrap_or(rest.len())),
    };
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|p| {
            !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
        });
    port_ok && matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

/// CORS headers for a response to `req`.
pub fn headers(req: &HttpRequest, policy: &CorsPolicy) -> Vec<(String, String)> {
    let Some(origin) = req.header("origin") else {
        return Vec::new();
    };
    let mut out = vec![("vary".to_string(), "Origin".to_string())];
    if let Some((value, credentials)) = policy.allow(origin) {
        out.push(("access-control-allow-origin".into(), value));
        if credentials {
            out.push(("access-control-allow-credentials".into(), "true".into()));
        }
        out.push((
            "access-control-expose-headers".into(),
            EXPOSE_HEADERS.into(),
        ));
    }
    out
}

/// The headers a preflight allows: those it asks for (a browser app of an allowed
/// origin may send any header, as LangGraph's server allows), or our default list.
fn allowed_request_headers(req: &HttpRequest) -> String {
    match req.header("access-control-request-headers") {
        Some(asked)
            if !asked.trim().is_empty()
                && asked.len() <= REQUEST_HEADERS_MAX_LEN
                && asked.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b',' | b' ')
                }) =>
        {
            asked.to_string()
        }
        _ => ALLOW_HEADERS.to_string(),
    }
}

/// The answer to an `OPTIONS` preflight.
pub fn preflight(req: &HttpRequest, policy: &CorsPolicy) -> HttpResponse {
    let origin = req.header("origin").unwrap_or("");
    if policy.allow(origin).is_none() {
        let mut response = HttpResponse::error(ApiError::Forbidden {
            reason: format!(
                "origin {origin:?} is not in ALLOWED_ORIGINS (local origins are allowed only with DEV_MODE=true)"
            ),
        });
        response.headers.push(("vary".into(), "Origin".into()));
        return response;
    }
    let mut response = HttpResponse::no_content();
    response.headers.extend([
        (
            "access-control-allow-methods".to_string(),
            ALLOW_METHODS.to_string(),
        ),
        (
            "access-control-allow-headers".to_string(),
            allowed_request_headers(req),
        ),
        (
            "access-control-max-age".to_string(),
            PREFLIGHT_MAX_AGE_S.to_string(),
        ),
    ]);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(origin: &str) -> HttpRequest {
        HttpRequest::empty("OPTIONS", "/threads").with_header("origin", origin)
    }

    fn get<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn listed_origins_get_themselves_back_with_credentials() {
        let allowed = CorsPolicy {
            origins: vec!["https://app.example".to_string()],
            local_origins: false,
        };
        let h = headers(&req("https://app.example"), &allowed);
        assert_eq!(
            get(&h, "access-control-allow-origin"),
            Some("https://app.example")
        );
        assert_eq!(get(&h, "access-control-allow-credentials"), Some("true"));
        let other = headers(&req("https://evil.example"), &allowed);
        assert_eq!(get(&other, "access-control-allow-origin"), None);
        assert_eq!(
            preflight(&req("https://evil.example"), &allowed).status,
            403
        );
        let ok = preflight(&req("https://app.example"), &allowed);
        assert_eq!(ok.status, 204);
        assert!(get(&ok.headers, "access-control-allow-headers")
            .unwrap()
            .contains("authorization"));
    }

    #[test]
    fn a_wildcard_never_allows_credentials() {
        let allowed = CorsPolicy {
            origins: vec!["*".to_string()],
            local_origins: false,
        };
        let h = headers(&req("https://any.example"), &allowed);
        assert_eq!(get(&h, "access-control-allow-origin"), Some("*"));
        assert_eq!(get(&h, "access-control-allow-credentials"), None);
        assert!(headers(&HttpRequest::empty("GET", "/ok"), &allowed).is_empty());
    }

    #[test]
    fn local_origins_only_in_dev_mode() {
        for local in [
            "http://localhost:3000",
            "http://127.0.0.1:3077",
            "http://[::1]:5173",
            "https://localhost",
        ] {
            assert!(is_local_origin(local), "{local}");
        }
        for remote in [
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example:80",
            "http://localhost:3000@evil.example",
            "null",
            "file://",
            "http://127.0.0.2:3000",
            "http://localhost:",
        ] {
            assert!(!is_local_origin(remote), "{remote}");
        }
        let dev = CorsPolicy {
            origins: Vec::new(),
            local_origins: true,
        };
        let asked = req("http://localhost:3000").with_header(
            "access-control-request-headers",
            "content-type,x-auth-scheme",
        );
        let ok = preflight(&asked, &dev);
        assert_eq!(ok.status, 204);
        assert_eq!(
            get(&ok.headers, "access-control-allow-headers"),
            Some("content-type,x-auth-scheme")
        );
        assert_eq!(
            get(&headers(&asked, &dev), "access-control-allow-origin"),
            Some("http://localhost:3000")
        );
        assert_eq!(preflight(&req("https://evil.example"), &dev).status, 403);
        let deployed = CorsPolicy::default();
        assert_eq!(
            preflight(&req("http://localhost:3000"), &deployed).status,
            403
        );
        assert!(get(&headers(&asked, &deployed), "access-control-allow-origin").is_none());
    }
}
