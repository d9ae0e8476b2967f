//! The amnesia guard: what a client believes about a thread (`If-Match`,
//! `expected_head`, `expected_turns`), checked before anything is stored.

use crate::api::RunGuard;
use crate::checkpoint::{CheckpointId, CheckpointRecord, Checkpointer, ListQuery};
use crate::error::{Error, Result};
use crate::thread::ThreadId;

/// Checks what the client believes about the thread against its head: `If-Match` must
/// be the head (409 otherwise); `expected_head` must be a checkpoint the thread has and
/// `expected_turns` at most its turns (409 `memory_mismatch` otherwise). Returns
/// `expected_head` when it is newer than the listed head (checkpoint ids sort by time):
/// a lagging listing, which the run must not continue from.
pub(super) async fn check_guard<C: Checkpointer>(
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
