//! One run at a time per thread (`multitask_strategy: "reject"`).
//!
//! A Durable Object serializes its storage calls, but while a run awaits its model (a
//! network call) another request to the same object can start. The gate turns a second
//! run on a busy thread into 409 instead of a second writer. It lives in memory only:
//! a crash or an eviction clears it, so no thread is ever left stuck `busy`.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use super::{execute, HttpResponse, ThreadCall, ThreadCommand};
use crate::chat::{ChatModel, Engine};
use crate::checkpoint::saver::SaverStore;
use crate::checkpoint::Checkpointer;
use crate::error::Error;
use crate::thread::ThreadId;

/// The threads that have a run in progress in this process.
#[derive(Debug, Default)]
pub struct RunGate {
    busy: Rc<RefCell<HashSet<ThreadId>>>,
}

/// Marks a thread busy until dropped (also when the run's future is dropped midway).
/// Owned, so a run that outlives its request (a stream whose client went away) keeps
/// the thread busy until it is done.
#[derive(Debug)]
pub struct RunTicket {
    busy: Rc<RefCell<HashSet<ThreadId>>>,
    thread_id: ThreadId,
}

impl Drop for RunTicket {
    fn drop(&mut self) {
        self.busy.borrow_mut().remove(&self.thread_id);
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

    /// Marks `thread_id` busy; `None` if a run already holds it.
    pub fn enter(&self, thread_id: &ThreadId) -> Option<RunTicket> {
        self.busy
            .borrow_mut()
            .insert(thread_id.clone())
            .then(|| RunTicket {
                busy: self.busy.clone(),
                thread_id: thread_id.clone(),
            })
    }

    /// The error for a run on a busy thread.
    pub fn busy_error(thread_id: &ThreadId) -> Error {
        Error::Conflict {
            reason: format!(
                "Thread '{thread_id}' is busy with another run; multitask_strategy \"reject\" refuses a second one"
            ),
        }
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
        let Some(_ticket) = self.enter(&call.thread_id) else {
            return HttpResponse::error(&Self::busy_error(&call.thread_id));
        };
        execute(call, engine).await
    }
}
