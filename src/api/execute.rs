//! Executing thread commands on one thread's storage.

use serde_json::{json, Map, Value};

use super::wire::{self, checkpoint_ref, message_chunk_json, values_json};
use std::cell::RefCell;

use super::{
    state_json, thread_json, Body, HttpResponse, IfExists, IfNotExists, IndexUpdate, RunGuard,
    RunRequest, SaverCommand, SseEvent, StreamMode, ThreadCall, ThreadCommand, ASSISTANT_ID,
    ASSISTANT_UUID,
};
use crate::api::auth::OWNER_KEY;
use crate::chat::{ChatModel, DeltaSink, Engine, NoSink, Turn};
use crate::checkpoint::saver::SaverStore;
use crate::checkpoint::{CheckpointId, CheckpointRecord, Checkpointer, ListQuery};
use crate::error::{Error, Result};
use crate::limits::{LIST_LIMIT_MAX, METADATA_MAX_BYTES};
use crate::message::Message;
use crate::runtime::uuid_v7;
use crate::thread::{ThreadId, ThreadRecord};

/// Executes a planned command on one thread's storage.
pub async fn execute<C: Checkpointer + SaverStore, M: ChatModel>(
    call: ThreadCall,
    engine: &Engine<'_, C, M>,
) -> HttpResponse {
    if let Some(owner) = &call.owner {
        if let Err(err) = check_owner(engine.store, &call, owner).await {
            return HttpResponse::error(&err);
        }
    }
    execute_inner(call, engine).await.into()
}

/// Whether the thread of `call` belongs to `owner`: another user's thread is answered
/// as unknown (404), never as forbidden, so its existence is not confirmed.
async fn check_owner<C: Checkpointer>(store: &C, call: &ThreadCall, owner: &str) -> Result<()> {
    match &call.command {
        // Runs check in `thread_for_write`; a copy's target is a new thread.
        ThreadCommand::Run(_) | ThreadCommand::Import { .. } => Ok(()),
        command => match store.get_thread(&call.thread_id).await {
            Ok(record) if owned_by(&record, owner) => Ok(()),
            // Creating an id another user has: the usual conflict, nothing more.
            Ok(_) if matches!(command, ThreadCommand::Create { .. }) => Err(Error::Conflict {
                kind: crate::error::ConflictKind::ThreadExists,
                reason: format!("Thread '{}' already exists", call.thread_id),
            }),
            Ok(_) => Err(Error::thread_not_found(call.thread_id.as_str())),
            Err(Error::NotFound { .. })
                if matches!(
                    command,
                    ThreadCommand::Create { .. }
                        | ThreadCommand::UpdateState {
                            if_not_exists: IfNotExists::Create,
                            ..
                        }
                ) =>
            {
                Ok(())
            }
            Err(err) => Err(err),
        },
    }
}

/// The check a call passes before it may wait for its thread (the run gate): another
/// user's thread is unknown (404) before the caller can learn it is busy (409) or take
/// a place in the owner's line. Runs on a thread that does not exist yet pass, to be
/// created or refused by `thread_for_write`.
pub async fn check_caller<C: Checkpointer>(store: &C, call: &ThreadCall) -> Result<()> {
    let Some(owner) = &call.owner else {
        return Ok(());
    };
    match &call.command {
        ThreadCommand::Run(_) => match store.get_thread(&call.thread_id).await {
            Ok(record) if !owned_by(&record, owner) => {
                Err(Error::thread_not_found(call.thread_id.as_str()))
            }
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(err),
        },
        _ => check_owner(store, call, owner).await,
    }
}

fn owned_by(record: &ThreadRecord, owner: &str) -> bool {
    record.metadata.get(OWNER_KEY).and_then(Value::as_str) == Some(owner)
}

