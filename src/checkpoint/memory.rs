//! An in-process checkpointer: **for tests and demos only.**
//!
//! Like LangGraph's `MemorySaver`, it keeps everything in the memory of one process (one
//! Workers isolate), so a cold start, a redeploy or a second isolate loses the
//! conversation. That is exactly the bug this project exists to fix; the worker offers
//! it (`MEMORY_BACKEND=memory`) only so tests can show the difference.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use super::{
    replay, CheckpointId, CheckpointRecord, Checkpointer, ListQuery, NewCheckpoint, Snapshot,
    ThreadIndex, ThreadSearch,
};
use crate::error::{Error, Result};
use crate::message::MessageOp;
use crate::thread::{ThreadId, ThreadRecord};

#[derive(Debug)]
struct ThreadData {
    record: ThreadRecord,
    checkpoints: BTreeMap<CheckpointId, (CheckpointRecord, Vec<MessageOp>)>,
}

/// Checkpoints in a `HashMap` of this process. Forgets everything on restart.
#[derive(Debug, Default)]
pub struct MemoryCheckpointer {
    threads: RefCell<HashMap<ThreadId, ThreadData>>,
}

impl MemoryCheckpointer {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_thread<T>(
        &self,
        thread_id: &ThreadId,
        f: impl FnOnce(&mut ThreadData) -> Result<T>,
    ) -> Result<T> {
        let mut threads = self.threads.borrow_mut();
        let data = threads
            .get_mut(thread_id)
            .ok_or_else(|| Error::thread_not_found(thread_id.as_str()))?;
        f(data)
    }
}

impl ThreadData {
    fn snapshot(&self, id: &CheckpointId) -> Result<Snapshot> {
        let (record, _) = self.checkpoints.get(id).ok_or_else(|| Error::NotFound {
            what: "checkpoint",
            id: id.to_string(),
        })?;
        // Walk the parent chain back to the root, then replay oldest first.
        let mut chain = Vec::new();
        let mut cursor = Some(id.clone());
        while let Some(current) = cursor {
            let (rec, ops) = self.checkpoints.get(&current).ok_or_else(|| {
                Error::backend(format_args!("parent checkpoint {current} is missing"))
            })?;
            chain.push(ops);
            cursor = rec.parent_id.clone();
        }
        let messages = replay(chain.into_iter().rev().flatten())?;
        Ok(Snapshot {
            checkpoint: record.clone(),
            messages,
        })
    }
}

impl Checkpointer for MemoryCheckpointer {
    async fn create_thread(&self, thread: &ThreadRecord) -> Result<()> {
        let mut threads = self.threads.borrow_mut();
        if threads.contains_key(&thread.thread_id) {
            return Err(Error::Conflict {
                kind: crate::error::ConflictKind::ThreadExists,
                reason: format!("Thread '{}' already exists", thread.thread_id),
            });
        }
        threads.insert(
            thread.thread_id.clone(),
            ThreadData {
                record: thread.clone(),
                checkpoints: BTreeMap::new(),
            },
        );
        Ok(())
    }

    async fn get_thread(&self, thread_id: &ThreadId) -> Result<ThreadRecord> {
        self.with_thread(thread_id, |data| Ok(data.record.clone()))
    }

    async fn update_thread(&self, thread: &ThreadRecord) -> Result<()> {
        self.with_thread(&thread.thread_id, |data| {
            data.record.metadata = thread.metadata.clone();
            data.record.status = thread.status;
            data.record.updated_at_ms = thread.updated_at_ms;
            Ok(())
        })
    }

