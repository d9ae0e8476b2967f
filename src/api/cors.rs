//! CORS for browser apps on other origins (`ALLOWED_ORIGINS`).
//!
//! An origin on the list gets itself back in `access-control-allow-origin` (with
//! credentials allowed, so cookies or `Authorization` work); `*` on the list allows any
//! origin but never with credentials. Origins not on the list get no CORS headers, so
//! browsers refuse them; a preflight from one is answered 403. Same-origin use (the
//! demo, served by the worker itself) needs none of this.

use super::{HttpRequest, HttpResponse};
use crate::error::Error;

/// Methods the API uses.
const ALLOW_METHODS: &str = "GET, POST, PATCH, DELETE, OPTIONS";
/// Request headers a browser app may send.
const ALLOW_HEADERS: &str = "content-type, authorization, x-api-key, idempotency-key, if-match, x-expected-head, x-expected-turns";
/// Response headers a browser app may read.
const EXPOSE_HEADERS: &str = "x-thread-head, x-thread-turns, server-timing";
/// How long a browser may cache a preflight, in seconds.
const PREFLIGHT_MAX_AGE_S: u32 = 600;

/// The `access-control-allow-origin` value for `origin`, if it is allowed.
fn allow_origin(origin: &str, allowed: &[String]) -> Option<(String, bool)> {
    if allowed.iter().any(|a| a == origin) {
        Some((origin.to_string(), true))
    } else if allowed.iter().any(|a| a == "*") {
        // A wildcard never goes with credentials.
        Some(("*".to_string(), false))
    } else {
        None
    }
}

/// CORS headers for a response to `req`.
pub fn headers(req: &HttpRequest, allowed: &[String]) -> Vec<(String, String)> {
    let Some(origin) = req.header("origin") else {
        return Vec::new();
    };
    let mut out = vec![("vary".to_string(), "Origin".to_string())];
    if let Some((value, credentials)) = allow_origin(origin, allowed) {
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

/// The answer to an `OPTIONS` preflight.
pub fn preflight(req: &HttpRequest, allowed: &[String]) -> HttpResponse {
    let origin = req.header("origin").unwrap_or("");
    if allow_origin(origin, allowed).is_none() {
        let mut response = HttpResponse::error(&Error::Forbidden {
            reason: format!("origin {origin:?} is not in ALLOWED_ORIGINS"),
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
            ALLOW_HEADERS.to_string(),
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
        let allowed = vec!["https://app.example".to_string()];
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
        let allowed = vec!["*".to_string()];
        let h = headers(&req("https://any.example"), &allowed);
        assert_eq!(get(&h, "access-control-allow-origin"), Some("*"));
        assert_eq!(get(&h, "access-control-allow-credentials"), None);
        assert!(headers(&HttpRequest::empty("GET", "/ok"), &allowed).is_empty());
    }
}