/// Runs on a throwaway thread that is deleted right after: nothing is kept. The
/// engine's store only lends the space.
pub async fn execute_stateless<C: Checkpointer + SaverStore, M: ChatModel>(
    mut run: RunRequest,
    engine: &Engine<'_, C, M>,
) -> HttpResponse {
    run.if_not_exists = IfNotExists::Create;
    let thread_id = ThreadId::generate(engine.entropy);
    let mut response = execute(
        ThreadCall {
            thread_id: thread_id.clone(),
            command: ThreadCommand::Run(run),
            owner: None,
        },
        engine,
    )
    .await;
    if let Err(err) = engine.store.delete_thread(&thread_id).await {
        if !matches!(err, Error::NotFound { .. }) {
            response.internal_error = Some(format!("stateless thread not deleted: {err}"));
        }
    }
    response.index = None;
    response
}

async fn execute_inner<C: Checkpointer + SaverStore, M: ChatModel>(
    call: ThreadCall,
    engine: &Engine<'_, C, M>,
) -> Result<HttpResponse> {
    let store = engine.store;
    let thread_id = call.thread_id;
    let upsert = |record: ThreadRecord| IndexUpdate::Upsert { record };
    match call.command {
        ThreadCommand::Create {
            metadata,
            if_exists,
        } => {
            let record = ThreadRecord::new(thread_id.clone(), metadata, engine.clock.now_ms());
            match store.create_thread(&record).await {
                Ok(()) => {
                    Ok(HttpResponse::ok(thread_json(&record, None)).with_index(upsert(record)))
                }
                Err(Error::Conflict { .. }) if if_exists == IfExists::DoNothing => {
                    let existing = store.get_thread(&thread_id).await?;
                    let latest = store.latest(&thread_id).await?;
                    Ok(HttpResponse::ok(thread_json(&existing, latest.as_ref())))
                }
                Err(err) => Err(err),
            }
        }
        ThreadCommand::Get => {
            let record = store.get_thread(&thread_id).await?;
            let latest = store.latest(&thread_id).await?;
            Ok(HttpResponse::ok(thread_json(&record, latest.as_ref())))
        }
        ThreadCommand::Patch { metadata } => {
            let mut record = store.get_thread(&thread_id).await?;
            record.metadata.extend(metadata);
            // Each patch is within the limit; their merge must be too.
            let size = Value::Object(record.metadata.clone()).to_string().len();
            if size > METADATA_MAX_BYTES {
                return Err(Error::TooLarge {
                    what: "metadata after the merge (bytes)".into(),
                    size,
                    limit: METADATA_MAX_BYTES,
                });
            }
            record.updated_at_ms = engine.clock.now_ms().max(record.updated_at_ms);
            store.update_thread(&record).await?;
            let latest = store.latest(&thread_id).await?;
            Ok(HttpResponse::ok(thread_json(&record, latest.as_ref())).with_index(upsert(record)))
        }
        ThreadCommand::Delete => {
            store.delete_thread(&thread_id).await?;
            Ok(HttpResponse::no_content().with_index(IndexUpdate::Remove { thread_id }))
        }
        ThreadCommand::GetState { checkpoint_id } => {
            store.get_thread(&thread_id).await?;
            let at_head = checkpoint_id.is_none();
            let snapshot = match checkpoint_id {
                Some(id) => Some(store.get(&thread_id, &id).await?),
                None => store.latest(&thread_id).await?,
            };
            let parent = snapshot
                .as_ref()
                .and_then(|s| s.checkpoint.parent_id.clone());
            let response =
                HttpResponse::ok(state_json(&thread_id, snapshot.as_ref(), parent.as_ref()));
            Ok(match &snapshot {
                Some(s) if at_head => with_head(response, &s.checkpoint),
                _ => response,
            })
        }
        ThreadCommand::UpdateState {
            ops,
            checkpoint_id,
            // Accepted for the SDKs; LangGraph 1.x no longer records the writer either.
            as_node: _,
            if_not_exists,
        } => {
            let mut record =
                thread_for_write(engine, &thread_id, if_not_exists, call.owner.as_deref()).await?;
            let checkpoint = engine
                .update_state(&thread_id, ops, checkpoint_id.as_ref())
                .await?;
            record.updated_at_ms = checkpoint.created_at_ms;
            let response = HttpResponse::ok(json!({
                "checkpoint": checkpoint_ref(&thread_id, &checkpoint.checkpoint_id),
            }));
            Ok(with_head(response, &checkpoint).with_index(upsert(record)))
        }
        ThreadCommand::History {
            limit,
            before,
            metadata,
            checkpoint_id,
        } => {
            store.get_thread(&thread_id).await?;
            if let Some(before) = &before {
                // An unknown `before` is an error, not an empty or a whole history.
                store.window(&thread_id, Some(before), 0, &[]).await?;
            }
            // With a metadata filter, read more records than asked and filter them.
            let query = ListQuery {
                before,
                limit: if metadata.is_empty() && checkpoint_id.is_none() {
                    limit
                } else {
                    LIST_LIMIT_MAX
                },
            };
            let records = store.list(&thread_id, &query).await?;
            let mut states = Vec::new();
            for record in records
                .into_iter()
                .filter(|r| {
                    checkpoint_id
                        .as_ref()
                        .is_none_or(|id| r.checkpoint_id == *id)
                })
                .filter(|r| metadata.iter().all(|(k, v)| r.metadata.get(k) == Some(v)))
                .take(limit)
            {
                let snapshot = store.get(&thread_id, &record.checkpoint_id).await?;
                states.push(state_json(
                    &thread_id,
                    Some(&snapshot),
                    record.parent_id.as_ref(),
                ));
            }
            Ok(HttpResponse::ok(Value::Array(states)))
        }
        ThreadCommand::Run(run) => Ok(run_collected(engine, thread_id, run, call.owner).await),
        ThreadCommand::Saver(command) => saver(engine, &thread_id, command),
        ThreadCommand::Export => {
            let record = store.get_thread(&thread_id).await?;
            let checkpoints = store.export_thread(&thread_id).await?;
            let import = ThreadCommand::Import {
                metadata: record.metadata,
                checkpoints,
            };
            let body = serde_json::to_value(&import)
                .map_err(|e| Error::backend(format_args!("export does not serialize: {e}")))?;
            Ok(HttpResponse::ok(body))
        }
        ThreadCommand::Import {
            metadata,
            checkpoints,
        } => {
            let mut record = ThreadRecord::new(thread_id.clone(), metadata, engine.clock.now_ms());
            store.create_thread(&record).await?;
            for mut checkpoint in checkpoints {
                checkpoint.record.thread_id = thread_id.clone();
                store.put(&checkpoint).await?;
            }
            let latest = store.latest(&thread_id).await?;
            if let Some(head) = &latest {
                record.updated_at_ms = head.checkpoint.created_at_ms;
            }
            Ok(HttpResponse::ok(thread_json(&record, latest.as_ref())).with_index(upsert(record)))
        }
    }
}