    async fn put(&self, checkpoint: &NewCheckpoint) -> Result<()> {
        let record = &checkpoint.record;
        self.with_thread(&record.thread_id, |data| {
            if let Some((newest, _)) = data.checkpoints.last_key_value() {
                if record.checkpoint_id <= *newest {
                    return Err(Error::Conflict {
                        kind: crate::error::ConflictKind::StaleCheckpoint,
                        reason: format!(
                            "Checkpoint id {} is not newer than the thread's newest checkpoint {newest}",
                            record.checkpoint_id
                        ),
                    });
                }
            }
            if let Some(parent) = &record.parent_id {
                if !data.checkpoints.contains_key(parent) {
                    return Err(Error::NotFound {
                        what: "checkpoint",
                        id: parent.to_string(),
                    });
                }
            }
            data.checkpoints.insert(
                record.checkpoint_id.clone(),
                (record.clone(), checkpoint.ops.clone()),
            );
            data.record.updated_at_ms = record.created_at_ms;
            Ok(())
        })
    }

    async fn latest(&self, thread_id: &ThreadId) -> Result<Option<Snapshot>> {
        self.with_thread(thread_id, |data| {
            match data.checkpoints.keys().next_back() {
                Some(id) => data.snapshot(id).map(Some),
                None => Ok(None),
            }
        })
    }

    async fn get(&self, thread_id: &ThreadId, checkpoint_id: &CheckpointId) -> Result<Snapshot> {
        self.with_thread(thread_id, |data| data.snapshot(checkpoint_id))
    }

    async fn list(&self, thread_id: &ThreadId, query: &ListQuery) -> Result<Vec<CheckpointRecord>> {
        self.with_thread(thread_id, |data| {
            Ok(data
                .checkpoints
                .values()
                .rev()
                .filter(|(rec, _)| {
                    query
                        .before
                        .as_ref()
                        .is_none_or(|before| rec.checkpoint_id < *before)
                })
                .take(query.limit)
                .map(|(rec, _)| rec.clone())
                .collect())
        })
    }

    async fn delete_thread(&self, thread_id: &ThreadId) -> Result<()> {
        self.threads
            .borrow_mut()
            .remove(thread_id)
            .map(|_| ())
            .ok_or_else(|| Error::thread_not_found(thread_id.as_str()))
    }

    async fn export_thread(&self, thread_id: &ThreadId) -> Result<Vec<NewCheckpoint>> {
        self.with_thread(thread_id, |data| {
            Ok(data
                .checkpoints
                .values()
                .map(|(record, ops)| NewCheckpoint {
                    record: record.clone(),
                    ops: ops.clone(),
                })
                .collect())
        })
    }
}

/// No LangGraph checkpointer storage here: every call keeps the trait's `Unsupported`.
impl super::saver::SaverStore for MemoryCheckpointer {}

impl ThreadIndex for MemoryCheckpointer {
    async fn index_upsert(&self, record: &ThreadRecord) -> Result<()> {
        let mut threads = self.threads.borrow_mut();
        match threads.get_mut(&record.thread_id) {
            Some(data) => data.record = record.clone(),
            None => {
                threads.insert(
                    record.thread_id.clone(),
                    ThreadData {
                        record: record.clone(),
                        checkpoints: BTreeMap::new(),
                    },
                );
            }
        }
        Ok(())
    }

    async fn index_remove(&self, thread_id: &ThreadId) -> Result<()> {
        self.threads.borrow_mut().remove(thread_id);
        Ok(())
    }

    async fn search_threads(&self, query: &ThreadSearch) -> Result<Vec<ThreadRecord>> {
        let records = self
            .threads
            .borrow()
            .values()
            .map(|d| d.record.clone())
            .collect();
        Ok(query.page(records))
    }

    async fn count_threads(&self, query: &ThreadSearch) -> Result<usize> {
        let threads = self.threads.borrow();
        Ok(threads
            .values()
            .filter(|d| query.matches(&d.record))
            .count())
    }

    // No checkpointer storage here (saver calls are refused): no run wrote any.
    async fn index_run(&self, _run_id: &str, _thread_id: &ThreadId) -> Result<()> {
        Ok(())
    }

    async fn threads_of_runs(&self, _run_ids: &[String]) -> Result<Vec<ThreadId>> {
        Ok(Vec::new())
    }
}
