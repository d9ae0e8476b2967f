//! Assistants: LangGraph's named, versioned configurations of the graph, and what a run
//! of one changes (its [`ModelOverrides`]).
//!
//! Each owner's assistants live in one assistants object (a JWT user's own, one shared
//! by services and open servers), which [`execute`]s [`AssistantCall`]s on its SQLite
//! ([`SqlAssistants`]). The system assistant of graph `agent` is part of the build: it is
//! answered without storage, listed by every search, and cannot be changed. A run never
//! calls the assistants object on every turn: the worker resolves the run's assistant
//! from a short-lived isolate cache ([`cache`]) and sends its settings with the run.

pub mod cache;
mod shapes;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::auth::OWNER_KEY;
use super::request::IfExists;
use super::{Backend, Body, HttpResponse, RunRequest, ThreadCall, ThreadCommand};
use crate::chat::ModelOverrides;
use crate::checkpoint::assistants::{
    Assistant, AssistantPatch, AssistantSearch, Created, SqlAssistants,
};
use crate::checkpoint::sql::SqlExec;
use crate::checkpoint::ThreadSearch;
use crate::error::{ConflictKind, Error, Result};
use crate::thread::ThreadId;

pub use shapes::{assistant_json, graph_json, schemas_json, system_assistant};

/// The one graph this server runs.
pub const GRAPH_ID: &str = "agent";

/// Threads one `DELETE /assistants/{id}?delete_threads=true` deletes at most, in pages
/// of [`DELETE_THREADS_PAGE`]: each costs subrequests (its search's re-check and its
/// delete), and a request may make only so many (1,000 on the Paid plan). More is a
/// 503 asking to call again; the assistant stays until its threads are gone.
pub const DELETE_THREADS_MAX: usize = 400;

/// Threads found and deleted per round of a `delete_threads`.
pub const DELETE_THREADS_PAGE: usize = 100;

/// A call on one owner's assistants: what the worker sends to their object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssistantCall {
    /// What to do.
    pub command: AssistantCommand,
    /// Whose assistants (a JWT's `sub`); `None` for services and open servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// A command on assistants; every id is a stored assistant's (the system assistant is
/// answered before a call is made).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssistantCommand {
    /// `POST /assistants`.
    Create {
        /// The assistant (version 1, timestamps of the request).
        assistant: Assistant,
        /// Behaviour on a taken id.
        if_exists: IfExists,
    },
    /// `GET /assistants/{id}` and the routes that describe its graph.
    Get {
        /// The assistant.
        assistant_id: String,
        /// What to answer about it.
        view: AssistantView,
    },
    /// `PATCH /assistants/{id}`: a new version.
    Patch {
        /// The assistant.
        assistant_id: String,
        /// The changes.
        patch: AssistantPatch,
    },
    /// `DELETE /assistants/{id}`.
    Delete {
        /// The assistant.
        assistant_id: String,
        /// `?delete_threads=true`: its threads too (done by [`carry_out`] before the call).
        delete_threads: bool,
    },
    /// `POST /assistants/search`.
    Search {
        /// Filters, order and page.
        query: AssistantSearch,
        /// `select`: only these fields of each assistant.
        select: Option<Vec<String>>,
    },
    /// `POST /assistants/count`.
    Count {
        /// Filters.
        query: AssistantSearch,
    },
    /// `POST /assistants/{id}/versions`.
    Versions {
        /// The assistant.
        assistant_id: String,
        /// Only versions whose metadata has these key/values.
        metadata: Map<String, Value>,
        /// At most this many.
        limit: usize,
        /// Skip this many first.
        offset: usize,
    },
    /// `POST /assistants/{id}/latest`.
    SetLatest {
        /// The assistant.
        assistant_id: String,
        /// The version to make current.
        version: i64,
    },
}

/// What a [`AssistantCommand::Get`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssistantView {
    /// The `Assistant`.
    Assistant,
    /// `/graph`.
    Graph,
    /// `/schemas`.
    Schemas,
    /// `/subgraphs`: none.
    Subgraphs,
    /// The stored record, for the worker's run cache (never an HTTP answer).
    Stored,
}

impl AssistantCall {
    /// The id of the assistant this call changes, if it changes one (the run cache
    /// forgets it).
    pub fn changes(&self) -> Option<&str> {
        match &self.command {
            AssistantCommand::Patch { assistant_id, .. }
            | AssistantCommand::Delete { assistant_id, .. }
            | AssistantCommand::SetLatest { assistant_id, .. } => Some(assistant_id),
            _ => None,
        }
    }

    /// The name of the object that keeps these assistants. Thread ids cannot contain
    /// `/`, so no thread's object can have it.
    pub fn object_name(owner: Option<&str>) -> String {
        match owner {
            Some(owner) => format!("asst/u/{owner}"),
            None => "asst/s".to_string(),
        }
    }
}

/// Carries out `call` on `store` at `now_ms`.
pub fn execute<E: SqlExec>(
    store: &SqlAssistants<E>,
    call: AssistantCall,
    now_ms: i64,
) -> HttpResponse {
    let owner = call.owner.unwrap_or_default();
    execute_inner(store, &owner, call.command, now_ms).into()
}

