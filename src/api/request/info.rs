//! The routes answered from what the server knows of itself: `/ok` and `/info`.

use super::route::InfoRoute;
use super::*;

/// Answers an info route; nothing is stored or read.
pub(super) fn plan_info(route: InfoRoute, incoming: &Incoming<'_>) -> Result<Plan> {
    let value = match route {
        InfoRoute::Ok => json!({"ok": true}),
        InfoRoute::Info => info_json(incoming.info),
        // Scoped to the caller by `scope`; answered from the isolate's detectors.
        InfoRoute::Diagnostics => return Ok(Plan::Diagnostics { owner: None }),
    };
    Ok(Plan::Respond(HttpResponse::ok(value)))
}

/// `GET /info`.
fn info_json(info: &ServerInfo) -> Value {
    json!({
        "name": "edge-memory",
        "version": env!("CARGO_PKG_VERSION"),
        "storage_backend": info.backend,
        "model": info.model,
        "assistant_id": ASSISTANT_ID,
        "dev_mode": info.dev_mode,
        "auth": auth_json(&info.auth),
        "flags": {"assistants": true, "crons": false, "langsmith": false},
    })
}

/// How this server admits callers, as `/info` says it (never a secret).
fn auth_json(auth: &crate::api::auth::AuthSettings) -> Value {
    if let Some(reason) = &auth.not_configured {
        return json!({"mode": "not_configured", "detail": reason});
    }
    let mode = match (auth.api_keys.is_empty(), auth.jwt.is_some()) {
        (true, false) => "none",
        (false, false) => "api_key",
        (true, true) => "jwt",
        (false, true) => "jwt+api_key",
    };
    json!({ "mode": mode })
}

/// Whether `id` names the system assistant (its graph id or its UUID).
pub(super) fn is_our_assistant(id: &str) -> bool {
    id == ASSISTANT_ID || id.eq_ignore_ascii_case(ASSISTANT_UUID)
}
