//! A thread's runs, as the thread object keeps them: `runs.list`, `get`, `delete`,
//! `cancel`, `join` and `joinStream`; runs a restart left behind; and the object's
//! alarm, which serves the runs and the directory alike.

use std::rc::Rc;

use futures_util::StreamExt;
use serde_json::Value;
use worker::Response;

use super::run::{event_stream, RunJob};
use super::thread_object::{object_response, ObjectInner};
use crate::api::runs::{
    run_json, run_location, LiveRun, Replay, RunItem, RunRecord, RunStatus, RUN_WATCHDOG_MS,
};
use crate::api::{self, HttpResponse, RunOp, RunRequest, SseEvent, ThreadCall, ThreadCommand};
use crate::chat::StopAction;
use crate::checkpoint::Checkpointer;
use crate::error::{ConflictKind, Error};
use crate::runtime::{Clock, SystemClock};
use crate::thread::ThreadId;

impl ObjectInner {
    /// Answers a call on the thread's runs, after checking the caller owns the thread.
    pub(super) async fn run_op(
        inner: Rc<ObjectInner>,
        call: ThreadCall,
    ) -> worker::Result<Response> {
        if let ThreadCommand::RunOp(RunOp::ChatStream) = call.command {
            return inner.chat_stream(call).await;
        }
        inner.reconcile_runs();
        if let Err(err) = api::check_caller(&inner.edge_store(), &call).await {
            return object_response(&HttpResponse::error(err));
        }
        let ThreadCall {
            thread_id,
            command: ThreadCommand::RunOp(op),
            ..
        } = call
        else {
            return object_response(&HttpResponse::error(Error::backend("not a run call")));
        };
        // The thread must exist (a run on it may have been deleted with it).
        if let Err(err) = inner.edge_store().get_thread(&thread_id).await {
            return object_response(&HttpResponse::error(err));
        }
        let answer = match op {
            RunOp::JoinStream {
                run_id,
                replay,
                modes,
            } => return inner.join_stream(&thread_id, &run_id, replay, modes),
            RunOp::List {
                status,
                limit,
                offset,
            } => inner.list_runs(&thread_id, status.as_deref(), limit, offset),
            RunOp::Get { run_id } => inner
                .find_run(&thread_id, &run_id)
                .map(|record| HttpResponse::ok(run_json(&record))),
            RunOp::Delete { run_id } => inner.delete_run(&thread_id, &run_id),
            RunOp::Cancel {
                run_id,
                wait,
                action,
            } => inner.cancel_run(&thread_id, &run_id, wait, action).await,
            RunOp::Join { run_id } => inner.join_run(&thread_id, &run_id).await,
            RunOp::ChatStream => Ok(HttpResponse::no_content()),
        };
        object_response(&answer.unwrap_or_else(HttpResponse::error))
    }

    /// The run under way in this object, if `run_id` is one of `thread_id`'s.
    fn live_run(&self, thread_id: &ThreadId, run_id: &str) -> Option<Rc<LiveRun>> {
        self.live
            .get(run_id)
            .filter(|run| run.record().thread_id == *thread_id)
    }

    /// A run's record as it is now: live, else stored.
    fn find_run(&self, thread_id: &ThreadId, run_id: &str) -> Result<RunRecord, Error> {
        if let Some(run) = self.live_run(thread_id, run_id) {
            return Ok(run.record());
        }
        self.run_records
            .get(thread_id, run_id)?
            .ok_or_else(|| run_not_found(run_id))
    }

