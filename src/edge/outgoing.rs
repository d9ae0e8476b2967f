//! The requests this worker sends: to a model, a JWKS endpoint, a Durable Object.

use wasm_bindgen::JsValue;
use worker::{Headers, Method, Request};

/// A `method` request to `url` with `headers` and `body`, if given: what
/// `Request::new_with_init` builds from a `worker::RequestInit` with these fields
/// (redirects followed, no cache mode, no `cf` options). Built on
/// `web_sys::RequestInit` directly: `worker::RequestInit` brings the conversion of its
/// `cf` options to JavaScript, ~10 KB of wasm that no request here uses.
pub(super) fn outgoing_request(
    url: &str,
    method: Method,
    headers: Option<&Headers>,
    body: Option<&JsValue>,
) -> worker::Result<Request> {
    let init = web_sys::RequestInit::new();
    if let Some(headers) = headers {
        init.set_headers(headers.0.as_ref());
    }
    init.set_method(method.as_ref());
    init.set_redirect(web_sys::RequestRedirect::Follow);
    if let Some(body) = body {
        init.set_body(body);
    }
    web_sys::Request::new_with_str_and_init(url, &init)
        .map(Request::from)
        .map_err(|e| {
            worker::Error::JsError(
                e.as_string()
                    .unwrap_or_else(|| "invalid URL or options for Request".to_string()),
            )
        })
}
