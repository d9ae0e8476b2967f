//! The assistant routes and their bodies: create, read, update (a new version), delete,
//! search and count, versions, the current version, and the graph's description. The
//! system assistant is answered here; every other id becomes an [`AssistantCall`].

use super::fields::*;
use super::info::is_our_assistant;
use super::route::AssistantsRoute;
use super::*;
use crate::api::assistants::{
    assistant_json, graph_json, schemas_json, system_assistant, AssistantCommand, AssistantView,
    GRAPH_ID,
};
use crate::api::directory::SEARCH_WINDOW_MAX;
use crate::chat::ModelOverrides;
use crate::checkpoint::assistants::{
    context_of, metadata_matches, Assistant, AssistantPatch, AssistantSearch, AssistantSortKey,
};
use crate::error::ConflictKind;
use crate::limits::ASSISTANT_TEXT_MAX_BYTES;

/// The fields of an `Assistant`, which `select` may name.
const ASSISTANT_FIELDS: [&str; 10] = [
    "assistant_id",
    "graph_id",
    "config",
    "context",
    "metadata",
    "name",
    "description",
    "version",
    "created_at",
    "updated_at",
];

/// An assistant id of a request: the system assistant, or a stored one's UUID.
pub(super) enum Named {
    /// `agent` or its UUID.
    System,
    /// A UUID, lowercased.
    Stored(String),
}

/// Reads an assistant id: the graph id `agent` or a UUID; anything else names no
/// assistant (404).
pub(super) fn assistant_named(raw: &str) -> Result<Named> {
    if is_our_assistant(raw) {
        return Ok(Named::System);
    }
    if is_uuid(raw) {
        return Ok(Named::Stored(raw.to_ascii_lowercase()));
    }
    Err(Error::NotFound {
        what: "assistant",
        id: raw.chars().take(100).collect(),
    })
}

