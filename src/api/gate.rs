//! One run at a time per thread (`multitask_strategy: "reject"`).
//!
//! A Durable Object serializes its storage calls, but while a run awaits its model (a
//! network call) another request to the same object can start. The gate turns a second
//! run on a busy thread into 409 instead of a second writer. It lives in memory only:
//! a crash or an eviction clears it, so no thread is ever left stuck `busy`.

use std::cell::RefCell;
use std::collections::HashSet;

use super::{execute, HttpResponse, ThreadCall, ThreadCommand};
use crate::chat::{ChatModel, Engine};
use crate::checkpoint::saver::SaverStore;
use crate::checkpoint::Checkpointer;
use crate::error::Error;
use crate::thread::ThreadId;

/// The threads that have a run in progress in this process.
#[derive(Debug, Default)]
pub struct RunGate {
    busy: RefCell<HashSet<ThreadId>>,
}

/// Marks a thread busy until dropped (also when the run's future is dropped midway,
/// e.g. because the client went away).
struct Entered<'a> {
    gate: &'a RunGate,
    thread_id: ThreadId,
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.gate.busy.borrow_mut().remove(&self.thread_id);
    }
}

impl RunGate {
    /// An empty gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a run is in progress on `thread_id`.
    pub fn is_busy(&self, thread_id: &ThreadId) -> bool {
        self.busy.borrow().contains(thread_id)
    }

    fn enter(&self, thread_id: &ThreadId) -> Option<Entered<'_>> {
        self.busy
            .borrow_mut()
            .insert(thread_id.clone())
            .then(|| Entered {
                gate: self,
                thread_id: thread_id.clone(),
            })
    }

    /// [`execute`]s `call`, answering 409 to a run on a thread that already has one.
    pub async fn execute<C: Checkpointer + SaverStore, M: ChatModel>(
        &self,
        call: ThreadCall,
        engine: &Engine<'_, C, M>,
    ) -> HttpResponse {
        if !matches!(call.command, ThreadCommand::Run(_)) {
            return execute(call, engine).await;
        }
        let Some(_entered) = self.enter(&call.thread_id) else {
            return HttpResponse::error(&Error::Conflict {
                reason: format!(
                    "Thread '{}' is busy with another run; multitask_strategy \"reject\" refuses a second one",
                    call.thread_id
                ),
            });
        };
        execute(call, engine).await
    }
}
