//! A run's events: the sinks they go to, the turn told as LangGraph's stream events
//! (`metadata`, `values`, `messages`, `updates`), and the whole answer of a run that is
//! not streamed over the network.

use std::cell::RefCell;

use serde_json::{json, Map, Value};

use super::events::GraphEvents;
use super::idempotency::{
    find_keyed_run, remember_keyed_reply, Keyed, IDEMPOTENCY_BODY, IDEMPOTENCY_KEY,
};
use super::{finish_run, prepare_run, PreparedRun};
use crate::api::runs::RunStatus;
use crate::api::wire::{self, message_chunk_json, values_json};
use crate::api::{
    Body, HttpResponse, RunRequest, SseEvent, StreamMode, ASSISTANT_ID, ASSISTANT_UUID,
};
use crate::chat::{
    ChatModel, DeltaSink, Engine, Replied, StopAction, StopSignal, StoredInput, Turn,
};
use crate::checkpoint::{CheckpointId, CheckpointRecord, Checkpointer};
use crate::error::{Error, Result};
use crate::message::Message;
use crate::runtime::{uuid_v4, uuid_v7};
use crate::thread::ThreadId;

/// Receives a streamed run's events as they happen.
pub trait RunSink {
    /// The next event of the stream.
    fn event(&self, event: SseEvent);

    /// The run's input is stored: it makes turn `turn` of its thread (1: the thread's
    /// first), which a streamed response's opening says ([`crate::api::diagnostics::TURN_HEADER`]).
    fn turn(&self, _turn: u64) {}
}

/// Collects a run's events; the pure stand-in for a network stream.
#[derive(Debug, Default)]
pub struct CollectedEvents(pub RefCell<Vec<SseEvent>>);

impl RunSink for CollectedEvents {
    fn event(&self, event: SseEvent) {
        self.0.borrow_mut().push(event);
    }
}

/// Whether a response may still be an error status after `event` was produced: a
/// stream is answered with its status once the reply's first piece exists; errors after
/// that arrive as an `error` event in the stream.
pub fn opens_stream(event: &SseEvent) -> bool {
    event.event == "messages"
}

/// The `error` event that ends a stream whose run failed after it opened (LangGraph's
/// shape: `{"error": <kind>, "message": <detail>}`).
pub fn error_event(response: &HttpResponse) -> SseEvent {
    let message = response
        .json()
        .and_then(|body| body.get("detail"))
        .and_then(Value::as_str)
        .unwrap_or("run failed")
        .to_string();
    let kind = match response.status {
        502..=504 => "UpstreamError",
        400..=499 => "ValueError",
        _ => "InternalServerError",
    };
    SseEvent {
        event: "error".into(),
        data: json!({"error": kind, "message": message, "status": response.status}),
        id: None,
    }
}

/// Sends a streamed run's `messages` (and `events`) as the reply grows.
struct MessageEvents<'a> {
    sink: &'a dyn RunSink,
    reply_id: String,
    meta: Value,
    /// `messages-tuple` asked.
    tuples: bool,
    events: &'a GraphEvents<'a>,
}

impl DeltaSink for MessageEvents<'_> {
    fn delta(&self, text: &str) {
        let chunk = message_chunk_json(&self.reply_id, text, None);
        self.events.chunk(&chunk);
        if self.tuples {
            self.sink.event(SseEvent {
                event: "messages".into(),
                data: Value::Array(vec![chunk, self.meta.clone()]),
                id: None,
            });
        }
    }
}

/// How a run ended, for its record: its status, and the checkpoints it wrote (what a
/// rollback removes).
#[derive(Debug, Clone, PartialEq)]
pub struct RunEnd {
    /// `success`, `interrupted` or `error`.
    pub status: RunStatus,
    /// Asked to stop: how.
    pub stopped: Option<StopAction>,
    /// The checkpoints the run stored, oldest first.
    pub written: Vec<CheckpointId>,
    /// The run's id, as its events and checkpoints name it.
    pub run_id: Option<String>,
    /// Stopped before the model as asked (`interrupt_before`): the thread waits,
    /// `interrupted`, for a run that resumes it.
    pub paused: bool,
    /// The turn of its thread the run makes, once its input is stored (1: the first).
    pub turn: Option<u64>,
}

impl RunEnd {
    /// A run that failed before it stored anything.
    pub fn failed() -> Self {
        RunEnd {
            status: RunStatus::Error,
            stopped: None,
            written: Vec::new(),
            run_id: None,
            paused: false,
            turn: None,
        }
    }
}