/// `8-4-4-4-12` hexadecimal digits.
fn is_uuid(raw: &str) -> bool {
    raw.len() == 36
        && raw.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Plans an assistant route.
pub(super) fn plan_assistants(route: AssistantsRoute<'_>, incoming: &Incoming<'_>) -> Result<Plan> {
    let command = match route {
        AssistantsRoute::Create => return create(&incoming.body()?, incoming),
        AssistantsRoute::Search { count } => {
            let body = incoming.body()?;
            let query = parse_search(&body, count)?;
            if count {
                AssistantCommand::Count { query }
            } else {
                let select = parse_select(&body)?;
                AssistantCommand::Search { query, select }
            }
        }
        AssistantsRoute::Get { id, view } => match assistant_named(id)? {
            Named::System => {
                let system = system_assistant();
                let value = match view {
                    AssistantView::Graph => graph_json(),
                    AssistantView::Schemas => schemas_json(GRAPH_ID),
                    AssistantView::Subgraphs => json!({}),
                    _ => assistant_json(&system),
                };
                return Ok(Plan::Respond(HttpResponse::ok(value)));
            }
            Named::Stored(assistant_id) => AssistantCommand::Get { assistant_id, view },
        },
        AssistantsRoute::Patch(id) => {
            let assistant_id = stored(id)?;
            let patch = parse_patch(&incoming.body()?)?;
            AssistantCommand::Patch {
                assistant_id,
                patch,
            }
        }
        AssistantsRoute::Delete(id) => AssistantCommand::Delete {
            assistant_id: stored(id)?,
            delete_threads: delete_threads(incoming.req)?,
        },
        AssistantsRoute::Versions(id) => {
            let named = assistant_named(id)?;
            let body = incoming.body()?;
            let metadata = opt_metadata(&body, "metadata")?;
            let (limit, offset) = paging(&body)?;
            match named {
                Named::System => {
                    return Ok(Plan::Respond(system_versions(&metadata, limit, offset)))
                }
                Named::Stored(assistant_id) => AssistantCommand::Versions {
                    assistant_id,
                    metadata,
                    limit,
                    offset,
                },
            }
        }
        AssistantsRoute::Latest(id) => {
            let assistant_id = stored(id)?;
            let version = match incoming.body()?.get("version") {
                Some(Value::Number(n)) => n.as_i64().filter(|v| *v >= 1),
                _ => None,
            }
            .ok_or_else(|| Error::invalid("version", "must be a whole number ≥ 1"))?;
            AssistantCommand::SetLatest {
                assistant_id,
                version,
            }
        }
    };
    Ok(assistants_call(command))
}

fn assistants_call(command: AssistantCommand) -> Plan {
    Plan::Assistants(AssistantCall {
        command,
        owner: None,
    })
}

/// A stored assistant's id: the system assistant cannot be changed.
fn stored(raw: &str) -> Result<String> {
    match assistant_named(raw)? {
        Named::Stored(id) => Ok(id),
        Named::System => Err(Error::Unsupported {
            what: format!(
                "changing the system assistant {ASSISTANT_UUID} (graph `{GRAPH_ID}`): it is part of the deployment; create an assistant of graph `{GRAPH_ID}` instead"
            ),
        }),
    }
}

/// The system assistant's one version, if it passes the filter and the page.
fn system_versions(metadata: &Map<String, Value>, limit: usize, offset: usize) -> HttpResponse {
    let system = system_assistant();
    let mut version = assistant_json(&system);
    if let Value::Object(fields) = &mut version {
        fields.remove("updated_at");
    }
    let shown = metadata_matches(metadata, &system.metadata) && offset == 0 && limit > 0;
    HttpResponse::ok(Value::Array(if shown { vec![version] } else { vec![] }))
}

/// `?delete_threads=true|false` (as the JS SDK sends it; `True` from Python's).
fn delete_threads(req: &HttpRequest) -> Result<bool> {
    match req.query_param("delete_threads").as_deref() {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") || v == "0" || v.is_empty() => Ok(false),
        Some(other) => Err(Error::invalid(
            "delete_threads",
            format!("must be true or false, got {other:?}"),
        )),
    }
}

/// `POST /assistants`.
fn create(body: &Map<String, Value>, incoming: &Incoming<'_>) -> Result<Plan> {
    let graph_id = graph(body)?.ok_or_else(|| Error::invalid("graph_id", "is required"))?;
    let if_exists = match opt_str(body, "if_exists")?.as_deref() {
        None | Some("raise") => IfExists::Raise,
        Some("do_nothing") => IfExists::DoNothing,
        Some(other) => {
            return Err(Error::invalid(
                "if_exists",
                format!("must be \"raise\" or \"do_nothing\", got {other:?}"),
            ))
        }
    };
    let assistant_id = match opt_str(body, "assistant_id")? {
        None => crate::runtime::uuid_v4(incoming.entropy),
        Some(raw) if is_uuid(&raw) => raw.to_ascii_lowercase(),
        Some(raw) => {
            return Err(Error::invalid(
                "assistant_id",
                format!("must be a UUID, got {raw:?}"),
            ))
        }
    };
    let config = config(body)?;
    let context = match body.get("context") {
        None | Some(Value::Null) => context_of(&config),
        Some(_) => opt_metadata(body, "context")?,
    };
    ModelOverrides::read(&context, &config)?;
    let assistant = Assistant {
        assistant_id,
        graph_id,
        config,
        context,
        metadata: opt_metadata(body, "metadata")?,
        name: text(body, "name")?.unwrap_or_else(|| "Untitled".into()),
        description: text(body, "description")?,
        version: 1,
        created_at_ms: incoming.now_ms,
        updated_at_ms: incoming.now_ms,
    };
    if assistant.assistant_id == ASSISTANT_UUID {
        return match if_exists {
            IfExists::DoNothing => Ok(Plan::Respond(HttpResponse::ok(assistant_json(
                &system_assistant(),
            )))),
            IfExists::Raise => Err(Error::Conflict {
                kind: ConflictKind::AssistantExists,
                reason: format!("Assistant {ASSISTANT_UUID} already exists"),
            }),
        };
    }
    Ok(assistants_call(AssistantCommand::Create {
        assistant,
        if_exists,
    }))
}

/// `PATCH /assistants/{id}`: the fields given.
fn parse_patch(body: &Map<String, Value>) -> Result<AssistantPatch> {
    let given = |key: &str| !matches!(body.get(key), None | Some(Value::Null));
    let config = given("config").then(|| config(body)).transpose()?;
    let context = given("context")
        .then(|| opt_metadata(body, "context"))
        .transpose()?;
    let empty = Map::new();
    let derived = config.as_ref().map(context_of);
    let effective_context = context.as_ref().or(derived.as_ref()).unwrap_or(&empty);
    ModelOverrides::read(effective_context, config.as_ref().unwrap_or(&empty))?;
    Ok(AssistantPatch {
        graph_id: graph(body)?,
        config,
        context,
        metadata: given("metadata")
            .then(|| opt_metadata(body, "metadata"))
            .transpose()?,
        name: text(body, "name")?,
        description: text(body, "description")?,
    })
}

/// `graph_id`, which must name our one graph (404 otherwise, as LangGraph answers).
fn graph(body: &Map<String, Value>) -> Result<Option<String>> {
    match opt_str(body, "graph_id")? {
        Some(graph_id) if graph_id != GRAPH_ID => Err(Error::NotFound {
            what: "graph",
            id: graph_id.chars().take(100).collect(),
        }),
        graph_id => Ok(graph_id),
    }
}

/// `config`: an object whose `configurable`, if any, is an object too.
fn config(body: &Map<String, Value>) -> Result<Map<String, Value>> {
    let config = opt_metadata(body, "config")?;
    match config.get("configurable") {
        None | Some(Value::Null | Value::Object(_)) => Ok(config),
        Some(other) => Err(Error::invalid(
            "config.configurable",
            format!("must be an object, got {}", json_type_name(other)),
        )),
    }
}

/// A short text field (`name`, `description`).
fn text(body: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match opt_str(body, key)? {
        Some(text) if text.len() > ASSISTANT_TEXT_MAX_BYTES => Err(Error::TooLarge {
            what: format!("{key} (bytes)"),
            size: text.len(),
            limit: ASSISTANT_TEXT_MAX_BYTES,
        }),
        text => Ok(text),
    }
}

/// The body of `POST /assistants/search` (and `/count`, which ignores the paging).
fn parse_search(body: &Map<String, Value>, count: bool) -> Result<AssistantSearch> {
    let (limit, offset) = paging(body)?;
    if !count && offset.saturating_add(limit) > SEARCH_WINDOW_MAX {
        return Err(Error::invalid(
            "offset",
            format!("offset + limit may be at most {SEARCH_WINDOW_MAX}"),
        ));
    }
    let sort_by = match opt_str(body, "sort_by")?.as_deref() {
        None | Some("created_at") => AssistantSortKey::CreatedAt,
        Some("updated_at") => AssistantSortKey::UpdatedAt,
        Some("assistant_id") => AssistantSortKey::AssistantId,
        Some("graph_id") => AssistantSortKey::GraphId,
        Some("name") => AssistantSortKey::Name,
        Some(other) => {
            return Err(Error::invalid(
                "sort_by",
                format!(
                    "must be assistant_id, graph_id, name, created_at or updated_at, got {other:?}"
                ),
            ))
        }
    };
    let ascending = ascending(body)?;
    Ok(AssistantSearch {
        graph_id: opt_str(body, "graph_id")?,
        name: opt_str(body, "name")?,
        metadata: opt_metadata(body, "metadata")?,
        sort_by,
        ascending,
        limit,
        offset,
    })
}

/// `select`: fields of `Assistant`.
fn parse_select(body: &Map<String, Value>) -> Result<Option<Vec<String>>> {
    let items = match body.get("select") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(Error::invalid(
                "select",
                format!("must be a list, got {}", json_type_name(other)),
            ))
        }
    };
    items
        .iter()
        .map(|item| match item.as_str() {
            Some(field) if ASSISTANT_FIELDS.contains(&field) => Ok(field.to_string()),
            _ => Err(Error::invalid(
                "select",
                format!(
                    "must name fields of an assistant ({}), got {item}",
                    ASSISTANT_FIELDS.join(", ")
                ),
            )),
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}