/// Receives a streamed run's events as they happen.
pub trait RunSink {
    /// The next event of the stream.
    fn event(&self, event: SseEvent);
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
    }
}

/// A run whose thread is ready: it exists (or was created as asked) and carries the
/// graph's ids.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedRun {
    /// The thread.
    pub thread_id: ThreadId,
    /// The run.
    pub run: RunRequest,
    /// The thread's record, as the index should have it.
    pub record: ThreadRecord,
}

impl PreparedRun {
    /// Whether the run answers with an event stream (`runs/stream`).
    pub fn is_stream(&self) -> bool {
        self.run.stream.is_some()
    }

    /// The thread index entry after this run.
    pub fn index_update(&self) -> IndexUpdate {
        IndexUpdate::Upsert {
            record: self.record.clone(),
        }
    }
}

/// Makes the thread ready for a run: checks or creates it and stamps the graph's ids
/// (chat UIs list threads by them; LangGraph stamps them at the first run).
pub async fn prepare_run<C: Checkpointer, M>(
    engine: &Engine<'_, C, M>,
    thread_id: ThreadId,
    run: RunRequest,
    owner: Option<&str>,
) -> Result<PreparedRun> {
    // A client that remembers a history must not get a fresh thread made for it.
    let if_not_exists = if run.guard.expects_memory() {
        IfNotExists::Reject
    } else {
        run.if_not_exists
    };
    let mut record = match thread_for_write(engine, &thread_id, if_not_exists, owner).await {
        Err(Error::NotFound { what: "thread", .. }) if run.guard.expects_memory() => {
            return Err(Error::MemoryMismatch {
                reason: format!(
                    "thread '{thread_id}' is unknown here, but the client remembers a conversation in it (expected_head/expected_turns); nothing was started"
                ),
            })
        }
        other => other?,
    };
    let mut run = run;
    if !run.guard.is_empty() {
        let newer_than_listed = check_guard(engine.store, &thread_id, &run.guard).await?;
        // The client saw a newer head than the listing shows (KV's listing lags after a
        // cold start): continue from what it saw, never from something older.
        if run.checkpoint_id.is_none() {
            run.checkpoint_id = newer_than_listed;
        }
    }
    let now = engine.clock.now_ms();
    if !record.metadata.contains_key("graph_id") {
        record
            .metadata
            .insert("graph_id".into(), json!(ASSISTANT_ID));
        record
            .metadata
            .insert("assistant_id".into(), json!(ASSISTANT_UUID));
        record.updated_at_ms = now.max(record.updated_at_ms);
        engine.store.update_thread(&record).await?;
    }
    record.updated_at_ms = now.max(record.updated_at_ms);
    Ok(PreparedRun {
        thread_id,
        run,
        record,
    })
}

