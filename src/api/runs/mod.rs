//! Runs as records: every run on a thread (waited, streamed, or in the background) has a
//! [`RunRecord`] its thread's object keeps, a [`LiveRun`] while it is under way (its event
//! log, the clients following it, and the stop asked of it), and LangGraph's JSON shape.
//!
//! One mechanism serves every way of following a run: the response that started it, a
//! `join`, a `joinStream` with `Last-Event-ID` after a reload, a `cancel` that waits. Each
//! subscribes to the run's [`LiveRun`]; a resumable run's log outlives it by
//! [`RUN_EVENTS_KEPT_MS`] in the object's SQLite.

mod live;

use serde_json::{json, Value};

pub use crate::chat::StopAction;
pub use crate::checkpoint::runs::{RunRecord, RunStatus, SqlRuns, RUNS_KEPT_PER_THREAD};
pub use live::{LiveEvent, LiveRun, LiveRuns, Replay, RunItem};

use crate::error::{Error, Result};
use crate::runtime::iso8601;

/// How long a finished resumable run's events stay for a client that reconnects: long
/// enough for a page reload or a phone that lost its network for a while, short enough
/// that the events (up to [`RUN_EVENTS_MAX_BYTES`]) do not pile up.
pub const RUN_EVENTS_KEPT_MS: i64 = 10 * 60 * 1000;

/// Most bytes of events one run logs. A finished resumable run's log is kept as one
/// SQLite row, and a Durable Object row holds at most 2 MB; past this the run still
/// streams live but a reconnecting client can only replay up to here.
pub const RUN_EVENTS_MAX_BYTES: usize = 1_500_000;

/// How often a thread object with a run under way looks at it from its alarm: a run cut
/// off by a restart of the runtime is marked `error` within this time, and a pending run
/// whose object restarted starts within it.
pub const RUN_WATCHDOG_MS: i64 = 15_000;

/// Most runs `runs.list` answers at once.
pub const RUNS_LIST_MAX: usize = 1_000;

/// Largest request of a background run: it is kept in the run's record until the run
/// starts, and a Durable Object row holds at most 2 MB.
pub const RUN_RECORD_MAX_BYTES: usize = 1_500_000;

/// Most runs one `POST /runs/batch` creates.
pub const RUNS_BATCH_MAX: usize = 100;

/// `action` of `POST .../cancel` (`interrupt` when absent).
pub fn parse_stop_action(raw: Option<&str>) -> Result<StopAction> {
    match raw {
        None | Some("interrupt") => Ok(StopAction::Interrupt),
        Some("rollback") => Ok(StopAction::Rollback),
        Some(other) => Err(Error::invalid(
            "action",
            format!("must be \"interrupt\" or \"rollback\", got {other:?}"),
        )),
    }
}

/// A `Run` as LangGraph's server answers it.
pub fn run_json(record: &RunRecord) -> Value {
    json!({
        "run_id": record.run_id,
        "thread_id": record.thread_id.as_str(),
        "assistant_id": record.assistant_id,
        "created_at": iso8601(record.created_at_ms),
        "updated_at": iso8601(record.updated_at_ms),
        "status": record.status.as_str(),
        "metadata": record.metadata,
        "multitask_strategy": record.multitask_strategy,
        "kwargs": record.kwargs,
    })
}

/// The path of a run, for `Content-Location` (what the SDKs' `onRunCreated` reads).
pub fn run_location(thread_id: &str, run_id: &str) -> String {
    format!("/threads/{thread_id}/runs/{run_id}")
}

/// Which stream mode an event belongs to, for a subscriber that asked for some modes:
/// `None` for events every subscriber gets (`metadata`, `error`).
pub fn event_mode(event: &str) -> Option<&'static str> {
    match event {
        "values" => Some("values"),
        "messages" | "messages/partial" | "messages/complete" | "messages/metadata" => {
            Some("messages-tuple")
        }
        "updates" => Some("updates"),
        "events" => Some("events"),
        _ => None,
    }
}

/// The event id after which a reconnecting client wants events (`Last-Event-ID`):
/// `-1` or `0` for all of them; none for only what comes next.
pub fn parse_last_event_id(raw: Option<&str>) -> Result<Replay> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(Replay::Live);
    };
    match raw {
        "-1" | "0" => Ok(Replay::All),
        _ => raw.parse::<u64>().map(Replay::After).map_err(|_| {
            Error::invalid(
                "Last-Event-ID",
                format!("must be an event id this server sent (a number), -1 or 0; got {raw:?}"),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_event_ids_read_as_langgraph_clients_send_them() {
        assert_eq!(parse_last_event_id(None).unwrap(), Replay::Live);
        assert_eq!(parse_last_event_id(Some("-1")).unwrap(), Replay::All);
        assert_eq!(parse_last_event_id(Some("0")).unwrap(), Replay::All);
        assert_eq!(parse_last_event_id(Some("7")).unwrap(), Replay::After(7));
        let err = parse_last_event_id(Some("1795940838186-0")).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    }

    #[test]
    fn stop_actions_parse_with_interrupt_as_the_default() {
        assert_eq!(parse_stop_action(None).unwrap(), StopAction::Interrupt);
        assert_eq!(
            parse_stop_action(Some("rollback")).unwrap(),
            StopAction::Rollback
        );
        let err = parse_stop_action(Some("abort")).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    }
}
