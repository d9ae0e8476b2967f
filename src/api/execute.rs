//! Executing thread commands on one thread's storage.

use serde_json::{json, Map, Value};

use super::directory;
use super::wire::values_json;
use super::{
    thread_json, HttpResponse, IfExists, IfNotExists, IndexUpdate, RunRequest, SaverCommand,
    ThreadCall, ThreadCommand, ASSISTANT_ID,
};
use crate::api::auth::OWNER_KEY;
use crate::chat::{ChatModel, Engine, NeverStop, StopSignal};
use crate::checkpoint::saver::SaverStore;
use crate::checkpoint::{CheckpointRecord, Checkpointer, NewCheckpoint};
use crate::error::{Error, Result};
use crate::limits::METADATA_MAX_BYTES;
use crate::message::MessageOp;
use crate::thread::{ThreadId, ThreadRecord};

mod events;
mod guard;
mod idempotency;
mod run;
mod saver;
mod state;

use guard::check_guard;
pub use idempotency::{IDEMPOTENCY_BODY, IDEMPOTENCY_KEY, IDEMPOTENCY_TTL_MS, IDEMPOTENCY_WINDOW};
use run::run_turn_events;
pub use run::{
    error_event, opens_stream, run_collected, whole_answer, CollectedEvents, RunEnd, RunSink,
};