/// What a turn's events end with: the final state (when a response carries it), the
/// head, and how the run ended.
pub(super) type TurnEvents = (Vec<Message>, CheckpointRecord, RunEnd);

/// Where a run's events go, and in which modes.
struct Teller<'a> {
    sink: &'a dyn RunSink,
    modes: Vec<StreamMode>,
}

impl Teller<'_> {
    fn has(&self, mode: StreamMode) -> bool {
        self.modes.contains(&mode)
    }

    fn emit(&self, name: &str, data: Value) {
        self.sink.event(SseEvent {
            event: name.to_string(),
            data,
            id: None,
        })
    }
}

/// Runs the turn of a prepared run, telling it to `sink` in the modes asked, until the
/// model is done or `stop` fires; returns the final state (when a response carries it),
/// the head and how it ended.
pub(super) async fn run_turn_events<C: Checkpointer, M: ChatModel>(
    engine: &Engine<'_, C, M>,
    prepared: PreparedRun,
    sink: &dyn RunSink,
    stop: &dyn StopSignal,
) -> Result<TurnEvents> {
    let PreparedRun {
        thread_id, mut run, ..
    } = prepared;
    let streaming = run.stream.is_some();
    let pause = run.interrupt_before;
    let tell = Teller {
        sink,
        modes: run.stream.take().unwrap_or_default(),
    };
    let input = input_json(&run.input);
    let (mut stored, keyed) = store_keyed_input(engine, &thread_id, run).await?;
    let turn = stored.base.as_ref().map_or(0, CheckpointRecord::turns) + 1;
    sink.turn(turn);
    let run_id = name_run(engine, &mut stored);
    if streaming {
        tell.emit("metadata", json!({"run_id": run_id, "attempt": 1}));
    }
    // The whole state only when the response carries it (runs/wait, `values`, `events`):
    // the turn itself reads just its window.
    let wants_values = !streaming || tell.has(StreamMode::Values) || tell.has(StreamMode::Events);
    let messages = match (&stored.base, wants_values) {
        (Some(base), true) => {
            engine
                .store
                .get(&thread_id, &base.checkpoint_id)
                .await?
                .messages
        }
        _ => Vec::new(),
    };
    // An answered retry's state already ends with the reply.
    let input_state = match stored.answered.is_some() {
        true => &messages[..messages.len().saturating_sub(1)],
        false => &messages[..],
    };
    let meta = message_meta(&thread_id, stored.reply_step, &run_id);
    let node_ids = (uuid_v4(engine.entropy), uuid_v4(engine.entropy));
    let events = GraphEvents::new(
        sink,
        tell.has(StreamMode::Events),
        &run_id,
        node_ids,
        (meta.clone(), stored.reply_step),
    );
    events.graph_start(&input);
    if tell.has(StreamMode::Values) {
        tell.emit("values", values_json(input_state));
    }
    let end = RunEnd {
        status: RunStatus::Success,
        stopped: None,
        written: stored
            .input_checkpoint
            .iter()
            .map(|c| c.checkpoint_id.clone())
            .collect(),
        run_id: Some(run_id),
        paused: false,
        turn: Some(turn),
    };
    if pause && stored.answered.is_none() {
        return paused(&tell, stored, (messages, end));
    }
    events.node_start(input_state, &stored.context);
    let deltas = MessageEvents {
        sink,
        reply_id: stored.reply_id.clone(),
        meta,
        tuples: tell.has(StreamMode::MessagesTuple),
        events: &events,
    };
    let turn = reply_events(engine, stored, (messages, end), (&tell, &deltas), stop).await?;
    remember_reply(engine, &thread_id, keyed, &turn);
    Ok(turn)
}

/// Keeps which reply answered a keyed run, when this run stored it whole (a retry
/// answered again stores nothing). A failure loses nothing
/// a retry soon after needs: the input's metadata carries the key too, and the newest
/// checkpoints are searched for it.
fn remember_reply<C, M>(
    engine: &Engine<'_, C, M>,
    thread_id: &ThreadId,
    keyed: KeyOfRun,
    (_, head, end): &TurnEvents,
) {
    // A stopped run's partial reply may be rolled back: its retries use the checkpoints.
    let stored = end.stopped.is_none() && end.written.contains(&head.checkpoint_id);
    if let (Some((key, body)), true) = (keyed, stored) {
        let (keyed, now) = ((key.as_str(), body.as_deref()), engine.clock.now_ms());
        let _ = remember_keyed_reply(engine.keys, thread_id, keyed, &head.checkpoint_id, now);
    }
}