    /// A page of the thread's runs, newest first: the stored ones, with the runs under
    /// way (which a waited or streamed run is until it ends) as they are now.
    fn list_runs(
        &self,
        thread_id: &ThreadId,
        status: Option<&str>,
        limit: usize,
        offset: usize,
    ) -> Result<HttpResponse, Error> {
        let status = match status {
            Some(name) => match RunStatus::parse(name) {
                Some(status) => Some(status),
                // LangGraph answers an unknown status with no runs.
                None => return Ok(HttpResponse::ok(Value::Array(Vec::new()))),
            },
            None => None,
        };
        let live: Vec<RunRecord> = self
            .live
            .on_thread(thread_id.as_str())
            .iter()
            .map(|run| run.record())
            .collect();
        let stored = self
            .run_records
            .list(thread_id, None, offset + limit + live.len(), 0)?;
        let mut runs: Vec<RunRecord> = live.clone();
        runs.extend(
            stored
                .into_iter()
                .filter(|r| !live.iter().any(|l| l.run_id == r.run_id)),
        );
        runs.retain(|r| status.is_none_or(|s| r.status == s));
        crate::sort::sort_by(&mut runs, |a, b| {
            (b.created_at_ms, &b.run_id).cmp(&(a.created_at_ms, &a.run_id))
        });
        let page: Vec<Value> = runs.iter().skip(offset).take(limit).map(run_json).collect();
        Ok(HttpResponse::ok(Value::Array(page)))
    }

    /// Deletes a finished run's record; one under way must be cancelled first.
    fn delete_run(&self, thread_id: &ThreadId, run_id: &str) -> Result<HttpResponse, Error> {
        if self.live_run(thread_id, run_id).is_some() {
            return Err(Error::Conflict {
                kind: ConflictKind::ThreadBusy,
                reason: format!(
                    "run {run_id} is pending or running; cancel it first (POST .../runs/{run_id}/cancel)"
                ),
            });
        }
        match self.run_records.delete(thread_id, run_id)? {
            true => Ok(HttpResponse::no_content()),
            false => Err(run_not_found(run_id)),
        }
    }

    /// Asks a run under way to stop; with `wait`, answers when it has, with the
    /// thread's values (as `join`), else 202 at once.
    async fn cancel_run(
        &self,
        thread_id: &ThreadId,
        run_id: &str,
        wait: bool,
        action: StopAction,
    ) -> Result<HttpResponse, Error> {
        // As LangGraph's server: a finished run is not cancellable (404).
        let Some(run) = self.live_run(thread_id, run_id) else {
            return Err(run_not_found(run_id));
        };
        run.request_stop(action);
        if !wait {
            return Ok(HttpResponse {
                status: 202,
                ..HttpResponse::no_content()
            });
        }
        let _ = run_end(&run).await;
        self.run_values(thread_id, run_id).await
    }

    /// Waits for a run to end and answers the thread's values then.
    async fn join_run(&self, thread_id: &ThreadId, run_id: &str) -> Result<HttpResponse, Error> {
        match self.live_run(thread_id, run_id) {
            Some(run) => {
                let _ = run_end(&run).await;
            }
            None => {
                self.find_run(thread_id, run_id)?;
            }
        }
        self.run_values(thread_id, run_id).await
    }

    /// The thread's values after a run, as `join` answers them (with LangGraph's
    /// `Content-Location` and `Location`).
    async fn run_values(&self, thread_id: &ThreadId, run_id: &str) -> Result<HttpResponse, Error> {
        let values = match self.edge_store().latest(thread_id).await? {
            Some(snapshot) => crate::api::values_json(&snapshot.messages),
            None => serde_json::json!({}),
        };
        let location = run_location(thread_id.as_str(), run_id);
        Ok(HttpResponse::ok(values)
            .with_header("location", format!("{location}/join"))
            .with_header("content-location", location))
    }

    /// A run's events: those after `replay` (a resumable run keeps them), then the rest
    /// live while it is under way.
    fn join_stream(
        &self,
        thread_id: &ThreadId,
        run_id: &str,
        replay: Replay,
        modes: Option<Vec<String>>,
    ) -> worker::Result<Response> {
        let location = run_location(thread_id.as_str(), run_id);
        if let Some(run) = self.live_run(thread_id, run_id) {
            // A run that keeps no events replays none.
            let replay = if run.record().resumable {
                replay
            } else {
                Replay::Live
            };
            return event_stream(Vec::new(), run.follow(replay, modes), &location);
        }
        let record = match self.find_run(thread_id, run_id) {
            Ok(record) => record,
            Err(err) => return object_response(&HttpResponse::error(err)),
        };
        let kept = match (record.resumable, replay) {
            (true, Replay::All | Replay::After(_)) => self
                .run_records
                .events(run_id, SystemClock.now_ms())
                .ok()
                .flatten(),
            _ => None,
        };
        let finished = LiveRun::new(record);
        if let Some(Value::Array(events)) = kept {
            for event in events {
                if let Ok(event) = serde_json::from_value::<SseEvent>(event) {
                    finished.replay_logged(event);
                }
            }
        }
        finished.finish(HttpResponse::no_content());
        event_stream(Vec::new(), finished.follow(replay, modes), &location)
    }