/// Executes a planned command on one thread's storage.
pub async fn execute<C: Checkpointer + SaverStore, M: ChatModel>(
    call: ThreadCall,
    engine: &Engine<'_, C, M>,
) -> HttpResponse {
    if let Some(owner) = &call.owner {
        if let Err(err) = check_owner(engine.store, &call, owner).await {
            return HttpResponse::error(err);
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
                        | ThreadCommand::Saver(SaverCommand::Put(_) | SaverCommand::PutWrites(_))
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

/// Carries out a command whose caller may use the thread; each command is a step of
/// its own.
async fn execute_inner<C: Checkpointer + SaverStore, M: ChatModel>(
    call: ThreadCall,
    engine: &Engine<'_, C, M>,
) -> Result<HttpResponse> {
    let store = engine.store;
    let thread_id = call.thread_id;
    let owner = call.owner.as_deref();
    match call.command {
        ThreadCommand::Create {
            metadata,
            if_exists,
            supersteps,
            ..
        } => create(engine, thread_id, metadata, (if_exists, supersteps)).await,
        ThreadCommand::Get => {
            let record = store.get_thread(&thread_id).await?;
            let latest = store.latest(&thread_id).await?;
            Ok(HttpResponse::ok(thread_json(&record, latest.as_ref())))
        }
        ThreadCommand::Patch { metadata, .. } => patch(engine, &thread_id, metadata).await,
        ThreadCommand::Delete => {
            // The owner names the directory shard the thread's copy must leave.
            let record = store.get_thread(&thread_id).await?;
            let owner = directory::owner_of(&record.metadata).map(str::to_string);
            store.delete_thread(&thread_id).await?;
            let removal = IndexUpdate::Remove { thread_id, owner };
            Ok(HttpResponse::no_content().with_index(removal))
        }
        ThreadCommand::GetState { checkpoint_id } => {
            state::get_state(store, &thread_id, checkpoint_id).await
        }
        ThreadCommand::UpdateState {
            ops,
            checkpoint_id,
            // Accepted for the SDKs; LangGraph 1.x no longer records the writer either.
            as_node: _,
            if_not_exists,
        } => {
            let update = (ops, checkpoint_id);
            state::update_state(engine, &thread_id, update, if_not_exists, owner).await
        }
        ThreadCommand::History {
            limit,
            before,
            metadata,
            checkpoint_id,
        } => state::history(store, &thread_id, (limit, before), metadata, checkpoint_id).await,
        ThreadCommand::Run(run) => {
            let chat = run.chat.is_some();
            let response = run_collected(engine, thread_id, run, call.owner).await;
            Ok(if chat {
                super::aisdk::collected(response)
            } else {
                response
            })
        }
        ThreadCommand::ChatMessages => {
            store.get_thread(&thread_id).await?;
            let messages = store.latest(&thread_id).await?.map(|s| s.messages);
            let body = super::aisdk::ui_messages_json(&messages.unwrap_or_default());
            Ok(HttpResponse::ok(body))
        }
        ThreadCommand::Saver(command) => {
            if let (Some(owner), SaverCommand::Put(_) | SaverCommand::PutWrites(_)) =
                (owner, &command)
            {
                // A user's first checkpoint makes the thread, theirs (a saver put on an
                // unknown thread otherwise makes an ownerless one). LangGraph sends a new
                // thread's first writes beside its first put, in either order.
                thread_for_write(engine, &thread_id, IfNotExists::Create, Some(owner)).await?;
            }
            saver::saver(engine, &thread_id, command, call.owner.as_deref())
        }
        ThreadCommand::Export => export(store, &thread_id).await,
        // Run records live in the worker's thread objects, beside the runs under way.
        ThreadCommand::RunOp(_) => Err(Error::Unsupported {
            what: "run records on this backend (the worker's thread objects keep them)".into(),
        }),
        ThreadCommand::Import {
            metadata,
            checkpoints,
        } => import(engine, thread_id, metadata, checkpoints).await,
    }
}

/// `Create`: a new thread; an existing id is a conflict, or answered as it is.
async fn create<C: Checkpointer, M: ChatModel>(
    engine: &Engine<'_, C, M>,
    thread_id: ThreadId,
    metadata: Map<String, Value>,
    (if_exists, supersteps): (IfExists, Vec<Vec<MessageOp>>),
) -> Result<HttpResponse> {
    let store = engine.store;
    let mut record = ThreadRecord::new(thread_id.clone(), metadata, engine.clock.now_ms());
    match store.create_thread(&record).await {
        Ok(()) if !supersteps.is_empty() => {
            for ops in supersteps {
                engine.update_state(&thread_id, ops, None).await?;
            }
            let latest = store.latest(&thread_id).await?;
            if let Some(head) = &latest {
                record.updated_at_ms = head.checkpoint.created_at_ms.max(record.updated_at_ms);
            }
            Ok(HttpResponse::ok(thread_json(&record, latest.as_ref())).with_index(upsert(record)))
        }
        Ok(()) => Ok(HttpResponse::ok(thread_json(&record, None)).with_index(upsert(record))),
        Err(Error::Conflict { .. }) if if_exists == IfExists::DoNothing => {
            let existing = store.get_thread(&thread_id).await?;
            let latest = store.latest(&thread_id).await?;
            Ok(HttpResponse::ok(thread_json(&existing, latest.as_ref())))
        }
        Err(err) => Err(err),
    }
}

/// `Patch`: metadata merged into the thread's.
async fn patch<C: Checkpointer, M>(
    engine: &Engine<'_, C, M>,
    thread_id: &ThreadId,
    metadata: Map<String, Value>,
) -> Result<HttpResponse> {
    let store = engine.store;
    let mut record = store.get_thread(thread_id).await?;
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
    let latest = store.latest(thread_id).await?;
    Ok(HttpResponse::ok(thread_json(&record, latest.as_ref())).with_index(upsert(record)))
}

/// `Export`: the thread's whole history, as the `Import` that copies it.
async fn export<C: Checkpointer>(store: &C, thread_id: &ThreadId) -> Result<HttpResponse> {
    let record = store.get_thread(thread_id).await?;
    let checkpoints = store.export_thread(thread_id).await?;
    let import = ThreadCommand::Import {
        metadata: record.metadata,
        checkpoints,
    };
    let body = serde_json::to_value(&import)
        .map_err(|e| Error::backend(format_args!("export does not serialize: {e}")))?;
    Ok(HttpResponse::ok(body))
}

/// `Import`: a new thread made of an export's checkpoints.
async fn import<C: Checkpointer, M>(
    engine: &Engine<'_, C, M>,
    thread_id: ThreadId,
    metadata: Map<String, Value>,
    checkpoints: Vec<NewCheckpoint>,
) -> Result<HttpResponse> {
    let store = engine.store;
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

/// The index entry of a thread whose record changed.
fn upsert(record: ThreadRecord) -> IndexUpdate {
    IndexUpdate::Upsert { record }
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
    /// Whether preparing changed what search filters on (a new thread, or the graph's
    /// ids stamped): then the directory must hear of this run soon, not only of its time.
    pub stamped: bool,
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
    if let Some(turn) = &run.chat {
        // A chat turn's input: what its transcript adds to the stored history.
        let reconciled = super::aisdk::chat_input(engine.store, &thread_id, turn).await?;
        run.input = reconciled.input;
        if !reconciled.report.agrees() || !reconciled.report.removed.is_empty() {
            let report = reconciled.report.to_json();
            run.metadata
                .insert(super::aisdk::TRANSCRIPT_KEY.into(), report);
        }
    }
    let now = engine.clock.now_ms();
    // The thread names the assistant of its latest run (`DELETE /assistants/{id}
    // ?delete_threads=true` finds threads by it), as LangGraph's server stamps it.
    let assistant_id = json!(run.assistant.id());
    let unstamped = !record.metadata.contains_key("graph_id");
    // A thread created here is unstamped too.
    let stamped = unstamped || record.metadata.get("assistant_id") != Some(&assistant_id);
    if stamped {
        if unstamped {
            record
                .metadata
                .insert("graph_id".into(), json!(ASSISTANT_ID));
        }
        record.metadata.insert("assistant_id".into(), assistant_id);
        record.updated_at_ms = now.max(record.updated_at_ms);
        engine.store.update_thread(&record).await?;
    }
    record.updated_at_ms = now.max(record.updated_at_ms);
    Ok(PreparedRun {
        thread_id,
        run,
        record,
        stamped,
    })
}

/// The head headers every run and state response carries (`x-thread-head`,
/// `x-thread-turns`), so a client can notice a server that forgot.
pub(crate) fn with_head(response: HttpResponse, head: &CheckpointRecord) -> HttpResponse {
    response
        .with_header("x-thread-head", head.checkpoint_id.to_string())
        .with_header("x-thread-turns", head.turns().to_string())
}

/// The turn header of a run that stored its input (the memory doctor reads it).
fn with_turn(response: HttpResponse, end: &RunEnd) -> HttpResponse {
    match end.turn {
        Some(turn) => response.with_header(super::diagnostics::TURN_HEADER, turn.to_string()),
        None => response,
    }
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
    finish_run_until(engine, prepared, sink, &NeverStop).await.0
}

/// [`finish_run`] that stops when `stop` fires (a cancel, a newer run), and says how
/// the run ended.
pub async fn finish_run_until<C: Checkpointer, M: ChatModel>(
    engine: &Engine<'_, C, M>,
    prepared: PreparedRun,
    sink: &dyn RunSink,
    stop: &dyn StopSignal,
) -> (HttpResponse, RunEnd) {
    let index = prepared.index_update();
    let stream = prepared.is_stream();
    let transcript = prepared.run.metadata.get(super::aisdk::TRANSCRIPT_KEY);
    let transcript = transcript.map(|report| report.to_string());
    match run_turn_events(engine, prepared, sink, stop).await {
        Ok((_, head, end)) if stream => {
            let mut response = with_turn(with_head(HttpResponse::events(Vec::new()), &head), &end);
            if let Some(report) = transcript {
                response = response.with_header(super::aisdk::TRANSCRIPT_HEADER, report);
            }
            (response.with_index(index), end)
        }
        Ok((messages, head, end)) => (
            with_turn(
                with_head(HttpResponse::ok(values_json(&messages)), &head),
                &end,
            )
            .with_index(index),
            end,
        ),
        Err(err) => (HttpResponse::error(err), RunEnd::failed()),
    }
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