/// Stopped before the node, as LangGraph's `interrupt_before`: the input is stored, the
/// model not asked; a later run with no input (or `command.resume`) continues.
fn paused(
    tell: &Teller<'_>,
    stored: StoredInput,
    (messages, mut end): (Vec<Message>, RunEnd),
) -> Result<TurnEvents> {
    if tell.has(StreamMode::Updates) {
        tell.emit("updates", json!({"__interrupt__": []}));
    }
    end.paused = true;
    let head = stored
        .base
        .ok_or_else(|| Error::backend("an interrupted run with no state"))?;
    Ok((messages, head, end))
}

/// The second half of a turn's events: the model's reply as it comes (or stopped), then
/// the reply's `messages`, `updates`, `values` and `events` endings.
async fn reply_events<C: Checkpointer, M: ChatModel>(
    engine: &Engine<'_, C, M>,
    stored: StoredInput,
    (mut messages, mut end): (Vec<Message>, RunEnd),
    (tell, deltas): (&Teller<'_>, &MessageEvents<'_>),
    stop: &dyn StopSignal,
) -> Result<TurnEvents> {
    let answered = stored.answered.is_some();
    let base = stored.base.clone();
    let outcome = match engine.reply_until(stored, deltas, stop).await? {
        Replied::Complete(outcome) => outcome,
        Replied::Stopped { action, partial } => {
            end.status = RunStatus::Interrupted;
            end.stopped = Some(action);
            let Some(partial) = partial else {
                let head = base.ok_or_else(|| Error::backend("a stopped run with no state"))?;
                return Ok((messages, head, end));
            };
            partial
        }
    };
    if !answered {
        end.written.push(outcome.checkpoint.checkpoint_id.clone());
    }
    // The reply as JSON, for the modes that carry it.
    let reply =
        (tell.has(StreamMode::Updates) || deltas.events.is_on()).then(|| outcome.reply.to_json());
    if deltas.tuples {
        let last = message_chunk_json(&outcome.reply.id, "", Some(&outcome.end));
        tell.emit("messages", json!([last, deltas.meta]));
    }
    if let (Some(reply), true) = (&reply, tell.has(StreamMode::Updates)) {
        tell.emit("updates", json!({"agent": {"messages": [reply]}}));
    }
    // The state the node started from: what the list holds before the reply.
    let input_len = messages.len();
    // (A stream that asked for no state has none loaded: the reply is then all it holds,
    // and nothing reads it.)
    if !answered {
        messages.push(outcome.reply);
    }
    if tell.has(StreamMode::Values) {
        tell.emit("values", values_json(&messages));
    }
    deltas
        .events
        .node_end(reply.as_ref(), &messages[..input_len]);
    deltas.events.graph_end(&messages);
    Ok((messages, outcome.checkpoint, end))
}

/// A run's input as the graph receives it: `{"messages": [...]}`.
fn input_json(input: &[crate::message::MessageOp]) -> Value {
    let messages: Vec<Value> = input
        .iter()
        .filter_map(|op| match op {
            crate::message::MessageOp::Upsert { message } => Some(message.to_json()),
            _ => None,
        })
        .collect();
    json!({"messages": messages})
}

/// A run's `Idempotency-Key` and the digest of its request body.
type KeyOfRun = Option<(String, Option<String>)>;

