//! A run on the thread object: admitted in the request, then run as a task of the object
//! whose events go to its [`LiveRun`]; the response that started it follows that run like
//! any other client (a `join`, a `joinStream` after a reload).

use std::rc::Rc;

use futures_channel::mpsc::UnboundedReceiver;
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use serde_json::json;
use worker::Response;

use super::objects::STREAM_HEADER;
use super::thread_object::{object_response, precise_now_ms, server_timing, ObjectInner};
use super::EdgeConfig;
use crate::api::diagnostics::TURN_HEADER;
use crate::api::runs::{
    run_json, run_location, LiveEvent, LiveRun, Replay, RunItem, RunRecord, RunStatus,
    RUN_EVENTS_KEPT_MS,
};
use crate::api::{
    self, HttpResponse, Multitask, RunEnd, RunGate, RunRequest, RunTicket, ThreadCall,
    ThreadCommand,
};
use crate::chat::{StopAction, StopSignal};
use crate::checkpoint::Checkpointer;
use crate::error::Error;
use crate::runtime::{uuid_v7, Clock, SystemClock, SystemEntropy};
use crate::thread::{ThreadId, ThreadStatus};

/// How a run's response starts.
enum Opening {
    /// The events up to the reply's first piece: the response is an event stream.
    Stream(Vec<Rc<LiveEvent>>),
    /// The run was over before the reply's first piece: its whole answer.
    Whole(HttpResponse),
}

/// A run to carry out: its live state, and what it was asked.
pub(super) struct RunJob {
    pub(super) live: Rc<LiveRun>,
    pub(super) thread_id: ThreadId,
    pub(super) owner: Option<String>,
    pub(super) run: RunRequest,
}

impl ObjectInner {
    /// Runs on this thread. The run itself is a task of the object (`waitUntil`): a
    /// client that goes away mid-stream does not stop it, and its reply is stored. A
    /// background run is answered at once; otherwise the response waits for the reply's
    /// first piece, so a run that fails before it (a model error, a timeout, an invalid
    /// input) is answered with its error status; a later failure ends the stream with an
    /// `error` event.
    pub(super) async fn run(inner: Rc<ObjectInner>, call: ThreadCall) -> worker::Result<Response> {
        inner.reconcile_runs();
        let (job, ticket) = match inner.admit_run(call).await {
            Ok(admitted) => admitted,
            Err(err) => return object_response(&HttpResponse::error(err)),
        };
        let live = job.live.clone();
        let record = live.record();
        let location = run_location(record.thread_id.as_str(), &record.run_id);
        let background = job.run.delivery.background;
        // The one choice a protocol makes here: how the run's events are written.
        let chat = job.run.chat.is_some();
        let items = live.follow(Replay::All, None);
        ObjectInner::spawn_run(&inner, job, ticket);
        if background {
            let answer = HttpResponse::ok(run_json(&record));
            return object_response(&answer.with_header("content-location", location));
        }
        let mut items = items;
        let opened = match events_until_open(&mut items).await {
            Opening::Stream(head) if chat => super::aisdk::ui_stream(head, items, &location)?,
            Opening::Stream(head) => event_stream(head, items, &location)?,
            Opening::Whole(answer) => {
                return object_response(&answer.with_header("content-location", location))
            }
        };
        // Which turn of its thread the run makes, for the memory doctor in the worker.
        if let Some(turn) = live.turn_of_thread() {
            opened.headers().set(TURN_HEADER, &turn.to_string())?;
        }
        Ok(opened)
    }

    /// Checks the caller, applies the run's `multitask_strategy` to the runs under way
    /// (refused by `reject`; asked to stop by `interrupt` and `rollback`), and records the
    /// run as pending (durably for a background run, which must survive a restart).
    async fn admit_run(&self, call: ThreadCall) -> Result<(RunJob, Option<RunTicket>), Error> {
        // Another user's thread is unknown before it can be found busy or queued on.
        api::check_caller(&self.edge_store(), &call).await?;
        let ThreadCall {
            thread_id,
            command: ThreadCommand::Run(mut run),
            owner,
        } = call
        else {
            return Err(Error::backend("not a run"));
        };
        let now = SystemClock.now_ms();
        if run.delivery.run_id.is_empty() {
            run.delivery.run_id = uuid_v7(now, &SystemEntropy);
        }
        let under_way = self.live.on_thread(thread_id.as_str());
        let ticket = match run.multitask {
            Multitask::Reject if !under_way.is_empty() => {
                return Err(RunGate::busy_error(&thread_id))
            }
            Multitask::Reject => Some(
                self.runs
                    .enter(&thread_id)
                    .ok_or_else(|| RunGate::busy_error(&thread_id))?,
            ),
            Multitask::Interrupt | Multitask::Rollback => {
                let action = match run.multitask {
                    Multitask::Rollback => StopAction::Rollback,
                    _ => StopAction::Interrupt,
                };
                under_way.iter().for_each(|r| r.request_stop(action));
                None
            }
            Multitask::Enqueue => None,
        };
        let record = pending_record(&thread_id, &run, now);
        if run.delivery.background {
            self.run_records.put(&record)?;
            self.arm_alarm_within(record.run_at_ms - now).await;
        }
        let live = Rc::new(LiveRun::new(record));
        self.live.insert(live.clone());
        let job = RunJob {
            live,
            thread_id,
            owner,
            run,
        };
        Ok((job, ticket))
    }

