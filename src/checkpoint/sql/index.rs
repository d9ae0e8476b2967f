//! [`ThreadIndex`] on the store's own thread table: a store that is its own directory
//! (one process, native tests).

use super::port::{SqlExec, Statement};
use super::SqlCheckpointer;
use crate::checkpoint::{directory, ThreadIndex, ThreadSearch};
use crate::error::Result;
use crate::thread::{ThreadId, ThreadRecord};

const UPSERT_THREAD: &str = "INSERT INTO em_threads (thread_id, created_at, updated_at, metadata, status) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (thread_id) DO UPDATE SET created_at = excluded.created_at,
               updated_at = excluded.updated_at, metadata = excluded.metadata, status = excluded.status";
const DELETE_THREAD: &str = "DELETE FROM em_threads WHERE thread_id = ?";

impl<E: SqlExec> ThreadIndex for SqlCheckpointer<E> {
    async fn index_upsert(&self, record: &ThreadRecord) -> Result<()> {
        self.ensure_schema()?;
        self.forget_recent();
        self.exec.execute_batch(&[Statement::new(
            UPSERT_THREAD,
            directory::record_params(record),
        )])
    }

    async fn index_remove(&self, thread_id: &ThreadId) -> Result<()> {
        self.ensure_schema()?;
        self.forget_recent();
        self.exec.execute_batch(&[Statement::new(
            DELETE_THREAD,
            vec![thread_id.as_str().into()],
        )])
    }

    // A store that is its own directory searches its own thread table, the same way.
    async fn search_threads(&self, query: &ThreadSearch) -> Result<Vec<ThreadRecord>> {
        self.ensure_schema()?;
        directory::search_table(&self.exec, "em_threads", query)
    }

    async fn count_threads(&self, query: &ThreadSearch) -> Result<usize> {
        self.ensure_schema()?;
        directory::count_table(&self.exec, "em_threads", query)
    }

    // The store holds the checkpoints themselves: their metadata names the runs.
    async fn index_run(&self, _run_id: &str, _thread_id: &ThreadId) -> Result<()> {
        Ok(())
    }

    async fn threads_of_runs(&self, run_ids: &[String]) -> Result<Vec<ThreadId>> {
        self.ensure_schema()?;
        if run_ids.is_empty() {
            return Ok(Vec::new());
        }
        let (marks, params) = directory::in_list(run_ids);
        let sql = format!(
            "SELECT DISTINCT t.thread_id FROM em_saver_checkpoints c JOIN em_threads t ON t.tkey = c.tkey
             WHERE json_extract(c.metadata, '$.run_id') IN ({marks})"
        );
        directory::thread_ids(&self.exec, &sql, &params)
    }
}
