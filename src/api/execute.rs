//! Executing thread commands on one thread's storage.

use serde_json::{json, Map, Value};

use super::wire::{checkpoint_ref, message_chunk_json, values_json};
use super::{
    state_json, thread_json, HttpResponse, IfExists, IfNotExists, IndexUpdate, RunRequest,
    SaverCommand, SseEvent, StreamMode, ThreadCall, ThreadCommand, ASSISTANT_ID, ASSISTANT_UUID,
};
use crate::chat::{stream_chunks, ChatModel, Engine, Turn, TurnOutcome};
use crate::checkpoint::memory::MemoryCheckpointer;
use crate::checkpoint::saver::SaverStore;
use crate::checkpoint::{Checkpointer, ListQuery};
use crate::error::{Error, Result};
use crate::limits::LIST_LIMIT_MAX;
use crate::message::Message;
use crate::runtime::{uuid_v7, Clock, Entropy};
use crate::thread::{ThreadId, ThreadRecord};

/// Executes a planned command on one thread's storage.
pub async fn execute<C: Checkpointer + SaverStore, M: ChatModel>(
    call: ThreadCall,
    engine: &Engine<'_, C, M>,
) -> HttpResponse {
    execute_inner(call, engine).await.into()
}

/// Runs on a fresh thread in a throwaway in-memory store: nothing is kept.
pub async fn execute_stateless<M: ChatModel>(
    mut run: RunRequest,
    model: &M,
    clock: &dyn Clock,
    entropy: &dyn Entropy,
) -> HttpResponse {
    let store = MemoryCheckpointer::new();
    let engine = Engine {
        store: &store,
        model,
        clock,
        entropy,
    };
    run.if_not_exists = IfNotExists::Create;
    let mut response = execute(
        ThreadCall {
            thread_id: ThreadId::generate(entropy),
            command: ThreadCommand::Run(run),
        },
        &engine,
    )
    .await;
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
            let snapshot = match checkpoint_id {
                Some(id) => Some(store.get(&thread_id, &id).await?),
                None => store.latest(&thread_id).await?,
            };
            let parent = snapshot
                .as_ref()
                .and_then(|s| s.checkpoint.parent_id.clone());
            Ok(HttpResponse::ok(state_json(
                &thread_id,
                snapshot.as_ref(),
                parent.as_ref(),
            )))
        }
        ThreadCommand::UpdateState {
            ops,
            checkpoint_id,
            as_node,
            if_not_exists,
        } => {
            let mut record = thread_for_write(engine, &thread_id, if_not_exists).await?;
            let checkpoint = engine
                .update_state(&thread_id, ops, checkpoint_id.as_ref(), &as_node)
                .await?;
            record.updated_at_ms = checkpoint.created_at_ms;
            Ok(HttpResponse::ok(json!({
                "checkpoint": checkpoint_ref(&thread_id, &checkpoint.checkpoint_id),
            }))
            .with_index(upsert(record)))
        }
        ThreadCommand::History {
            limit,
            before,
            metadata,
            checkpoint_id,
        } => {
            store.get_thread(&thread_id).await?;
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
        ThreadCommand::Run(run) => run_on_thread(engine, thread_id, run).await,
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

async fn run_on_thread<C: Checkpointer, M: ChatModel>(
    engine: &Engine<'_, C, M>,
    thread_id: ThreadId,
    run: RunRequest,
) -> Result<HttpResponse> {
    let store = engine.store;
    let mut record = thread_for_write(engine, &thread_id, run.if_not_exists).await?;
    let run_id = uuid_v7(engine.clock.now_ms(), engine.entropy);
    // graph_id, assistant_id and thread_id are the same for every run here: they are
    // added when a state is rendered, not stored with every checkpoint.
    let mut metadata = run.metadata;
    metadata.insert("run_id".into(), json!(run_id));
    let outcome = engine
        .run_turn(Turn {
            thread_id: thread_id.clone(),
            input: run.input,
            from_checkpoint: run.checkpoint_id,
            metadata,
        })
        .await?;
    // Chat UIs list threads by these (LangGraph stamps them at the first run).
    if !record.metadata.contains_key("graph_id") {
        record
            .metadata
            .insert("graph_id".into(), json!(ASSISTANT_ID));
        record
            .metadata
            .insert("assistant_id".into(), json!(ASSISTANT_UUID));
        record.updated_at_ms = outcome.checkpoint.created_at_ms;
        store.update_thread(&record).await?;
    }
    record.updated_at_ms = outcome.checkpoint.created_at_ms;
    let wants_values = run
        .stream
        .as_ref()
        .is_none_or(|modes| modes.contains(&StreamMode::Values));
    // The whole state only when the response carries it (runs/wait, `values`): the
    // turn itself read just its window.
    let messages = if wants_values {
        store
            .latest(&thread_id)
            .await?
            .map(|s| s.messages)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let response = match run.stream {
        None => HttpResponse::ok(values_json(&messages)),
        Some(modes) => {
            HttpResponse::events(run_events(&thread_id, &run_id, &modes, &outcome, &messages))
        }
    };
    Ok(response.with_index(IndexUpdate::Upsert { record }))
}

/// The events of a streamed run, in LangGraph's order: metadata, values (input
/// applied), messages (one per chunk), updates, values (final).
///
/// `messages` is the final state when `values` is asked for; the state after the input
/// is that without the reply, which the turn appended last.
fn run_events(
    thread_id: &ThreadId,
    run_id: &str,
    modes: &[StreamMode],
    outcome: &TurnOutcome,
    messages: &[Message],
) -> Vec<SseEvent> {
    let event = |name: &str, data: Value| SseEvent {
        event: name.to_string(),
        data,
    };
    let mut events = vec![event("metadata", json!({"run_id": run_id, "attempt": 1}))];
    if modes.contains(&StreamMode::Values) {
        let input_state = messages
            .strip_suffix(std::slice::from_ref(&outcome.reply))
            .unwrap_or(messages);
        events.push(event("values", values_json(input_state)));
    }
    if modes.contains(&StreamMode::MessagesTuple) {
        let step = outcome.checkpoint.step();
        let meta = json!({
            "langgraph_node": "agent",
            "langgraph_step": step,
            "langgraph_triggers": ["branch:to:agent"],
            "langgraph_path": ["__pregel_pull", "agent"],
            "graph_id": ASSISTANT_ID,
            "assistant_id": ASSISTANT_UUID,
            "thread_id": thread_id.as_str(),
            "run_id": run_id,
            "run_attempt": 1,
        });
        let text = outcome.reply.text();
        let chunks = stream_chunks(&text);
        let last = chunks.len().saturating_sub(1);
        for (i, chunk) in chunks.iter().enumerate() {
            let chunk = message_chunk_json(&outcome.reply.id, chunk, i == last);
            events.push(event("messages", json!([chunk, meta])));
        }
    }
    if modes.contains(&StreamMode::Updates) {
        events.push(event(
            "updates",
            json!({"agent": {"messages": [outcome.reply.to_json()]}}),
        ));
    }
    if modes.contains(&StreamMode::Values) {
        events.push(event("values", values_json(messages)));
    }
    events
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
async fn thread_for_write<C: Checkpointer, M>(
    engine: &Engine<'_, C, M>,
    thread_id: &ThreadId,
    if_not_exists: IfNotExists,
) -> Result<ThreadRecord> {
    match engine.store.get_thread(thread_id).await {
        Ok(record) => Ok(record),
        Err(Error::NotFound { what: "thread", .. }) if if_not_exists == IfNotExists::Create => {
            let record = ThreadRecord::new(thread_id.clone(), Map::new(), engine.clock.now_ms());
            engine.store.create_thread(&record).await?;
            Ok(record)
        }
        Err(err) => Err(err),
    }
}