/// Checks what the client believes about the thread against its head: `If-Match` must
/// be the head (409 otherwise); `expected_head` must be a checkpoint the thread has and
/// `expected_turns` at most its turns (409 `memory_mismatch` otherwise). Returns
/// `expected_head` when it is newer than the listed head (checkpoint ids sort by time):
/// a lagging listing, which the run must not continue from.
async fn check_guard<C: Checkpointer>(
    store: &C,
    thread_id: &ThreadId,
    guard: &RunGuard,
) -> Result<Option<CheckpointId>> {
    let head = store
        .list(
            thread_id,
            &ListQuery {
                before: None,
                limit: 1,
            },
        )
        .await?
        .into_iter()
        .next();
    let head_id = head.as_ref().map(|h| h.checkpoint_id.clone());
    let turns = head.as_ref().map_or(0, CheckpointRecord::turns);
    let describe = || match &head_id {
        Some(id) => format!("the thread's head is {id} after {turns} turns"),
        None => "the thread has no checkpoints".to_string(),
    };
    if let Some(expected) = &guard.if_match {
        if head_id.as_ref() != Some(expected) {
            return Err(Error::Conflict {
                kind: crate::error::ConflictKind::NotHead,
                reason: format!("If-Match {expected} is not the head: {}", describe()),
            });
        }
    }
    let mut newer_than_listed = None;
    if let Some(expected) = &guard.expected_head {
        if head_id.as_ref() != Some(expected) {
            // A checkpoint the thread has (KV: visible, else 409 "not visible yet"):
            // older, the client is behind and nothing is lost; newer, the listing lags.
            match store.window(thread_id, Some(expected), 0, &[]).await {
                Ok(_) if head_id.as_ref().is_none_or(|head| expected > head) => {
                    newer_than_listed = Some(expected.clone());
                }
                Ok(_) => {}
                Err(Error::NotFound { .. }) => {
                    return Err(Error::MemoryMismatch {
                        reason: format!(
                            "the client expected checkpoint {expected}, which this thread does not have; {}",
                            describe()
                        ),
                    })
                }
                Err(err) => return Err(err),
            }
        }
    }
    if let Some(expected) = guard.expected_turns {
        if turns < expected {
            return Err(Error::MemoryMismatch {
                reason: format!(
                    "the client expected at least {expected} turns; {}",
                    describe()
                ),
            });
        }
    }
    Ok(newer_than_listed)
}

