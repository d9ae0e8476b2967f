//! An HTTP request as plain data: what the edge copies of a Worker request, and what
//! the native tests build.

use serde_json::Value;

/// An HTTP request, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without query string (`/threads/abc/state`).
    pub path: String,
    /// The query string, without `?` (`status=running&limit=10`); empty when none.
    pub query: String,
    /// The raw body.
    pub body: Vec<u8>,
    /// The headers this API reads (see [`READ_HEADERS`]), names lowercased.
    pub headers: Vec<(String, String)>,
    /// The bearer token whose RS256/ES256 signature the worker checked against the
    /// configured public keys (WebCrypto is asynchronous, authentication is not). Set
    /// only by the edge; never read from the request.
    pub verified_token: Option<String>,
}

/// The request headers the API reads; the edge copies only these.
pub const READ_HEADERS: [&str; 12] = [
    "x-api-key",
    "content-type",
    "authorization",
    "origin",
    "access-control-request-method",
    "access-control-request-headers",
    "idempotency-key",
    "if-match",
    "x-expected-head",
    "x-expected-turns",
    "last-event-id",
    // A browser's own id, which the memory doctor tells clients apart by.
    "x-edge-memory-client",
];

impl HttpRequest {
    /// A request with a JSON body.
    pub fn json(method: &str, path: &str, body: &Value) -> Self {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        HttpRequest {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            body: body.to_string().into_bytes(),
            headers: Vec::new(),
            verified_token: None,
        }
    }

    /// A request without a body.
    pub fn empty(method: &str, path: &str) -> Self {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        HttpRequest {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            body: Vec::new(),
            headers: Vec::new(),
            verified_token: None,
        }
    }

    /// The same request with one more header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// The same request with a query string (`a=1&b=2`).
    pub fn with_query(mut self, query: &str) -> Self {
        self.query = query.trim_start_matches('?').to_string();
        self
    }

    /// The first value of query parameter `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .find(|(key, _)| percent_decode(key) == name)
            .map(|(_, value)| percent_decode(value))
    }

    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte; invalid
/// escapes stay as they are.
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
