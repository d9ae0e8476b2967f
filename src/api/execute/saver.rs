//! LangGraph checkpointer calls (`POST /threads/{id}/saver/*`) on the thread's storage.

use serde_json::{json, Value};

use crate::api::{HttpResponse, IndexUpdate, SaverCommand};
use crate::chat::Engine;
use crate::checkpoint::saver::SaverStore;
use crate::error::{Error, Result};
use crate::thread::ThreadId;

/// A LangGraph checkpointer call on this thread's storage. `owner` is the caller's
/// scope: a put's run is remembered in that scope's directory shard.
pub(super) fn saver<C: SaverStore, M>(
    engine: &Engine<'_, C, M>,
    thread_id: &ThreadId,
    command: SaverCommand,
    owner: Option<&str>,
) -> Result<HttpResponse> {
    let store = engine.store;
    let now = engine.clock.now_ms();
    Ok(match command {
        SaverCommand::Put(put) => {
            store.saver_put(thread_id, &put, now)?;
            let response = HttpResponse::ok(json!({
                "thread_id": thread_id.as_str(),
                "checkpoint_ns": put.checkpoint_ns,
                "checkpoint_id": put.checkpoint_id,
            }));
            // `delete_for_runs` finds threads by run id: the directory learns this one.
            match put.metadata.get("run_id").and_then(Value::as_str) {
                Some(run_id) => response.with_index(IndexUpdate::Run {
                    run_id: run_id.to_string(),
                    thread_id: thread_id.clone(),
                    owner: owner.map(str::to_string),
                }),
                None => response,
            }
        }
        SaverCommand::DeleteRuns { run_ids } => {
            store.saver_delete_runs(thread_id, &run_ids)?;
            HttpResponse::no_content()
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