fn execute_inner<E: SqlExec>(
    store: &SqlAssistants<E>,
    owner: &str,
    command: AssistantCommand,
    now_ms: i64,
) -> Result<HttpResponse> {
    let ok = |a: &Assistant| Ok(HttpResponse::ok(assistant_json(a)));
    match command {
        AssistantCommand::Create {
            assistant,
            if_exists,
        } => match store.create(owner, &assistant)? {
            Created::New(a) => ok(&a),
            Created::Existing(a) if if_exists == IfExists::DoNothing => ok(&a),
            Created::Existing(a) => Err(Error::Conflict {
                kind: ConflictKind::AssistantExists,
                reason: format!("Assistant {} already exists", a.assistant_id),
            }),
        },
        AssistantCommand::Get { assistant_id, view } => {
            let assistant = store.get(owner, &assistant_id)?;
            Ok(HttpResponse::ok(view_json(&assistant, view)?))
        }
        AssistantCommand::Patch {
            assistant_id,
            patch,
        } => ok(&store.update(owner, &assistant_id, &patch, now_ms)?),
        AssistantCommand::Delete { assistant_id, .. } => {
            store.delete(owner, &assistant_id)?;
            Ok(HttpResponse::no_content())
        }
        AssistantCommand::Search { query, select } => {
            let mut window = query.clone();
            window.limit = query.offset.saturating_add(query.limit);
            window.offset = 0;
            let stored = store.search(owner, &window)?;
            search_answer(&query, stored, select.as_deref())
        }
        AssistantCommand::Count { query } => {
            let system = usize::from(query.matches(&system_assistant()));
            Ok(HttpResponse::ok(json!(
                store.count(owner, &query)? + system
            )))
        }
        AssistantCommand::Versions {
            assistant_id,
            metadata,
            limit,
            offset,
        } => {
            let versions = store.versions(owner, &assistant_id, &metadata, (limit, offset))?;
            Ok(HttpResponse::ok(Value::Array(
                versions.iter().map(shapes::version_json).collect(),
            )))
        }
        AssistantCommand::SetLatest {
            assistant_id,
            version,
        } => ok(&store.set_latest(owner, &assistant_id, version, now_ms)?),
    }
}

/// What a `Get` answers about `assistant`.
fn view_json(assistant: &Assistant, view: AssistantView) -> Result<Value> {
    Ok(match view {
        AssistantView::Assistant => assistant_json(assistant),
        AssistantView::Graph => graph_json(),
        AssistantView::Schemas => schemas_json(&assistant.graph_id),
        AssistantView::Subgraphs => json!({}),
        AssistantView::Stored => serde_json::to_value(assistant).map_err(Error::backend)?,
    })
}

/// A search's page: `stored` (the first `offset + limit` stored matches, in order) with
/// the system assistant where it sorts, paged; `X-Pagination-Next` when the page is
/// full, as LangGraph's server sends it.
fn search_answer(
    query: &AssistantSearch,
    mut found: Vec<Assistant>,
    select: Option<&[String]>,
) -> Result<HttpResponse> {
    let system = system_assistant();
    if query.matches(&system) {
        let at = found.partition_point(|a| query.compare(a, &system).is_lt());
        found.insert(at, system);
    }
    let page: Vec<Value> = found
        .iter()
        .skip(query.offset)
        .take(query.limit)
        .map(|a| project(assistant_json(a), select))
        .collect();
    let full = page.len() == query.limit && query.limit > 0;
    let response = HttpResponse::ok(Value::Array(page));
    Ok(if full {
        response.with_header(
            "x-pagination-next",
            (query.offset + query.limit).to_string(),
        )
    } else {
        response
    })
}

/// Only the `select`ed fields of an assistant's JSON.
fn project(value: Value, select: Option<&[String]>) -> Value {
    match (value, select) {
        (Value::Object(fields), Some(select)) => Value::Object(
            fields
                .into_iter()
                .filter(|(k, _)| select.iter().any(|s| s == k))
                .collect(),
        ),
        (value, _) => value,
    }
}

/// The answer of a backend that keeps no assistants (`MEMORY_BACKEND=memory`): the
/// system assistant alone.
pub fn without_storage(call: AssistantCall) -> HttpResponse {
    let answer = match call.command {
        AssistantCommand::Search { query, select } => {
            search_answer(&query, Vec::new(), select.as_deref())
        }
        AssistantCommand::Count { query } => Ok(HttpResponse::ok(json!(usize::from(
            query.matches(&system_assistant())
        )))),
        AssistantCommand::Create { .. } => Err(Error::Unsupported {
            what: "creating assistants with MEMORY_BACKEND=memory (assistants are kept in Durable Objects)".into(),
        }),
        AssistantCommand::Get { assistant_id, .. }
        | AssistantCommand::Patch { assistant_id, .. }
        | AssistantCommand::Delete { assistant_id, .. }
        | AssistantCommand::Versions { assistant_id, .. }
        | AssistantCommand::SetLatest { assistant_id, .. } => Err(Error::NotFound {
            what: "assistant",
            id: assistant_id,
        }),
    };
    answer.into()
}

