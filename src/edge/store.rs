//! One store type for every backend the worker runs on.
//!
//! The API is generic over its store; each store type it is compiled for adds its own
//! copy of the whole API to the wasm module (~50 KB each). Dispatching here, once per
//! storage call, keeps one copy for all of them.

use crate::checkpoint::kv::KvCheckpointer;
use crate::checkpoint::memory::MemoryCheckpointer;
use crate::checkpoint::saver::{
    SaverExport, SaverList, SaverPut, SaverPutWrites, SaverStore, SaverTuple,
};
use crate::checkpoint::sql::SqlCheckpointer;
use crate::checkpoint::{
    CheckpointId, CheckpointRecord, Checkpointer, ListQuery, NewCheckpoint, Snapshot, ThreadIndex,
    ThreadSearch, Window,
};
use crate::error::{Error, Result};
use crate::thread::{ThreadId, ThreadRecord};

use super::do_sql::DoSql;
use super::worker_kv::{ObjectRegister, WorkerKv};

/// The store of one request.
#[derive(Clone, Copy)]
pub(crate) enum EdgeStore<'a> {
    /// The thread's Durable Object SQLite (the default).
    Sql(&'a SqlCheckpointer<DoSql>),
    /// Workers KV (`MEMORY_BACKEND=kv`).
    Kv(&'a KvCheckpointer<WorkerKv, ObjectRegister>),
    /// Isolate memory (`MEMORY_BACKEND=memory`, stateless runs).
    Memory(&'a MemoryCheckpointer),
}

/// Calls `$call` on whichever store this is.
macro_rules! each {
    ($self:expr, $store:ident => $call:expr) => {
        match $self {
            EdgeStore::Sql($store) => $call,
            EdgeStore::Kv($store) => $call,
            EdgeStore::Memory($store) => $call,
        }
    };
}

impl Checkpointer for EdgeStore<'_> {
    fn strongly_consistent(&self) -> bool {
        each!(self, s => s.strongly_consistent())
    }
    async fn create_thread(&self, thread: &ThreadRecord) -> Result<()> {
        each!(self, s => s.create_thread(thread).await)
    }
    async fn get_thread(&self, thread_id: &ThreadId) -> Result<ThreadRecord> {
        each!(self, s => s.get_thread(thread_id).await)
    }
    async fn update_thread(&self, thread: &ThreadRecord) -> Result<()> {
        each!(self, s => s.update_thread(thread).await)
    }
    async fn put(&self, checkpoint: &NewCheckpoint) -> Result<()> {
        each!(self, s => s.put(checkpoint).await)
    }
    async fn latest(&self, thread_id: &ThreadId) -> Result<Option<Snapshot>> {
        each!(self, s => s.latest(thread_id).await)
    }
    async fn get(&self, thread_id: &ThreadId, checkpoint_id: &CheckpointId) -> Result<Snapshot> {
        each!(self, s => s.get(thread_id, checkpoint_id).await)
    }
    async fn states(&self, thread_id: &ThreadId, ids: &[CheckpointId]) -> Result<Vec<Snapshot>> {
        each!(self, s => s.states(thread_id, ids).await)
    }
    async fn list(&self, thread_id: &ThreadId, query: &ListQuery) -> Result<Vec<CheckpointRecord>> {
        each!(self, s => s.list(thread_id, query).await)
    }
    async fn delete_thread(&self, thread_id: &ThreadId) -> Result<()> {
        each!(self, s => s.delete_thread(thread_id).await)
    }
    async fn export_thread(&self, thread_id: &ThreadId) -> Result<Vec<NewCheckpoint>> {
        each!(self, s => s.export_thread(thread_id).await)
    }
    async fn remove_newest(&self, thread_id: &ThreadId, ids: &[CheckpointId]) -> Result<()> {
        each!(self, s => s.remove_newest(thread_id, ids).await)
    }
    async fn window(
        &self,
        thread_id: &ThreadId,
        from: Option<&CheckpointId>,
        max_messages: usize,
        ids: &[&str],
    ) -> Result<Window> {
        each!(self, s => s.window(thread_id, from, max_messages, ids).await)
    }
}

impl SaverStore for EdgeStore<'_> {
    fn saver_put(&self, thread_id: &ThreadId, put: &SaverPut, now_ms: i64) -> Result<()> {
        each!(self, s => s.saver_put(thread_id, put, now_ms))
    }
    fn saver_put_writes(
        &self,
        thread_id: &ThreadId,
        put: &SaverPutWrites,
        now_ms: i64,
    ) -> Result<()> {
        each!(self, s => s.saver_put_writes(thread_id, put, now_ms))
    }
    fn saver_get(
        &self,
        thread_id: &ThreadId,
        checkpoint_ns: &str,
        checkpoint_id: Option<&str>,
    ) -> Result<Option<SaverTuple>> {
        each!(self, s => s.saver_get(thread_id, checkpoint_ns, checkpoint_id))
    }
    fn saver_list(&self, thread_id: &ThreadId, query: &SaverList) -> Result<Vec<SaverTuple>> {
        each!(self, s => s.saver_list(thread_id, query))
    }
    fn saver_prune(&self, thread_id: &ThreadId, keep_latest: bool) -> Result<()> {
        each!(self, s => s.saver_prune(thread_id, keep_latest))
    }
    fn saver_export(&self, thread_id: &ThreadId) -> Result<SaverExport> {
        each!(self, s => s.saver_export(thread_id))
    }
    fn saver_import(&self, thread_id: &ThreadId, export: &SaverExport, now_ms: i64) -> Result<()> {
        each!(self, s => s.saver_import(thread_id, export, now_ms))
    }
    fn saver_delete_runs(&self, thread_id: &ThreadId, run_ids: &[String]) -> Result<()> {
        each!(self, s => s.saver_delete_runs(thread_id, run_ids))
    }
}

