//! Runs under way in one thread object: each run's event log, the clients that follow
//! it, the stop asked of it, and how it ended.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};

use super::{event_mode, RunRecord, RunStatus, RUN_EVENTS_MAX_BYTES};
use crate::api::{HttpResponse, RunSink, SseEvent};
use crate::chat::{StopAction, StopSignal};

/// What a follower of a run receives.
#[derive(Debug)]
pub enum RunItem {
    /// The run's next event, shared with the run's log and its other followers (a
    /// reply's every piece is an event: copied per follower, or written out again for
    /// each, they cost more than the rest of the turn's bookkeeping).
    Event(Rc<LiveEvent>),
    /// The run is over: its final response (an error, or what a `wait` answers).
    Done(HttpResponse),
}

/// A run's event with its `text/event-stream` text, written once: the log's byte bound
/// measures it, and every follower sends it as it is.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    inner: SseEvent,
    text: String,
}

impl LiveEvent {
    /// `event`, written out, to be shared.
    pub fn shared(event: SseEvent) -> Rc<Self> {
        let text = event.to_text();
        Rc::new(LiveEvent { inner: event, text })
    }

    /// The event as stream text ([`SseEvent::to_text`]).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The event itself.
    pub fn into_event(self) -> SseEvent {
        self.inner
    }
}

impl Deref for LiveEvent {
    type Target = SseEvent;

    fn deref(&self) -> &SseEvent {
        &self.inner
    }
}

/// Where a follower starts in a run's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Replay {
    /// Every event from the first.
    All,
    /// Events after the one with this id.
    After(u64),
    /// Only the events still to come.
    Live,
}

impl Replay {
    /// Whether an event with id `id` is replayed.
    fn includes(self, id: u64) -> bool {
        match self {
            Replay::All => true,
            Replay::After(after) => id > after,
            Replay::Live => false,
        }
    }
}

/// One follower: its channel, and the modes it asked for (all when `None`).
struct Follower {
    sender: UnboundedSender<RunItem>,
    modes: Option<Vec<String>>,
}

impl Follower {
    fn wants(&self, event: &SseEvent) -> bool {
        // With modes asked, only their events (and errors), as LangGraph's server.
        match (&self.modes, event_mode(&event.event)) {
            (None, _) => true,
            (Some(modes), Some(mode)) => modes.iter().any(|m| m == mode),
            (Some(_), None) => event.event == "error",
        }
    }
}

/// A run under way (or just finished) in this object.
pub struct LiveRun {
    record: RefCell<RunRecord>,
    log: RefCell<Vec<Rc<LiveEvent>>>,
    log_bytes: Cell<usize>,
    next_id: Cell<u64>,
    followers: RefCell<Vec<Follower>>,
    stop: Cell<Option<StopAction>>,
    stop_wakers: RefCell<Vec<Waker>>,
    done: RefCell<Option<HttpResponse>>,
    turn: Cell<Option<u64>>,
}

impl std::fmt::Debug for LiveRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveRun")
            .field("record", &self.record.borrow())
            .field("events", &self.log.borrow().len())
            .field("stop", &self.stop.get())
            .finish()
    }
}

impl LiveRun {
    /// A run about to start, as `record` describes it.
    pub fn new(record: RunRecord) -> Self {
        LiveRun {
            record: RefCell::new(record),
            log: RefCell::new(Vec::new()),
            log_bytes: Cell::new(0),
            next_id: Cell::new(1),
            followers: RefCell::new(Vec::new()),
            stop: Cell::new(None),
            stop_wakers: RefCell::new(Vec::new()),
            done: RefCell::new(None),
            turn: Cell::new(None),
        }
    }

    /// The turn of its thread this run makes, once its input is stored (1: the first).
    pub fn turn_of_thread(&self) -> Option<u64> {
        self.turn.get()
    }

    /// The run's record as it is now.
    pub fn record(&self) -> RunRecord {
        self.record.borrow().clone()
    }

    /// The run's id.
    pub fn run_id(&self) -> String {
        self.record.borrow().run_id.clone()
    }

    /// Sets the run's status at `now_ms`; the updated record.
    pub fn set_status(&self, status: RunStatus, now_ms: i64) -> RunRecord {
        let mut record = self.record.borrow_mut();
        record.status = status;
        record.updated_at_ms = now_ms.max(record.updated_at_ms);
        if status != RunStatus::Pending {
            record.request = None;
        }
        record.clone()
    }