    /// Starts a run as a task of the object, which outlives the request that asked for
    /// it: it waits for its time (`after_seconds`) and its turn on the thread, unless it
    /// is cancelled first, then runs.
    pub(super) fn spawn_run(inner: &Rc<ObjectInner>, job: RunJob, ticket: Option<RunTicket>) {
        let task_inner = inner.clone();
        inner.state.wait_until(async move {
            let ticket = match ticket {
                Some(ticket) => Some(ticket),
                None => task_inner.wait_turn(&job).await,
            };
            match ticket {
                Some(ticket) => task_inner.execute_run(job, ticket).await,
                None => task_inner.end_unstarted(&job.live).await,
            }
        });
    }

    /// Waits until the run may start and holds the thread; `None` if it was stopped
    /// first.
    async fn wait_turn(&self, job: &RunJob) -> Option<RunTicket> {
        let wait_ms = job.live.record().run_at_ms - SystemClock.now_ms();
        if wait_ms > 0 {
            let delay = worker::Delay::from(std::time::Duration::from_millis(wait_ms as u64));
            if let Either::Right(_) = select(delay, job.live.stopped()).await {
                return None;
            }
        }
        let turn = std::pin::pin!(self.runs.wait_for(&job.thread_id));
        match select(turn, job.live.stopped()).await {
            Either::Left((Ok(ticket), _)) if job.live.stop_requested().is_none() => Some(ticket),
            _ => None,
        }
    }

    /// A run stopped before it started: an interrupted one is kept as `interrupted`, a
    /// rolled-back one is forgotten.
    async fn end_unstarted(&self, live: &LiveRun) {
        let record = live.set_status(RunStatus::Interrupted, SystemClock.now_ms());
        let kept = match live.stop_requested() {
            Some(StopAction::Rollback) => self
                .run_records
                .delete(&record.thread_id, &record.run_id)
                .map(|_| ()),
            _ => self.run_records.put(&record),
        };
        if let Err(err) = kept {
            worker::console_error!("edge-memory: run {} not recorded: {err}", record.run_id);
        }
        live.finish(HttpResponse::error(Error::Conflict {
            kind: crate::error::ConflictKind::ThreadBusy,
            reason: format!(
                "run {} was cancelled before it started (a cancel, or a newer run's multitask_strategy)",
                record.run_id
            ),
        }));
        self.live.remove(&record.run_id);
    }

    /// Runs the turn holding the thread, then settles how it ended.
    async fn execute_run(self: &Rc<Self>, job: RunJob, ticket: RunTicket) {
        let RunJob {
            live,
            thread_id,
            owner,
            run,
        } = job;
        let background = run.delivery.background;
        let delete_thread_after = run.delivery.delete_thread_after;
        let ttl_minutes = run.delivery.ttl_minutes;
        let running = live.set_status(RunStatus::Running, SystemClock.now_ms());
        if background {
            if let Err(err) = self.run_records.put(&running) {
                worker::console_error!("edge-memory: run {} not recorded: {err}", running.run_id);
            }
        }
        let started = precise_now_ms();
        let (mut response, end, before) = self.turn(&live, thread_id.clone(), owner, run).await;
        if let Some(reason) = &response.internal_error {
            worker::console_error!("edge-memory run: {reason}");
        }
        let directory_update = response.index.take();
        let took = precise_now_ms() - started;
        self.last_run_ms.set(took);
        let was = before.as_ref().map(|b| b.status);
        let status_changed = self.settle_run(&live, &end, response.status, was).await;
        // Only the thread's time moved: its shard can wait for it.
        let quiet = !status_changed && before.is_some_and(|b| !b.stamped);
        response = response.with_header("server-timing", server_timing(took));
        live.finish(response);
        self.live.remove(&live.run_id());
        // Answered and out of the thread's line first: the directory waits for neither.
        drop(ticket);
        if let (Some(minutes), false) = (ttl_minutes, end.status == RunStatus::Error) {
            self.set_thread_ttl(&thread_id, minutes).await;
        }
        if delete_thread_after {
            self.delete_finished_thread(&thread_id).await;
        } else if let Some(update) = directory_update {
            self.directory_update(update, true, quiet).await;
        }
    }