    /// Once per instance: the runs a restart left behind. A run that was running was cut
    /// off (`error`, the thread is left as it was: its input is stored, its reply is
    /// not); a pending one starts now (or at its time).
    pub(super) fn reconcile_runs(self: &Rc<Self>) {
        if self.runs_reconciled.replace(true) {
            return;
        }
        let unfinished = match self.run_records.unfinished() {
            Ok(runs) => runs,
            Err(err) => {
                worker::console_error!("edge-memory: runs not reconciled: {err}");
                self.runs_reconciled.set(false);
                return;
            }
        };
        let now = SystemClock.now_ms();
        for mut record in unfinished {
            if self.live.get(&record.run_id).is_some() {
                continue;
            }
            let request = record
                .request
                .take()
                .and_then(|r| serde_json::from_value::<RunRequest>(r).ok());
            match (record.status, request) {
                (RunStatus::Pending, Some(run)) => self.restart_pending(record, run),
                _ => {
                    record.status = RunStatus::Error;
                    record.updated_at_ms = now;
                    if let Err(err) = self.run_records.put(&record) {
                        worker::console_error!("edge-memory: cut-off run not recorded: {err}");
                    }
                }
            }
        }
    }

    fn restart_pending(self: &Rc<Self>, record: RunRecord, run: RunRequest) {
        let owner = record
            .metadata
            .get(crate::api::auth::OWNER_KEY)
            .and_then(Value::as_str)
            .map(str::to_string);
        let live = Rc::new(LiveRun::new(RunRecord {
            request: None,
            ..record.clone()
        }));
        self.live.insert(live.clone());
        let job = RunJob {
            live,
            thread_id: record.thread_id,
            owner,
            run,
        };
        ObjectInner::spawn_run(self, job, None);
    }

    /// The runs' part of the object's alarm: runs left behind by a restart, kept events
    /// that expired; the alarm comes back while runs are under way (a watchdog for the
    /// next restart) or kept events remain.
    pub(super) async fn runs_alarm(self: &Rc<Self>) {
        self.reconcile_runs();
        let now = SystemClock.now_ms();
        let next_expiry = self.run_records.expire_events(now).unwrap_or(None);
        let mut next = next_expiry.map(|at| at - now);
        if !self.live.is_empty() {
            next = Some(next.map_or(RUN_WATCHDOG_MS, |n| n.min(RUN_WATCHDOG_MS)));
        }
        if let Some(in_ms) = next {
            self.arm_alarm_within(in_ms).await;
        }
    }

    /// Makes the object's one alarm go off within `in_ms` (it may already be set sooner,
    /// for the directory or another run).
    pub(super) async fn arm_alarm_within(&self, in_ms: i64) {
        let storage = self.state.storage();
        let now = SystemClock.now_ms();
        let at = now + in_ms.max(0);
        let armed = match storage.get_alarm().await {
            Ok(Some(set)) if set > now && set <= at => return,
            Ok(_) => {
                self.store.exec().counters().count_storage_write();
                storage.set_alarm(in_ms.max(0)).await
            }
            Err(err) => Err(err),
        };
        if let Err(err) = armed {
            worker::console_error!("edge-memory: alarm not set: {err}");
        }
    }
}

/// Waits for a run's end.
async fn run_end(run: &LiveRun) -> Option<HttpResponse> {
    let mut items = run.follow(Replay::Live, Some(Vec::new()));
    while let Some(item) = items.next().await {
        if let RunItem::Done(response) = item {
            return Some(response);
        }
    }
    None
}

fn run_not_found(run_id: &str) -> Error {
    Error::NotFound {
        what: "run",
        id: run_id.to_string(),
    }
}