/// The head headers every run and state response carries (`x-thread-head`,
/// `x-thread-turns`), so a client can notice a server that forgot.
pub(crate) fn with_head(response: HttpResponse, head: &CheckpointRecord) -> HttpResponse {
    response
        .with_header("x-thread-head", head.checkpoint_id.to_string())
        .with_header("x-thread-turns", head.turns().to_string())
}

/// Runs a prepared run, sending a streamed run's events to `sink` as they happen:
/// metadata, values (input applied), messages (one per piece of the reply, then one
/// with how it ended), updates, values (final). Answers the final response: the final
/// values for `runs/wait`; for `runs/stream` an empty event stream (the events went to
/// the sink), or the error.
pub async fn finish_run<C: Checkpointer, M: ChatModel>(
    engine: &Engine<'_, C, M>,
    prepared: PreparedRun,
    sink: &dyn RunSink,
) -> HttpResponse {
    let index = prepared.index_update();
    let stream = prepared.is_stream();
    match run_turn_events(engine, prepared, sink).await {
        Ok((_, head)) if stream => {
            with_head(HttpResponse::events(Vec::new()), &head).with_index(index)
        }
        Ok((messages, head)) => {
            with_head(HttpResponse::ok(values_json(&messages)), &head).with_index(index)
        }
        Err(err) => HttpResponse::error(&err),
    }
}

/// Sends a streamed run's `messages` events as the reply grows.
struct MessageEvents<'a> {
    sink: &'a dyn RunSink,
    reply_id: String,
    meta: Value,
}

impl DeltaSink for MessageEvents<'_> {
    fn delta(&self, text: &str) {
        let chunk = message_chunk_json(&self.reply_id, text, None);
        self.sink.event(SseEvent {
            event: "messages".into(),
            data: json!([chunk, self.meta]),
        });
    }
}