    /// Sends `event` to every follower that wants it, numbered, and logs it while the
    /// log is within [`RUN_EVENTS_MAX_BYTES`].
    pub fn push(&self, mut event: SseEvent) {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        event.id = Some(id.to_string());
        let event = LiveEvent::shared(event);
        self.followers.borrow_mut().retain(|follower| {
            !follower.wants(&event)
                || follower
                    .sender
                    .unbounded_send(RunItem::Event(event.clone()))
                    .is_ok()
        });
        let size = event.text().len();
        if self.log_bytes.get() + size <= RUN_EVENTS_MAX_BYTES {
            self.log_bytes.set(self.log_bytes.get() + size);
            self.log.borrow_mut().push(event);
        }
    }

    /// Logs an event that already has its id (a finished run's kept events, replayed).
    pub fn replay_logged(&self, event: SseEvent) {
        if let Some(id) = event.id.as_deref().and_then(|id| id.parse::<u64>().ok()) {
            self.next_id.set(self.next_id.get().max(id + 1));
        }
        self.log.borrow_mut().push(LiveEvent::shared(event));
    }

    /// The events logged so far.
    pub fn events(&self) -> Vec<SseEvent> {
        self.log.borrow().iter().map(|e| e.inner.clone()).collect()
    }

    /// Follows the run: the logged events `replay` asks for (of `modes`, all when
    /// `None`), then each new one, then [`RunItem::Done`]. A finished run answers its
    /// replay and its end at once.
    pub fn follow(&self, replay: Replay, modes: Option<Vec<String>>) -> UnboundedReceiver<RunItem> {
        let (sender, receiver) = unbounded();
        let follower = Follower { sender, modes };
        for event in self.log.borrow().iter() {
            let id = event
                .id
                .as_deref()
                .and_then(|i| i.parse().ok())
                .unwrap_or(0);
            if replay.includes(id) && follower.wants(event) {
                let _ = follower
                    .sender
                    .unbounded_send(RunItem::Event(event.clone()));
            }
        }
        match &*self.done.borrow() {
            Some(response) => {
                let _ = follower
                    .sender
                    .unbounded_send(RunItem::Done(response.clone()));
            }
            None => self.followers.borrow_mut().push(follower),
        }
        receiver
    }

    /// The run is over: followers get `response` and their streams end.
    pub fn finish(&self, response: HttpResponse) {
        for follower in self.followers.borrow_mut().drain(..) {
            let _ = follower
                .sender
                .unbounded_send(RunItem::Done(response.clone()));
        }
        *self.done.borrow_mut() = Some(response);
    }

    /// Whether the run is over.
    pub fn is_finished(&self) -> bool {
        self.done.borrow().is_some()
    }

    /// Asks the run to stop. The first stop asked wins, except that a rollback asked
    /// after an interrupt still removes what the run wrote.
    pub fn request_stop(&self, action: StopAction) {
        match (self.stop.get(), action) {
            (None, _) | (Some(StopAction::Interrupt), StopAction::Rollback) => {
                self.stop.set(Some(action))
            }
            _ => {}
        }
        for waker in self.stop_wakers.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    /// The stop asked of the run, if any.
    pub fn stop_requested(&self) -> Option<StopAction> {
        self.stop.get()
    }
}

/// Resolves when a stop is asked of the run.
struct Stopped<'a>(&'a LiveRun);