    /// Prepares and runs the turn: the response, how the run ended, and the thread as
    /// the run found it (none if it could not be prepared).
    async fn turn(
        self: &Rc<Self>,
        live: &Rc<LiveRun>,
        thread_id: ThreadId,
        owner: Option<String>,
        run: RunRequest,
    ) -> (HttpResponse, RunEnd, Option<ThreadBefore>) {
        let prepared = async {
            let config = EdgeConfig::from_env(&self.env)?.for_run(&run);
            let model = config.model(&self.env)?;
            let store = self.edge_store();
            let mut engine = config.engine(&store, &model);
            engine.keys = Some(&self.keys);
            let prepared = api::prepare_run(&engine, thread_id, run, owner.as_deref()).await?;
            Ok::<_, Error>((config, model, prepared))
        }
        .await;
        let (config, model, prepared) = match prepared {
            Ok(ready) => ready,
            Err(err) => return (HttpResponse::error(err), RunEnd::failed(), None),
        };
        self.directory_run_started(prepared.index_update());
        let before = ThreadBefore {
            status: prepared.record.status,
            stamped: prepared.stamped,
        };
        let store = self.edge_store();
        let mut engine = config.engine(&store, &model);
        engine.keys = Some(&self.keys);
        let live_run: &LiveRun = live;
        let (response, end) = api::finish_run_until(&engine, prepared, live_run, live_run).await;
        (response, end, Some(before))
    }

    /// Records how a run ended: a rolled-back run's checkpoints and record are removed;
    /// any other gets its final status (and a resumable run's events are kept for
    /// [`RUN_EVENTS_KEPT_MS`]); the thread is `interrupted` after an interrupted run and
    /// `idle` again after the next one that succeeds. Answers whether the thread's
    /// status changed.
    async fn settle_run(
        &self,
        live: &LiveRun,
        end: &RunEnd,
        response_status: u16,
        was: Option<ThreadStatus>,
    ) -> bool {
        let now = SystemClock.now_ms();
        let record = live.record();
        let thread_id = &record.thread_id;
        if end.stopped == Some(StopAction::Rollback) {
            match self
                .roll_back(thread_id, &record.run_id, &end.written)
                .await
            {
                Ok(()) => return false,
                // A backend that cannot remove checkpoints (KV): kept, as interrupted.
                Err(err) => worker::console_error!(
                    "edge-memory: run {} not rolled back ({err}); kept as interrupted",
                    record.run_id
                ),
            }
        }
        let status = match end.status {
            RunStatus::Success if response_status >= 400 => RunStatus::Error,
            status => status,
        };
        let record = live.set_status(status, now);
        let events = if record.resumable {
            let kept = json!(live.events());
            self.run_records
                .put_events(&record.run_id, now + RUN_EVENTS_KEPT_MS, &kept)
        } else {
            Ok(())
        };
        let stopped = status == RunStatus::Interrupted || end.paused;
        let thread_status = match (status, was) {
            (_, Some(s)) if stopped && s != ThreadStatus::Interrupted => {
                Some(ThreadStatus::Interrupted)
            }
            (_, _) if stopped => None,
            (RunStatus::Success, Some(ThreadStatus::Interrupted)) => Some(ThreadStatus::Idle),
            _ => None,
        };
        if let Some(status) = thread_status {
            self.set_thread_status(thread_id, status).await;
        }
        let settled = events.and_then(|()| self.run_records.put(&record));
        if let Err(err) = settled {
            worker::console_error!("edge-memory: run {} not settled: {err}", record.run_id);
        }
        if record.resumable {
            self.arm_alarm_within(RUN_EVENTS_KEPT_MS).await;
        }
        thread_status.is_some()
    }

    /// Removes what a rolled-back run wrote: its checkpoints, then its record.
    async fn roll_back(
        &self,
        thread_id: &ThreadId,
        run_id: &str,
        written: &[crate::checkpoint::CheckpointId],
    ) -> Result<(), Error> {
        self.edge_store().remove_newest(thread_id, written).await?;
        self.run_records.delete(thread_id, run_id).map(|_| ())
    }

    async fn set_thread_status(&self, thread_id: &ThreadId, status: ThreadStatus) {
        let store = self.edge_store();
        let updated = match store.get_thread(thread_id).await {
            Ok(mut record) => {
                record.status = status;
                store.update_thread(&record).await
            }
            Err(err) => Err(err),
        };
        if let Err(err) = updated {
            worker::console_error!("edge-memory: thread status not updated: {err}");
        }
    }