/// Carries out an assistants plan through `backend`: a `delete_threads` first deletes
/// the assistant's threads (found in the thread directory by `metadata.assistant_id`,
/// within the caller's scope), then the assistant.
pub async fn carry_out<B: Backend>(backend: &B, call: AssistantCall) -> HttpResponse {
    if let AssistantCommand::Delete {
        assistant_id,
        delete_threads: true,
    } = &call.command
    {
        let exists = backend
            .assistant_call(AssistantCall {
                command: AssistantCommand::Get {
                    assistant_id: assistant_id.clone(),
                    view: AssistantView::Stored,
                },
                owner: call.owner.clone(),
            })
            .await;
        if exists.status != 200 {
            return exists;
        }
        if let Err(err) = delete_threads(backend, assistant_id, call.owner.as_deref()).await {
            return HttpResponse::error(err);
        }
    }
    backend.assistant_call(call).await
}

/// Deletes the threads whose `metadata.assistant_id` is `assistant_id`, page by page
/// (a deleted thread leaves the directory, so each round searches from the start).
async fn delete_threads<B: Backend>(
    backend: &B,
    assistant_id: &str,
    owner: Option<&str>,
) -> Result<()> {
    let mut metadata = Map::new();
    metadata.insert("assistant_id".into(), json!(assistant_id));
    if let Some(owner) = owner {
        metadata.insert(OWNER_KEY.into(), json!(owner));
    }
    let query = ThreadSearch {
        metadata,
        limit: DELETE_THREADS_PAGE,
        ..ThreadSearch::default()
    };
    let mut deleted = 0;
    loop {
        let found = super::directory::search(backend, &query, false).await?;
        let ids = thread_ids(&found)?;
        if ids.is_empty() {
            return Ok(());
        }
        if deleted >= DELETE_THREADS_MAX {
            return Err(Error::Unavailable {
                reason: format!(
                    "deleted {deleted} threads of assistant {assistant_id}; more remain: call again"
                ),
            });
        }
        for thread_id in ids {
            let gone = backend
                .call(ThreadCall {
                    thread_id,
                    command: ThreadCommand::Delete,
                    owner: owner.map(str::to_string),
                })
                .await;
            if !matches!(gone.status, 200..=299 | 404) {
                return Err(Error::backend(format_args!(
                    "deleting a thread of assistant {assistant_id} answered {}",
                    gone.status
                )));
            }
            deleted += 1;
        }
    }
}

/// The thread ids of a thread search's answer.
fn thread_ids(found: &HttpResponse) -> Result<Vec<ThreadId>> {
    match (&found.status, &found.body) {
        (200, Body::Json(Value::Array(threads))) => threads
            .iter()
            .map(|t| ThreadId::parse(t["thread_id"].as_str().unwrap_or_default()))
            .collect(),
        _ => Err(Error::backend(format_args!(
            "thread search answered {}",
            found.status
        ))),
    }
}

/// The assistant a run runs as: the system assistant, or a stored one, whose settings
/// the worker resolves before the run goes to its thread.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunAssistant {
    /// A stored assistant's id; `None`: the system assistant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assistant_id: Option<String>,
    /// Whose assistants it is among (the caller's scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Its model settings, once resolved.
    #[serde(default, skip_serializing_if = "ModelOverrides::is_empty")]
    pub overrides: ModelOverrides,
}

impl RunAssistant {
    /// The id threads are stamped with (`metadata.assistant_id`).
    pub fn id(&self) -> &str {
        self.assistant_id
            .as_deref()
            .unwrap_or(super::ASSISTANT_UUID)
    }
}

/// Resolves the run's assistant through `backend` (its cache first): its settings, or
/// 404 when the caller has no such assistant. The system assistant needs nothing.
pub async fn resolve<B: Backend>(backend: &B, run: &mut RunRequest) -> Result<()> {
    let Some(assistant_id) = run.assistant.assistant_id.clone() else {
        return Ok(());
    };
    let assistant = backend
        .find_assistant(&assistant_id, run.assistant.owner.as_deref())
        .await?;
    run.assistant.overrides = ModelOverrides::read(&assistant.context, &assistant.config)?;
    Ok(())
}

/// A stored assistant, asked of the assistants object (the default of
/// [`Backend::find_assistant`], which the worker wraps in its cache).
pub async fn fetch_stored<B: Backend + ?Sized>(
    backend: &B,
    assistant_id: &str,
    owner: Option<&str>,
) -> Result<Assistant> {
    let response = backend
        .assistant_call(AssistantCall {
            command: AssistantCommand::Get {
                assistant_id: assistant_id.to_string(),
                view: AssistantView::Stored,
            },
            owner: owner.map(str::to_string),
        })
        .await;
    match (response.status, response.body) {
        (200, Body::Json(stored)) => serde_json::from_value(stored).map_err(Error::backend),
        (404, _) => Err(Error::NotFound {
            what: "assistant",
            id: assistant_id.to_string(),
        }),
        (status, _) => Err(Error::backend(format_args!(
            "the assistants object answered {status}"
        ))),
    }
}
