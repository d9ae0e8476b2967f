//! The routes answered from what the server knows of itself: `/ok`, `/info` and the one
//! assistant.

use super::fields::*;
use super::route::InfoRoute;
use super::*;

/// Answers an info route; nothing is stored or read.
pub(super) fn plan_info(route: InfoRoute<'_>, incoming: &Incoming<'_>) -> Result<Plan> {
    let value = match route {
        InfoRoute::Ok => json!({"ok": true}),
        InfoRoute::Info => info_json(incoming.info),
        InfoRoute::Assistant(id) if is_our_assistant(id) => assistant_json(),
        InfoRoute::Assistant(id) => {
            return Err(Error::NotFound {
                what: "assistant",
                id: id.to_string(),
            })
        }
        InfoRoute::AssistantSearch => search_assistants(&incoming.body()?)?,
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

/// `POST /assistants/search`: the one assistant, when the filter and the page hold it.
fn search_assistants(body: &Map<String, Value>) -> Result<Value> {
    let graph_ok = opt_str(body, "graph_id")?.is_none_or(|g| g == ASSISTANT_ID);
    let (limit, offset) = paging(body)?;
    let found = graph_ok && offset == 0 && limit > 0;
    Ok(Value::Array(if found {
        vec![assistant_json()]
    } else {
        vec![]
    }))
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

/// Whether `id` names this server's assistant (its graph id or its UUID).
pub(super) fn is_our_assistant(id: &str) -> bool {
    id == ASSISTANT_ID || id == ASSISTANT_UUID
}