async fn run_turn_events<C: Checkpointer, M: ChatModel>(
    engine: &Engine<'_, C, M>,
    prepared: PreparedRun,
    sink: &dyn RunSink,
) -> Result<(Vec<Message>, CheckpointRecord)> {
    let PreparedRun { thread_id, run, .. } = prepared;
    let streaming = run.stream.is_some();
    let modes = run.stream.unwrap_or_default();
    let emit = |name: &str, data: Value| {
        sink.event(SseEvent {
            event: name.to_string(),
            data,
        })
    };
    let mut metadata = run.metadata;
    let keyed = match &run.idempotency_key {
        Some(key) => {
            metadata.insert(IDEMPOTENCY_KEY.into(), json!(key));
            let body = run.idempotency_body.as_deref();
            if let Some(body) = body {
                metadata.insert(IDEMPOTENCY_BODY.into(), json!(body));
            }
            let now = engine.clock.now_ms();
            find_keyed_run(engine.store, &thread_id, (key, body), now).await?
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
        Keyed::Answered(reply) => engine.answered_at(&thread_id, &reply).await?,
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
    // A run is named by the checkpoint holding its input: its id is the run id, stored
    // nowhere else (see `wire::run_id_of`). A run without input stores its own.
    let answered = stored.answered.is_some();
    // The checkpoint that names the run: its input; for a retry, the input it resumes or
    // the reply it returns again (`run_id_of` reads the reply's parent).
    let named = stored
        .input_checkpoint
        .as_ref()
        .or(stored.base.as_ref().filter(|b| {
            answered || b.metadata.get("source").and_then(Value::as_str) == Some("input")
        }));
    let run_id = match named.and_then(wire::run_id_of) {
        Some(id) => id.to_string(),
        None => {
            let run_id = uuid_v7(engine.clock.now_ms(), engine.entropy);
            stored.metadata.insert("run_id".into(), json!(run_id));
            run_id
        }
    };
    if streaming {
        emit("metadata", json!({"run_id": run_id, "attempt": 1}));
    }
    // The whole state only when the response carries it (runs/wait, `values`): the
    // turn itself reads just its window.
    let wants_values = !streaming || modes.contains(&StreamMode::Values);
    let mut messages = match (&stored.base, wants_values) {
        (Some(base), true) => {
            engine
                .store
                .get(&thread_id, &base.checkpoint_id)
                .await?
                .messages
        }
        _ => Vec::new(),
    };
    if modes.contains(&StreamMode::Values) {
        // An answered retry's state already ends with the reply.
        let input_state = match answered {
            true => &messages[..messages.len().saturating_sub(1)],
            false => &messages[..],
        };
        emit("values", values_json(input_state));
    }
    let meta = json!({
        "langgraph_node": "agent",
        "langgraph_step": stored.reply_step,
        "langgraph_triggers": ["branch:to:agent"],
        "langgraph_path": ["__pregel_pull", "agent"],
        "graph_id": ASSISTANT_ID,
        "assistant_id": ASSISTANT_UUID,
        "thread_id": thread_id.as_str(),
        "run_id": run_id,
        "run_attempt": 1,
    });
    let tuples = modes.contains(&StreamMode::MessagesTuple);
    let deltas = MessageEvents {
        sink,
        reply_id: stored.reply_id.clone(),
        meta,
    };
    let outcome = engine
        .reply(stored, if tuples { &deltas } else { &NoSink })
        .await?;
    if tuples {
        let last = message_chunk_json(&outcome.reply.id, "", Some(&outcome.end));
        emit("messages", json!([last, deltas.meta]));
    }
    if modes.contains(&StreamMode::Updates) {
        emit(
            "updates",
            json!({"agent": {"messages": [outcome.reply.to_json()]}}),
        );
    }
    if wants_values && !answered {
        messages.push(outcome.reply);
    }
    if modes.contains(&StreamMode::Values) {
        emit("values", values_json(&messages));
    }
    Ok((messages, outcome.checkpoint))
}

/// The checkpoint metadata key holding a run's `Idempotency-Key`.
pub const IDEMPOTENCY_KEY: &str = "idempotency_key";

/// The checkpoint metadata key holding the digest of the keyed run's request body.
pub const IDEMPOTENCY_BODY: &str = "idempotency_body";

/// How many of a thread's newest checkpoints a retry's key is looked for in: every run
/// that can be waiting in the thread's line when a retry arrives (two checkpoints each),
/// and a margin. A retry outrun by more turns than that is a new run.
pub const IDEMPOTENCY_WINDOW: usize = 2 * (super::ENQUEUE_MAX_WAITING + 16);

/// How long an `Idempotency-Key` names its run, in ms (a day, as payment APIs keep
/// theirs): a retry comes within minutes; a key reused later starts a new run.
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 3600 * 1000;

/// What an `Idempotency-Key` names.
enum Keyed {
    /// Nothing yet: a new run.
    New,
    /// A run whose input is stored and whose reply is this checkpoint.
    Answered(CheckpointId),
    /// A run whose input is stored, unanswered, and still the head.
    Unanswered,
}

/// Looks for the run that carried `key` (with a request body of digest `body`) among the
/// thread's newest checkpoints younger than [`IDEMPOTENCY_TTL_MS`].
async fn find_keyed_run<C: Checkpointer>(
    store: &C,
    thread_id: &ThreadId,
    (key, body): (&str, Option<&str>),
    now_ms: i64,
) -> Result<Keyed> {
    let records = store
        .list(
            thread_id,
            &ListQuery {
                before: None,
                limit: IDEMPOTENCY_WINDOW,
            },
        )
        .await?;
    let Some(input) = records.iter().find(|r| {
        r.metadata.get(IDEMPOTENCY_KEY).and_then(Value::as_str) == Some(key)
            && r.metadata.get("source").and_then(Value::as_str) != Some("loop")
            && now_ms - r.created_at_ms <= IDEMPOTENCY_TTL_MS
    }) else {
        return Ok(Keyed::New);
    };
    let stored_body = input.metadata.get(IDEMPOTENCY_BODY).and_then(Value::as_str);
    if stored_body.is_some() && body.is_some() && stored_body != body {
        return Err(Error::invalid(
            "Idempotency-Key",
            format!("{key:?} was sent before with a different request body; a new request needs a new key"),
        ));
    }
    if let Some(reply) = records.iter().find(|r| {
        r.parent_id.as_ref() == Some(&input.checkpoint_id)
            && r.metadata.get("source").and_then(Value::as_str) == Some("loop")
    }) {
        return Ok(Keyed::Answered(reply.checkpoint_id.clone()));
    }
    if records.first().map(|head| &head.checkpoint_id) == Some(&input.checkpoint_id) {
        return Ok(Keyed::Unanswered);
    }
    Err(Error::Conflict {
        kind: crate::error::ConflictKind::IdempotencyKeySpent,
        reason: format!(
            "the run with Idempotency-Key {key:?} failed and the thread has moved on since; send the turn again with a new key"
        ),
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
        Err(err) => return HttpResponse::error(&err),
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

/// A LangGraph checkpointer call on this thread's storage.
fn saver<C: SaverStore, M>(
    engine: &Engine<'_, C, M>,
    thread_id: &ThreadId,
    command: SaverCommand,
) -> Result<HttpResponse> {
    let store = engine.store;
    let now = engine.clock.now_ms();
    Ok(match command {
        SaverCommand::Put(put) => {
            store.saver_put(thread_id, &put, now)?;
            HttpResponse::ok(json!({
                "thread_id": thread_id.as_str(),
                "checkpoint_ns": put.checkpoint_ns,
                "checkpoint_id": put.checkpoint_id,
            }))
        }
        SaverCommand::PutWrites(writes) => {
            store.saver_put_writes(thread_id, &writes, now)?;
            HttpResponse::no_content()
        }
        SaverCommand::Get {
            checkpoint_ns,
            checkpoint_id,
        } => HttpResponse::ok(to_json(&store.saver_get(
            thread_id,
            &checkpoint_ns,
            checkpoint_id.as_deref(),
        )?)?),
        SaverCommand::List(query) => {
            HttpResponse::ok(to_json(&store.saver_list(thread_id, &query)?)?)
        }
        SaverCommand::Prune { keep_latest } => {
            store.saver_prune(thread_id, keep_latest)?;
            HttpResponse::no_content()
        }
        SaverCommand::Export => HttpResponse::ok(to_json(&store.saver_export(thread_id)?)?),
        SaverCommand::Import(export) => {
            store.saver_import(thread_id, &export, now)?;
            HttpResponse::no_content()
        }
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Value> {
    serde_json::to_value(value)
        .map_err(|e| Error::backend(format_args!("response does not serialize: {e}")))
}

/// The thread's record, creating the thread first when it is unknown and asked to.
/// With an `owner`, another user's thread is unknown, and a created one is the owner's.
async fn thread_for_write<C: Checkpointer, M>(
    engine: &Engine<'_, C, M>,
    thread_id: &ThreadId,
    if_not_exists: IfNotExists,
    owner: Option<&str>,
) -> Result<ThreadRecord> {
    match engine.store.get_thread(thread_id).await {
        Ok(record) if owner.is_none_or(|o| owned_by(&record, o)) => Ok(record),
        Ok(_) => Err(Error::thread_not_found(thread_id.as_str())),
        Err(Error::NotFound { what: "thread", .. }) if if_not_exists == IfNotExists::Create => {
            let mut metadata = Map::new();
            if let Some(owner) = owner {
                metadata.insert(OWNER_KEY.into(), json!(owner));
            }
            let record = ThreadRecord::new(thread_id.clone(), metadata, engine.clock.now_ms());
            engine.store.create_thread(&record).await?;
            Ok(record)
        }
        Err(err) => Err(err),
    }
}