/// Stores the run's input, unless its `Idempotency-Key` names a run already stored: then
/// that run's input is answered (or its reply returned again), adding nothing. Returns
/// the stored input and the run's key.
async fn store_keyed_input<C: Checkpointer, M: ChatModel>(
    engine: &Engine<'_, C, M>,
    thread_id: &ThreadId,
    run: RunRequest,
) -> Result<(StoredInput, KeyOfRun)> {
    let key_of_run = (run.idempotency_key.clone()).map(|k| (k, run.idempotency_body.clone()));
    let mut metadata = run.metadata;
    if !run.delivery.run_id.is_empty() {
        metadata.insert("run_id".into(), json!(run.delivery.run_id));
    }
    let keyed = match &run.idempotency_key {
        Some(key) => {
            metadata.insert(IDEMPOTENCY_KEY.into(), json!(key));
            let body = run.idempotency_body.as_deref();
            if let Some(body) = body {
                metadata.insert(IDEMPOTENCY_BODY.into(), json!(body));
            }
            let now = engine.clock.now_ms();
            find_keyed_run((engine.store, engine.keys), thread_id, (key, body), now).await?
        }
        None => Keyed::New,
    };
    let mut stored = match keyed {
        Keyed::New => {
            engine
                .store_input(Turn {
                    thread_id: thread_id.clone(),
                    input: run.input,
                    from_checkpoint: run.checkpoint_id,
                    metadata,
                })
                .await?
        }
        Keyed::Answered(reply) => engine.answered_at(thread_id, &reply).await?,
        // The keyed input is the head, unanswered: answer it, adding nothing.
        Keyed::Unanswered => {
            engine
                .store_input(Turn {
                    thread_id: thread_id.clone(),
                    input: Vec::new(),
                    from_checkpoint: None,
                    metadata: Map::new(),
                })
                .await?
        }
    };
    // The key belongs to the input's checkpoint only.
    stored.metadata.remove(IDEMPOTENCY_KEY);
    stored.metadata.remove(IDEMPOTENCY_BODY);
    Ok((stored, key_of_run))
}

/// The run's id. A run is named by the checkpoint holding its input: its id is the run
/// id, stored nowhere else (see `wire::run_id_of`). A run without input, or one whose
/// id was chosen before it started, stores its id in the metadata.
fn name_run<C, M>(engine: &Engine<'_, C, M>, stored: &mut StoredInput) -> String {
    // A run recorded before it started (a background run, or one a client can join)
    // carries the id it was given.
    if let Some(run_id) = stored.metadata.get("run_id").and_then(Value::as_str) {
        return run_id.to_string();
    }
    let answered = stored.answered.is_some();
    // The checkpoint that names the run: its input; for a retry, the input it resumes or
    // the reply it returns again (`run_id_of` reads the reply's parent).
    let named = stored
        .input_checkpoint
        .as_ref()
        .or(stored.base.as_ref().filter(|b| {
            answered || b.metadata.get("source").and_then(Value::as_str) == Some("input")
        }));
    match named.and_then(wire::run_id_of) {
        Some(id) => id.to_string(),
        None => {
            let run_id = uuid_v7(engine.clock.now_ms(), engine.entropy);
            stored.metadata.insert("run_id".into(), json!(run_id));
            run_id
        }
    }
}

/// The metadata every `messages` event of the reply carries, as LangGraph's.
fn message_meta(thread_id: &ThreadId, step: i64, run_id: &str) -> Value {
    json!({
        "langgraph_node": "agent",
        "langgraph_step": step,
        "langgraph_triggers": ["branch:to:agent"],
        "langgraph_path": ["__pregel_pull", "agent"],
        "graph_id": ASSISTANT_ID,
        "assistant_id": ASSISTANT_UUID,
        "thread_id": thread_id.as_str(),
        "run_id": run_id,
        "run_attempt": 1,
    })
}

/// Runs `run` on the thread and answers the whole response at once: the pure form of
/// what the worker streams. Errors before the reply's first piece are answered with
/// their status; later ones end the stream with an `error` event.
pub async fn run_collected<C: Checkpointer, M: ChatModel>(
    engine: &Engine<'_, C, M>,
    thread_id: ThreadId,
    run: RunRequest,
    owner: Option<String>,
) -> HttpResponse {
    let prepared = match prepare_run(engine, thread_id, run, owner.as_deref()).await {
        Ok(prepared) => prepared,
        Err(err) => return HttpResponse::error(err),
    };
    let collected = CollectedEvents::default();
    let response = finish_run(engine, prepared, &collected).await;
    let mut events = collected.0.take();
    if response.status != 200 && events.iter().any(opens_stream) {
        events.push(error_event(&response));
        return HttpResponse::events(events);
    }
    whole_answer(response, events)
}

/// The answer of a run whose stream never opened: a stream's events whole, or the run's
/// own response (a wait's values, an error as JSON).
pub fn whole_answer(response: HttpResponse, events: Vec<SseEvent>) -> HttpResponse {
    match (response.status, &response.body) {
        (200, Body::EventStream(_)) => HttpResponse {
            body: Body::EventStream(events),
            ..response
        },
        _ => response,
    }
}