    /// A stateless run's thread, deleted when the run ends (`on_completion: delete`).
    async fn delete_finished_thread(&self, thread_id: &ThreadId) {
        let store = self.edge_store();
        let record = store.get_thread(thread_id).await;
        if let Err(err) = store.delete_thread(thread_id).await {
            worker::console_error!("edge-memory: stateless thread not deleted: {err}");
            return;
        }
        let _ = self.forget_runs(thread_id);
        if let Ok(record) = record {
            let owner = crate::api::directory::owner_of(&record.metadata).map(str::to_string);
            let removal = crate::api::IndexUpdate::Remove {
                thread_id: thread_id.clone(),
                owner,
            };
            self.directory_update(removal, false, false).await;
        }
    }
}

/// The thread as a run found it.
#[derive(Debug, Clone, Copy)]
struct ThreadBefore {
    /// Its status.
    status: ThreadStatus,
    /// Whether preparing the run stamped it (or created it): see [`api::PreparedRun`].
    stamped: bool,
}

/// A new run's record, pending.
fn pending_record(thread_id: &ThreadId, run: &RunRequest, now: i64) -> RunRecord {
    let mut metadata = run.metadata.clone();
    let assistant_id = run.assistant.id().to_string();
    metadata.insert("graph_id".into(), json!(api::ASSISTANT_ID));
    metadata.insert("assistant_id".into(), json!(assistant_id));
    RunRecord {
        run_id: run.delivery.run_id.clone(),
        thread_id: thread_id.clone(),
        assistant_id,
        status: RunStatus::Pending,
        metadata,
        multitask_strategy: run.multitask.as_str().to_string(),
        created_at_ms: now,
        updated_at_ms: now,
        run_at_ms: now + run.delivery.after_ms,
        kwargs: run.delivery.kwargs.clone(),
        resumable: run.delivery.resumable,
        request: run
            .delivery
            .background
            .then(|| serde_json::to_value(run).ok())
            .flatten(),
    }
}

/// Reads the run's events up to the reply's first piece, which opens the stream.
async fn events_until_open(items: &mut UnboundedReceiver<RunItem>) -> Opening {
    let mut before_open = Vec::new();
    loop {
        match items.next().await {
            Some(RunItem::Event(event)) => {
                let opens = api::opens_stream(&event);
                before_open.push(event);
                if opens {
                    return Opening::Stream(before_open);
                }
            }
            // Over before the reply's first piece: answered whole, as JSON.
            Some(RunItem::Done(response)) => {
                let events = before_open
                    .into_iter()
                    .map(|event| Rc::unwrap_or_clone(event).into_event())
                    .collect();
                return Opening::Whole(api::whole_answer(response, events));
            }
            None => {
                return Opening::Whole(HttpResponse::error(Error::backend(
                    "the run ended without an answer",
                )))
            }
        }
    }
}

/// The most events one chunk of a run's stream carries.
const STREAM_BATCH_MAX: usize = 256;

/// Ready run items as one piece of event-stream text: each event as written when it
/// was logged, and the error event of a failed end.
fn items_text(items: Vec<RunItem>) -> String {
    let mut text = String::new();
    for item in items {
        match item {
            RunItem::Event(event) => text.push_str(event.text()),
            RunItem::Done(response) if response.status >= 400 => {
                text.push_str(&api::error_event(&response).to_text())
            }
            RunItem::Done(_) => {}
        }
    }
    text
}

/// The event stream of a run: `head`, then the rest of its events as they come; a run
/// that fails after opening ends with an `error` event.
pub(super) fn event_stream(
    head: Vec<Rc<LiveEvent>>,
    items: UnboundedReceiver<RunItem>,
    location: &str,
) -> worker::Result<Response> {
    let head: String = head.iter().map(|event| event.text()).collect();
    // The events ready at once go out as one chunk: each chunk crosses the object, the
    // worker and the runtime's stream machinery (most of a turn's CPU when every word
    // of a reply is its own event). Nothing waits: an event alone goes alone.
    let rest = items.ready_chunks(STREAM_BATCH_MAX).map(items_text);
    let body = futures_util::stream::once(async move { head })
        .chain(rest)
        .map(|text| Ok::<Vec<u8>, worker::Error>(text.into_bytes()));
    let response = Response::from_stream(body)?;
    let headers = response.headers();
    headers.set("content-type", "text/event-stream; charset=utf-8")?;
    headers.set("x-accel-buffering", "no")?;
    headers.set("content-location", location)?;
    headers.set("location", &format!("{location}/stream"))?;
    headers.set(STREAM_HEADER, "1")?;
    Ok(response)
}
