//! The route table: which endpoint a method and a path name. The one place that knows
//! the paths, so a path some other method serves is told apart (405) from an unknown
//! one (404) by the same table that routes.

use crate::api::ApiError;
use crate::error::Error;

/// An endpoint of the API, with the raw path segments it carries. Ids stay unparsed
/// here: each handler parses them in its own order, so that of two bad inputs the same
/// one is reported as ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route<'a> {
    /// `/ok`, `/info`: answered from what the server knows of itself.
    Info(InfoRoute),
    /// `/assistants`, `/assistants/{id}` and their sub-routes.
    Assistants(AssistantsRoute<'a>),
    /// `/threads`, `/threads/{id}`, `/threads/{id}/copy`, search and count.
    Threads(ThreadsRoute<'a>),
    /// `/threads/{id}/state*` and `/threads/{id}/history`.
    State(StateRoute<'a>),
    /// `POST /threads/{id}/runs/{wait|stream}` and `POST /runs/{wait|stream}`.
    Runs(RunsRoute<'a>),
    /// `POST /threads/{id}/saver/{op}`: LangGraph checkpointer storage.
    Saver {
        /// The thread id, unparsed.
        thread: &'a str,
        /// The checkpointer operation (`put`, `list`, ...), checked by its handler.
        op: &'a str,
    },
    /// `POST /saver/delete_for_runs`: a checkpointer call across threads.
    SaverDeleteRuns,
    /// Background runs and run records.
    RunRecords(RunRecordsRoute<'a>),
    /// `/store/items` (PUT, GET, DELETE), `/store/items/search`, `/store/namespaces`.
    Store(StoreRoute),
    /// The Vercel AI SDK's chat routes under `/api/chat`.
    Chat(ChatRoute<'a>),
}

/// The AI SDK's chat routes (`DefaultChatTransport` with `api: "<worker>/api/chat"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChatRoute<'a> {
    /// `POST /api/chat`: a chat turn, answered as a UI message stream.
    Send,
    /// `GET /api/chat/{id}/messages`: the chat's messages as `UIMessage[]`.
    Messages(&'a str),
    /// `GET /api/chat/{id}/stream`: resume the reply under way (`reconnectToStream`).
    Resume(&'a str),
}

/// The routes on run records, and those that create background runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RunRecordsRoute<'a> {
    /// `POST /threads/{id}/runs`: a background run.
    Create(&'a str),
    /// `POST /runs`: a background run on a new thread.
    CreateStateless,
    /// `POST /runs/batch`: several background runs on new threads.
    Batch,
    /// `GET /threads/{id}/runs`.
    List(&'a str),
    /// `GET`/`DELETE /threads/{id}/runs/{run_id}`, and its `cancel`, `join`, `stream`.
    One {
        /// The thread id, unparsed.
        thread: &'a str,
        /// The run id, unchecked.
        run: &'a str,
        /// What is asked of the run.
        op: RunOpKind,
    },
}

/// What a route asks of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RunOpKind {
    /// `GET .../runs/{run_id}`.
    Get,
    /// `DELETE .../runs/{run_id}`.
    Delete,
    /// `POST .../cancel`.
    Cancel,
    /// `GET .../join`.
    Join,
    /// `GET .../stream`.
    Stream,
}

/// The Store API's routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StoreRoute {
    /// `PUT /store/items`.
    Put,
    /// `GET /store/items?namespace=a.b&key=k`.
    Get,
    /// `DELETE /store/items`.
    Delete,
    /// `POST /store/items/search`.
    Search,
    /// `POST /store/namespaces`.
    Namespaces,
}

/// The routes answered without storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum InfoRoute {
    /// `GET /ok`.
    Ok,
    /// `GET /info`.
    Info,
    /// `GET /diagnostics`: the memory doctor's hints for the caller.
    Diagnostics,
}

/// The assistant routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AssistantsRoute<'a> {
    /// `POST /assistants`.
    Create,
    /// `POST /assistants/search` (`count: false`) and `POST /assistants/count`.
    Search {
        /// Whether only the number of matches is asked.
        count: bool,
    },
    /// `GET /assistants/{id}`, and its `/graph`, `/schemas`, `/subgraphs[/{namespace}]`.
    Get {
        /// The assistant id, unparsed.
        id: &'a str,
        /// What is asked about it.
        view: crate::api::assistants::AssistantView,
    },
    /// `PATCH /assistants/{id}`.
    Patch(&'a str),
    /// `DELETE /assistants/{id}`.
    Delete(&'a str),
    /// `POST /assistants/{id}/versions`.
    Versions(&'a str),
    /// `POST /assistants/{id}/latest`.
    Latest(&'a str),
}

/// The routes on thread records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ThreadsRoute<'a> {
    /// `POST /threads`.
    Create,
    /// `POST /threads/search` (`count: false`) and `POST /threads/count`.
    Search {
        /// Whether only the number of matches is asked.
        count: bool,
    },
    /// `GET /threads/{id}`.
    Get(&'a str),
    /// `PATCH /threads/{id}`.
    Patch(&'a str),
    /// `DELETE /threads/{id}`.
    Delete(&'a str),
    /// `POST /threads/{id}/copy`.
    Copy(&'a str),
}

/// The routes on a thread's state and history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StateRoute<'a> {
    /// `GET /threads/{id}/state`.
    Head(&'a str),
    /// `GET /threads/{id}/state/{checkpoint_id}`.
    At {
        /// The thread id, unparsed.
        thread: &'a str,
        /// The checkpoint id, unparsed.
        checkpoint: &'a str,
    },
    /// `POST /threads/{id}/state/checkpoint`: the checkpoint named in the body.
    Checkpoint(&'a str),
    /// `POST /threads/{id}/state`.
    Update(&'a str),
    /// `POST /threads/{id}/history`.
    History(&'a str),
}

/// The run routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RunsRoute<'a> {
    /// `POST /threads/{id}/runs/{wait|stream}`.
    OnThread {
        /// The thread id, unparsed.
        thread: &'a str,
        /// `runs/stream` (else `runs/wait`).
        stream: bool,
    },
    /// `POST /runs/{wait|stream}`: on a throwaway thread.
    Stateless {
        /// `runs/stream` (else `runs/wait`).
        stream: bool,
    },
}

/// Every method some route serves: a path that one of them routes is known.
const METHODS: [&str; 5] = ["GET", "POST", "PATCH", "DELETE", "PUT"];

impl<'a> Route<'a> {
    /// The route of `method` on `path`; a path some other method serves is a 405, any
    /// other a 404. A trailing slash is ignored.
    pub(super) fn parse(method: &str, path: &'a str) -> Result<Self, ApiError> {
        let segments: Vec<&'a str> = path.trim_end_matches('/').split('/').skip(1).collect();
        if let Some(route) = Self::find(method, &segments) {
            return Ok(route);
        }
        if METHODS.iter().any(|m| Self::find(m, &segments).is_some()) {
            return Err(ApiError::MethodNotAllowed {
                method: method.to_string(),
            });
        }
        Err(Error::NotFound {
            what: "route",
            id: format!("{method} {path}"),
        }
        .into())
    }

    /// The table.
    fn find(method: &str, segments: &[&'a str]) -> Option<Self> {
        use InfoRoute as I;
        use RunRecordsRoute as RR;
        use RunsRoute as R;
        use StateRoute as S;
        use ThreadsRoute as T;
        let stream = |kind: &str| kind == "stream";
        Some(match (method, segments) {
            ("GET", ["ok"]) => Route::Info(I::Ok),
            ("GET", ["info"]) => Route::Info(I::Info),
            ("GET", ["diagnostics"]) => Route::Info(I::Diagnostics),
            (_, ["assistants", ..]) => return Self::find_assistants(method, segments),
            ("POST", ["threads"]) => Route::Threads(T::Create),
            ("POST", ["threads", "search"]) => Route::Threads(T::Search { count: false }),
            ("POST", ["threads", "count"]) => Route::Threads(T::Search { count: true }),
            ("GET", ["threads", id]) => Route::Threads(T::Get(id)),
            ("PATCH", ["threads", id]) => Route::Threads(T::Patch(id)),
            ("DELETE", ["threads", id]) => Route::Threads(T::Delete(id)),
            ("POST", ["threads", id, "copy"]) => Route::Threads(T::Copy(id)),
            ("GET", ["threads", id, "state"]) => Route::State(S::Head(id)),
            ("GET", ["threads", thread, "state", checkpoint]) => {
                Route::State(S::At { thread, checkpoint })
            }
            ("POST", ["threads", id, "state", "checkpoint"]) => Route::State(S::Checkpoint(id)),
            ("POST", ["threads", id, "state"]) => Route::State(S::Update(id)),
            ("POST", ["threads", id, "history"]) => Route::State(S::History(id)),
            ("POST", ["threads", thread, "runs", kind @ ("wait" | "stream")]) => {
                Route::Runs(R::OnThread {
                    thread,
                    stream: stream(kind),
                })
            }
            ("POST", ["threads", thread, "saver", op]) => Route::Saver { thread, op },
            ("POST", ["saver", "delete_for_runs"]) => Route::SaverDeleteRuns,
            ("POST", ["runs", kind @ ("wait" | "stream")]) => Route::Runs(R::Stateless {
                stream: stream(kind),
            }),
            ("POST", ["threads", id, "runs"]) => Route::RunRecords(RR::Create(id)),
            ("GET", ["threads", id, "runs"]) => Route::RunRecords(RR::List(id)),
            ("POST", ["runs"]) => Route::RunRecords(RR::CreateStateless),
            ("POST", ["runs", "batch"]) => Route::RunRecords(RR::Batch),
            ("POST", ["api", "chat"]) => Route::Chat(ChatRoute::Send),
            ("GET", ["api", "chat", id, "messages"]) => Route::Chat(ChatRoute::Messages(id)),
            ("GET", ["api", "chat", id, "stream"]) => Route::Chat(ChatRoute::Resume(id)),
            (method, ["threads", thread, "runs", run, rest @ ..]) => {
                let op = match (method, rest) {
                    ("GET", []) => RunOpKind::Get,
                    ("DELETE", []) => RunOpKind::Delete,
                    ("POST", ["cancel"]) => RunOpKind::Cancel,
                    ("GET", ["join"]) => RunOpKind::Join,
                    ("GET", ["stream"]) => RunOpKind::Stream,
                    _ => return None,
                };
                Route::RunRecords(RR::One { thread, run, op })
            }
            ("PUT", ["store", "items"]) => Route::Store(StoreRoute::Put),
            ("GET", ["store", "items"]) => Route::Store(StoreRoute::Get),
            ("DELETE", ["store", "items"]) => Route::Store(StoreRoute::Delete),
            ("POST", ["store", "items", "search"]) => Route::Store(StoreRoute::Search),
            ("POST", ["store", "namespaces"]) => Route::Store(StoreRoute::Namespaces),
            _ => return None,
        })
    }

    /// The assistants' part of the table.
    fn find_assistants(method: &str, segments: &[&'a str]) -> Option<Self> {
        use crate::api::assistants::AssistantView as V;
        use AssistantsRoute as A;
        Some(match (method, segments) {
            ("POST", ["assistants"]) => Route::Assistants(A::Create),
            ("POST", ["assistants", "search"]) => Route::Assistants(A::Search { count: false }),
            ("POST", ["assistants", "count"]) => Route::Assistants(A::Search { count: true }),
            ("GET", ["assistants", id]) => Route::Assistants(A::Get {
                id,
                view: V::Assistant,
            }),
            ("PATCH", ["assistants", id]) => Route::Assistants(A::Patch(id)),
            ("DELETE", ["assistants", id]) => Route::Assistants(A::Delete(id)),
            ("GET", ["assistants", id, "graph"]) => {
                Route::Assistants(A::Get { id, view: V::Graph })
            }
            ("GET", ["assistants", id, "schemas"]) => Route::Assistants(A::Get {
                id,
                view: V::Schemas,
            }),
            ("GET", ["assistants", id, "subgraphs"] | ["assistants", id, "subgraphs", _]) => {
                Route::Assistants(A::Get {
                    id,
                    view: V::Subgraphs,
                })
            }
            ("POST", ["assistants", id, "versions"]) => Route::Assistants(A::Versions(id)),
            ("POST", ["assistants", id, "latest"]) => Route::Assistants(A::Latest(id)),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_another_method_serves_is_405_any_other_404() {
        for (method, path, status) in [
            ("GET", "/threads/T/", 200),
            ("PUT", "/threads/T", 405),
            ("DELETE", "/threads/T/state", 405),
            ("PUT", "/threads/T/runs/wait", 405),
            ("GET", "/threads/T/runs/R/join", 200),
            ("POST", "/threads/T/runs/R/join", 405),
            ("PATCH", "/threads/T/runs", 405),
            ("PUT", "/threads/T/state/x", 405),
            ("GET", "/threads/T/saver/put", 405),
            ("GET", "/runs/stream", 405),
            ("PUT", "/store/items", 200),
            ("POST", "/store/items", 405),
            ("GET", "/store/namespaces", 405),
            ("GET", "/api/chat", 405),
            ("POST", "/api/chat/c/stream", 405),
            ("GET", "/api/chat/c/messages/", 200),
            ("GET", "/api/chat/c", 404),
            ("GET", "/threads/T/secrets", 404),
            ("POST", "/threads/T/runs/R/other", 404),
            ("GET", "/nothing/here", 404),
            ("GET", "/diagnostics", 200),
            ("POST", "/diagnostics", 405),
            ("POST", "/__dev/conformance", 404),
            ("GET", "/", 404),
        ] {
            let got = Route::parse(method, path).map_or_else(|e| e.status(), |_| 200);
            assert_eq!(got, status, "{method} {path}");
        }
    }
}
