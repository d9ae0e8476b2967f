//! One run at a time per thread: `multitask_strategy` `reject` (409) or `enqueue` (wait
//! in line).
//!
//! A Durable Object serializes its storage calls, but while a run awaits its model (a
//! network call) another request to the same object can start. The gate turns a second
//! run on a busy thread into 409, or makes it wait for its turn, instead of a second
//! writer. State updates and deletes wait for the current run too, so a run's reply
//! always lands on its own input. The gate lives in memory only: a crash or an eviction
//! clears it, so no thread is ever left stuck `busy`.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::{check_caller, execute, HttpResponse, Multitask, ThreadCall, ThreadCommand};
use crate::chat::{ChatModel, Engine};
use crate::checkpoint::saver::SaverStore;
use crate::checkpoint::Checkpointer;
use crate::error::Error;
use crate::thread::ThreadId;

/// Most requests that may wait in line on one thread; more are refused (409). A bound on
/// what a burst of retries can pile up in one object's memory.
pub const ENQUEUE_MAX_WAITING: usize = 64;

/// One request waiting for a thread.
#[derive(Debug, Default)]
struct Waiter {
    granted: Cell<bool>,
    gone: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

#[derive(Debug, Default)]
struct GateState {
    busy: HashSet<ThreadId>,
    waiting: HashMap<ThreadId, VecDeque<Rc<Waiter>>>,
}

impl GateState {
    /// Hands `thread_id` to the next live waiter, or frees it.
    fn release(&mut self, thread_id: &ThreadId) {
        if let Some(queue) = self.waiting.get_mut(thread_id) {
            while let Some(next) = queue.pop_front() {
                if next.gone.get() {
                    continue;
                }
                next.granted.set(true);
                if let Some(waker) = next.waker.borrow_mut().take() {
                    waker.wake();
                }
                return;
            }
            self.waiting.remove(thread_id);
        }
        self.busy.remove(thread_id);
    }
}

/// The threads that have a run in progress in this process, and who waits for them.
#[derive(Debug, Default)]
pub struct RunGate {
    state: Rc<RefCell<GateState>>,
}

/// Holds a thread until dropped (also when the run's future is dropped midway), then
/// hands it to the next in line. Owned, so a run that outlives its request (a stream
/// whose client went away) keeps the thread until it is done.
#[derive(Debug)]
pub struct RunTicket {
    state: Rc<RefCell<GateState>>,
    thread_id: ThreadId,
}

impl Drop for RunTicket {
    fn drop(&mut self) {
        self.state.borrow_mut().release(&self.thread_id);
    }
}

/// Waits for a thread (see [`RunGate::wait_for`]).
struct WaitTurn {
    state: Rc<RefCell<GateState>>,
    thread_id: ThreadId,
    waiter: Rc<Waiter>,
    done: bool,
}

impl Future for WaitTurn {
    type Output = RunTicket;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<RunTicket> {
        if self.waiter.granted.get() {
            self.done = true;
            return Poll::Ready(RunTicket {
                state: self.state.clone(),
                thread_id: self.thread_id.clone(),
            });
        }
        *self.waiter.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for WaitTurn {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.waiter.granted.get() {
            // Handed the thread but gone before taking it: pass it on.
            self.state.borrow_mut().release(&self.thread_id);
        } else {
            self.waiter.gone.set(true);
        }
    }
}

impl RunGate {
    /// An empty gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a run is in progress on `thread_id`.
    pub fn is_busy(&self, thread_id: &ThreadId) -> bool {
        self.state.borrow().busy.contains(thread_id)
    }

    /// Takes `thread_id`; `None` if a run already holds it.
    pub fn enter(&self, thread_id: &ThreadId) -> Option<RunTicket> {
        self.state
            .borrow_mut()
            .busy
            .insert(thread_id.clone())
            .then(|| RunTicket {
                state: self.state.clone(),
                thread_id: thread_id.clone(),
            })
    }