impl ThreadIndex for EdgeStore<'_> {
    async fn index_upsert(&self, record: &ThreadRecord) -> Result<()> {
        match self {
            EdgeStore::Sql(s) => s.index_upsert(record).await,
            EdgeStore::Memory(s) => s.index_upsert(record).await,
            EdgeStore::Kv(_) => Err(no_kv_index()),
        }
    }
    async fn index_remove(&self, thread_id: &ThreadId) -> Result<()> {
        match self {
            EdgeStore::Sql(s) => s.index_remove(thread_id).await,
            EdgeStore::Memory(s) => s.index_remove(thread_id).await,
            EdgeStore::Kv(_) => Err(no_kv_index()),
        }
    }
    async fn search_threads(&self, query: &ThreadSearch) -> Result<Vec<ThreadRecord>> {
        match self {
            EdgeStore::Sql(s) => s.search_threads(query).await,
            EdgeStore::Memory(s) => s.search_threads(query).await,
            EdgeStore::Kv(_) => Err(no_kv_index()),
        }
    }
    async fn count_threads(&self, query: &ThreadSearch) -> Result<usize> {
        match self {
            EdgeStore::Sql(s) => s.count_threads(query).await,
            EdgeStore::Memory(s) => s.count_threads(query).await,
            EdgeStore::Kv(_) => Err(no_kv_index()),
        }
    }
    async fn index_run(&self, run_id: &str, thread_id: &ThreadId) -> Result<()> {
        match self {
            EdgeStore::Sql(s) => s.index_run(run_id, thread_id).await,
            EdgeStore::Memory(s) => s.index_run(run_id, thread_id).await,
            EdgeStore::Kv(_) => Err(no_kv_index()),
        }
    }
    async fn threads_of_runs(&self, run_ids: &[String]) -> Result<Vec<ThreadId>> {
        match self {
            EdgeStore::Sql(s) => s.threads_of_runs(run_ids).await,
            EdgeStore::Memory(s) => s.threads_of_runs(run_ids).await,
            EdgeStore::Kv(_) => Err(no_kv_index()),
        }
    }
}

/// The thread directory lives in its shard objects' SQLite, also in KV mode.
fn no_kv_index() -> Error {
    Error::backend("the KV store holds no thread directory (its shard objects' SQLite does)")
}
