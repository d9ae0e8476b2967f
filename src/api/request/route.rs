//! The route table: which endpoint a method and a path name. The one place that knows
//! the paths, so a path some other method serves is told apart (405) from an unknown
//! one (404) by the same table that routes.

use crate::error::{Error, Result};

/// An endpoint of the API, with the raw path segments it carries. Ids stay unparsed
/// here: each handler parses them in its own order, so that of two bad inputs the same
/// one is reported as ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route<'a> {
    /// `/ok`, `/info`, `/assistants/*`: answered from what the server knows of itself.
    Info(InfoRoute<'a>),
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
    /// `/store/items` (PUT, GET, DELETE), `/store/items/search`, `/store/namespaces`.
    Store(StoreRoute),
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
pub(super) enum InfoRoute<'a> {
    /// `GET /ok`.
    Ok,
    /// `GET /info`.
    Info,
    /// `GET /assistants/{id}`.
    Assistant(&'a str),
    /// `POST /assistants/search`.
    AssistantSearch,
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
    pub(super) fn parse(method: &str, path: &'a str) -> Result<Self> {
        let segments: Vec<&'a str> = path.trim_end_matches('/').split('/').skip(1).collect();
        if let Some(route) = Self::find(method, &segments) {
            return Ok(route);
        }
        if METHODS.iter().any(|m| Self::find(m, &segments).is_some()) {
            return Err(Error::MethodNotAllowed {
                method: method.to_string(),
            });
        }
        Err(Error::NotFound {
            what: "route",
            id: format!("{method} {path}"),
        })
    }

    /// The table.
    fn find(method: &str, segments: &[&'a str]) -> Option<Self> {
        use InfoRoute as I;
        use RunsRoute as R;
        use StateRoute as S;
        use ThreadsRoute as T;
        let stream = |kind: &str| kind == "stream";
        Some(match (method, segments) {
            ("GET", ["ok"]) => Route::Info(I::Ok),
            ("GET", ["info"]) => Route::Info(I::Info),
            ("GET", ["assistants", id]) => Route::Info(I::Assistant(id)),
            ("POST", ["assistants", "search"]) => Route::Info(I::AssistantSearch),
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
            ("PUT", ["store", "items"]) => Route::Store(StoreRoute::Put),
            ("GET", ["store", "items"]) => Route::Store(StoreRoute::Get),
            ("DELETE", ["store", "items"]) => Route::Store(StoreRoute::Delete),
            ("POST", ["store", "items", "search"]) => Route::Store(StoreRoute::Search),
            ("POST", ["store", "namespaces"]) => Route::Store(StoreRoute::Namespaces),
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
            ("GET", "/threads/T/runs/wait", 405),
            ("PUT", "/threads/T/state/x", 405),
            ("GET", "/threads/T/saver/put", 405),
            ("GET", "/runs/stream", 405),
            ("PUT", "/store/items", 200),
            ("POST", "/store/items", 405),
            ("GET", "/store/namespaces", 405),
            ("GET", "/threads/T/secrets", 404),
            ("POST", "/threads/T/runs/other", 404),
            ("GET", "/nothing/here", 404),
            ("POST", "/__dev/conformance", 404),
            ("GET", "/", 404),
        ] {
            let got = Route::parse(method, path).map_or_else(|e| e.status(), |_| 200);
            assert_eq!(got, status, "{method} {path}");
        }
    }
}