    /// Takes `thread_id`, waiting in line behind the runs before it; 409 when the line
    /// is full.
    pub async fn wait_for(&self, thread_id: &ThreadId) -> Result<RunTicket, Error> {
        if let Some(ticket) = self.enter(thread_id) {
            return Ok(ticket);
        }
        let waiter = Rc::new(Waiter::default());
        {
            let mut state = self.state.borrow_mut();
            let queue = state.waiting.entry(thread_id.clone()).or_default();
            queue.retain(|w| !w.gone.get());
            if queue.len() >= ENQUEUE_MAX_WAITING {
                return Err(Error::Conflict {
                    kind: crate::error::ConflictKind::QueueFull,
                    reason: format!(
                        "Thread '{thread_id}' already has {ENQUEUE_MAX_WAITING} runs waiting; try again later"
                    ),
                });
            }
            queue.push_back(waiter.clone());
        }
        Ok(WaitTurn {
            state: self.state.clone(),
            thread_id: thread_id.clone(),
            waiter,
            done: false,
        }
        .await)
    }

    /// Takes `thread_id` for a run with `strategy`.
    pub async fn admit(
        &self,
        thread_id: &ThreadId,
        strategy: Multitask,
    ) -> Result<RunTicket, Error> {
        match strategy {
            // The run under way was asked to stop (by the object that holds it): wait
            // for it to end, first in line.
            Multitask::Enqueue | Multitask::Interrupt | Multitask::Rollback => {
                self.wait_for(thread_id).await
            }
            Multitask::Reject => self
                .enter(thread_id)
                .ok_or_else(|| Self::busy_error(thread_id)),
        }
    }

    /// The error for a run on a busy thread.
    pub fn busy_error(thread_id: &ThreadId) -> Error {
        Error::Conflict {
            kind: crate::error::ConflictKind::ThreadBusy,
            reason: format!(
                "Thread '{thread_id}' is busy with another run; multitask_strategy \"reject\" refuses a second one (\"enqueue\" waits)"
            ),
        }
    }

    /// [`execute()`]s `call`: the caller's ownership is checked first, then runs are
    /// admitted by their strategy, state updates and deletes wait for the current run,
    /// reads go straight through.
    pub async fn execute<C: Checkpointer + SaverStore, M: ChatModel>(
        &self,
        call: ThreadCall,
        engine: &Engine<'_, C, M>,
    ) -> HttpResponse {
        let strategy = match &call.command {
            ThreadCommand::Run(run) => Some(run.multitask),
            ThreadCommand::UpdateState { .. } | ThreadCommand::Delete => Some(Multitask::Enqueue),
            _ => None,
        };
        if strategy.is_some() {
            if let Err(err) = check_caller(engine.store, &call).await {
                return HttpResponse::error(err);
            }
        }
        let _ticket = match strategy {
            Some(strategy) => match self.admit(&call.thread_id, strategy).await {
                Ok(ticket) => Some(ticket),
                Err(err) => return HttpResponse::error(err),
            },
            None => None,
        };
        execute(call, engine).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_get_the_thread_in_order_and_gone_ones_are_skipped() {
        pollster::block_on(async {
            let gate = RunGate::new();
            let t = ThreadId::parse("t").unwrap();
            let first = gate.enter(&t).unwrap();
            assert!(gate.enter(&t).is_none());
            let mut second = Box::pin(gate.wait_for(&t));
            let third = gate.wait_for(&t);
            let mut cx = Context::from_waker(Waker::noop());
            assert!(second.as_mut().poll(&mut cx).is_pending());
            drop(third); // gave up before its turn
            drop(first);
            let Poll::Ready(Ok(ticket)) = second.as_mut().poll(&mut cx) else {
                panic!("the second waiter gets the thread")
            };
            assert!(gate.is_busy(&t));
            drop(ticket);
            assert!(!gate.is_busy(&t), "freed when nobody waits");
        });
    }
}