impl Future for Stopped<'_> {
    type Output = StopAction;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<StopAction> {
        match self.0.stop.get() {
            Some(action) => Poll::Ready(action),
            None => {
                self.0.stop_wakers.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl StopSignal for LiveRun {
    fn stopped(&self) -> Pin<Box<dyn Future<Output = StopAction> + '_>> {
        Box::pin(Stopped(self))
    }
}

impl RunSink for LiveRun {
    fn event(&self, event: SseEvent) {
        self.push(event);
    }

    fn turn(&self, turn: u64) {
        self.turn.set(Some(turn));
    }
}

/// The runs under way in one object, by run id.
#[derive(Debug, Default)]
pub struct LiveRuns {
    runs: RefCell<HashMap<String, Rc<LiveRun>>>,
}

impl LiveRuns {
    /// No runs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a run about to start.
    pub fn insert(&self, run: Rc<LiveRun>) {
        self.runs.borrow_mut().insert(run.run_id(), run);
    }

    /// The run `run_id`, while it is under way.
    pub fn get(&self, run_id: &str) -> Option<Rc<LiveRun>> {
        self.runs.borrow().get(run_id).cloned()
    }

    /// Forgets a finished run.
    pub fn remove(&self, run_id: &str) {
        self.runs.borrow_mut().remove(run_id);
    }

    /// The runs under way on `thread_id`, oldest first.
    pub fn on_thread(&self, thread_id: &str) -> Vec<Rc<LiveRun>> {
        let mut runs: Vec<Rc<LiveRun>> = self
            .runs
            .borrow()
            .values()
            .filter(|r| r.record.borrow().thread_id.as_str() == thread_id)
            .cloned()
            .collect();
        crate::sort::sort_by(&mut runs, |a, b| {
            let key = |r: &Rc<LiveRun>| (r.record.borrow().created_at_ms, r.run_id());
            key(a).cmp(&key(b))
        });
        runs
    }

    /// Whether no run is under way in this object.
    pub fn is_empty(&self) -> bool {
        self.runs.borrow().is_empty()
    }

    /// Whether any run is under way on `thread_id`.
    pub fn busy(&self, thread_id: &str) -> bool {
        !self.on_thread(thread_id).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thread::ThreadId;
    use futures_util::StreamExt;
    use serde_json::json;

    fn record() -> RunRecord {
        RunRecord {
            run_id: "r1".into(),
            thread_id: ThreadId::parse("t").unwrap(),
            assistant_id: "a".into(),
            status: RunStatus::Running,
            metadata: Default::default(),
            multitask_strategy: "reject".into(),
            created_at_ms: 1,
            updated_at_ms: 1,
            run_at_ms: 1,
            kwargs: json!({}),
            resumable: true,
            request: None,
        }
    }

    fn event(name: &str, n: i64) -> SseEvent {
        SseEvent {
            event: name.into(),
            data: json!(n),
            id: None,
        }
    }

    fn drain(mut receiver: UnboundedReceiver<RunItem>) -> Vec<String> {
        let mut seen = Vec::new();
        while let Ok(item) = receiver.try_recv() {
            seen.push(match item {
                RunItem::Event(e) => format!("{}:{}", e.id.as_deref().unwrap(), e.event),
                RunItem::Done(r) => format!("done:{}", r.status),
            });
        }
        seen
    }

    #[test]
    fn followers_replay_what_they_missed_then_follow_live() {
        let run = LiveRun::new(record());
        run.push(event("metadata", 0));
        run.push(event("values", 1));
        let after_first = run.follow(Replay::After(1), None);
        let live_only = run.follow(Replay::Live, None);
        let updates_only = run.follow(Replay::All, Some(vec!["updates".into()]));
        run.push(event("updates", 2));
        run.finish(HttpResponse::no_content());
        assert_eq!(drain(after_first), ["2:values", "3:updates", "done:204"]);
        assert_eq!(drain(live_only), ["3:updates", "done:204"]);
        assert_eq!(drain(updates_only), ["3:updates", "done:204"]);
        // After the end: the whole log and the end at once.
        assert_eq!(
            drain(run.follow(Replay::All, None)),
            ["1:metadata", "2:values", "3:updates", "done:204"]
        );
        assert_eq!(drain(run.follow(Replay::Live, None)), ["done:204"]);
    }

    #[test]
    fn a_follower_that_left_is_dropped_and_the_run_goes_on() {
        let run = LiveRun::new(record());
        drop(run.follow(Replay::Live, None));
        run.push(event("values", 1));
        assert!(run.followers.borrow().is_empty());
        assert_eq!(run.events().len(), 1);
    }

    #[test]
    fn a_stop_wakes_the_run_and_a_rollback_overrides_an_interrupt() {
        let run = LiveRun::new(record());
        let mut stopped = run.stopped();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(stopped.as_mut().poll(&mut cx).is_pending());
        run.request_stop(StopAction::Interrupt);
        assert_eq!(
            stopped.as_mut().poll(&mut cx),
            Poll::Ready(StopAction::Interrupt)
        );
        run.request_stop(StopAction::Rollback);
        run.request_stop(StopAction::Interrupt);
        assert_eq!(run.stop_requested(), Some(StopAction::Rollback));
    }

    #[test]
    fn the_log_is_bounded_but_followers_get_everything() {
        let run = LiveRun::new(record());
        let mut receiver = run.follow(Replay::Live, None);
        let big = json!("x".repeat(RUN_EVENTS_MAX_BYTES / 3));
        for _ in 0..5 {
            run.push(SseEvent {
                event: "values".into(),
                data: big.clone(),
                id: None,
            });
        }
        assert_eq!(run.events().len(), 2, "logged up to the byte bound");
        let mut got = 0;
        while receiver.try_recv().is_ok() {
            got += 1;
        }
        assert_eq!(got, 5);
        pollster::block_on(async {
            run.finish(HttpResponse::no_content());
            let mut replay = run.follow(Replay::After(1), None);
            assert!(matches!(replay.next().await, Some(RunItem::Event(_))));
        });
    }
}
