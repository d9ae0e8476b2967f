//! Searching the sharded directory: fan-out, merge, re-check and repair; and
//! `delete_for_runs`, which finds the threads of runs through it.

use serde_json::{json, Map, Value};

use super::{merge, owner_of, shard_query, Shard, SEARCH_WINDOW_MAX};
use crate::api::auth::OWNER_KEY;
use crate::api::{
    Backend, Body, HttpResponse, IndexUpdate, SaverCommand, ThreadCall, ThreadCommand,
};
use crate::checkpoint::{ThreadSearch, ThreadSortKey};
use crate::error::{Error, Result};
use crate::thread::{ThreadId, ThreadRecord};

/// Runs the futures at once and answers their outputs in order (the shards of a search
/// are asked together).
pub(crate) async fn all_of<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    use std::task::Poll;
    let mut futures: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// Searches (or counts) threads: asks each shard the query needs, merges, and re-checks
/// every result against the thread's own object. A copy that is stale (the thread was
/// deleted, or now belongs in another shard) is removed from its shard; one that no
/// longer matches the filters is left out. So a directory update that was lost, delayed
/// or reordered can hide a thread for a while, but never shows one to a caller whose
/// filters (their owner among them) it does not match.
pub async fn search<B: Backend>(
    backend: &B,
    query: &ThreadSearch,
    count_only: bool,
) -> Result<HttpResponse> {
    let shards = backend.search_shards(query);
    if count_only {
        let counts = all_of(
            shards
                .iter()
                .map(|s| backend.index_count(s, query))
                .collect(),
        )
        .await;
        let total = counts.into_iter().sum::<Result<usize>>()?;
        return Ok(HttpResponse::ok(json!(total)));
    }
    if query.offset.saturating_add(query.limit) > SEARCH_WINDOW_MAX && query.limit > 0 {
        return Err(Error::InvalidInput {
            field: "offset".into(),
            reason: format!(
                "offset + limit may be at most {SEARCH_WINDOW_MAX} (narrow the search with metadata filters instead)"
            ),
        });
    }
    let each = shard_query(query);
    let answers = all_of(
        shards
            .iter()
            .map(|s| backend.index_search(s, &each))
            .collect(),
    )
    .await;
    let mut tagged = Vec::with_capacity(shards.len());
    for (shard, answer) in shards.into_iter().zip(answers) {
        tagged.push((shard, answer?));
    }
    let mut threads: Vec<Value> = Vec::new();
    for (shard, record) in merge(query, tagged) {
        if let Some(thread) = recheck(backend, query, &shard, record).await? {
            // A copy's time may lag its thread's by a coalescing interval: the page is
            // ordered by the threads' own records.
            let at = threads.partition_point(|t| compare_fresh(query, t, &thread).is_le());
            threads.insert(at, thread);
        }
    }
    Ok(HttpResponse::ok(Value::Array(threads)))
}

/// The query's order on thread JSON (times are RFC 3339 strings of one format, so they
/// compare as text).
fn compare_fresh(query: &ThreadSearch, a: &Value, b: &Value) -> std::cmp::Ordering {
    let field = match query.sort_by {
        ThreadSortKey::UpdatedAt => "updated_at",
        ThreadSortKey::CreatedAt => "created_at",
        ThreadSortKey::ThreadId => "thread_id",
    };
    let key = |t: &Value| {
        (
            t[field].as_str().map(str::to_string),
            t["thread_id"].to_string(),
        )
    };
    let order = key(a).cmp(&key(b));
    if query.ascending {
        order
    } else {
        order.reverse()
    }
}

/// The thread's own record decides whether a directory copy is shown; stale copies are
/// removed from `shard` (best effort: the next search tries again).
async fn recheck<B: Backend>(
    backend: &B,
    query: &ThreadSearch,
    shard: &Shard,
    record: ThreadRecord,
) -> Result<Option<Value>> {
    let response = backend
        .call(ThreadCall {
            thread_id: record.thread_id.clone(),
            command: ThreadCommand::Get,
            owner: None,
        })
        .await;
    let stale = match (response.status, response.body) {
        (200, Body::Json(thread)) => {
            if matches_filter(&thread, &query.metadata) {
                return Ok(Some(thread));
            }
            let owner = thread["metadata"].get(OWNER_KEY).and_then(Value::as_str);
            // Another owner's now (or a copy in the wrong shard): not this shard's.
            Shard::of(&record.thread_id, owner) != *shard && *shard != Shard::Whole
        }
        (404, _) => true,
        (status, _) => {
            return Err(Error::backend(format_args!(
                "thread {} answered {status} while searching",
                record.thread_id
            )))
        }
    };
    if stale {
        let owner = owner_of(&record.metadata).map(str::to_string);
        let removal = IndexUpdate::Remove {
            thread_id: record.thread_id,
            owner,
        };
        let _ = backend.index_apply(shard, &removal).await;
    }
    Ok(None)
}

/// Whether `thread` (its JSON) has every key/value of the search's metadata filter.
fn matches_filter(thread: &Value, filter: &Map<String, Value>) -> bool {
    filter
        .iter()
        .all(|(key, value)| thread["metadata"].get(key) == Some(value))
}

/// `delete_for_runs`: finds the threads the runs wrote to in the directory (the shard
/// of each run id), and deletes the runs' checkpoints and writes on each of them, one
/// atomic batch per thread. Idempotent: a retried call finds nothing more to delete.
pub async fn delete_for_runs<B: Backend>(
    backend: &B,
    run_ids: &[String],
    owner: Option<String>,
) -> Result<HttpResponse> {
    let mut shards: Vec<Shard> = Vec::new();
    for run_id in run_ids {
        let shard = backend.run_shard(run_id, owner.as_deref());
        if !shards.contains(&shard) {
            shards.push(shard);
        }
    }
    let mut threads: Vec<ThreadId> = Vec::new();
    for shard in &shards {
        for thread in backend.run_threads(shard, run_ids).await? {
            if !threads.contains(&thread) {
                threads.push(thread);
            }
        }
    }
    for thread_id in threads {
        let command = ThreadCommand::Saver(SaverCommand::DeleteRuns {
            run_ids: run_ids.to_vec(),
        });
        let response = backend
            .call(ThreadCall {
                thread_id,
                command,
                owner: owner.clone(),
            })
            .await;
        // A thread deleted since (404) has nothing left to delete.
        if response.status >= 400 && response.status != 404 {
            return Ok(response);
        }
    }
    Ok(HttpResponse::no_content())
}
