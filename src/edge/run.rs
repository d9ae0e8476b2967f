//! A run on the thread object, streamed: admitted and prepared in the request, then
//! run as a task of the object, its events sent through a channel to the response.

use std::rc::Rc;

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures_util::StreamExt;
use worker::Response;

use super::model::EdgeModel;
use super::objects::STREAM_HEADER;
use super::thread_object::{object_response, precise_now_ms, server_timing, ObjectInner};
use super::EdgeConfig;
use crate::api::{self, HttpResponse, PreparedRun, RunTicket, SseEvent, ThreadCall, ThreadCommand};
use crate::error::Error;

/// What a run sends from its task to the response.
enum RunItem {
    Event(SseEvent),
    Done(HttpResponse),
}

/// Sends a run's events into the channel its response reads; a closed channel (the
/// client went away) is ignored: the run goes on and is stored.
struct ChannelSink(UnboundedSender<RunItem>);

impl api::RunSink for ChannelSink {
    fn event(&self, event: SseEvent) {
        let _ = self.0.unbounded_send(RunItem::Event(event));
    }
}

/// A run admitted through the thread's run gate and prepared, before its task starts.
struct Admitted {
    config: EdgeConfig,
    model: EdgeModel,
    /// Holds the thread's run gate until the run's task ends.
    ticket: RunTicket,
    prepared: PreparedRun,
}

/// How a run's response starts.
enum Opening {
    /// The events up to the reply's first piece: the response is an event stream.
    Stream(Vec<SseEvent>),
    /// The run was over before the reply's first piece: its whole answer.
    Whole(HttpResponse),
}

impl ObjectInner {
    /// Runs on this thread. The run itself is a task of the object (`waitUntil`): a
    /// client that goes away mid-stream does not stop it, and its reply is stored. The
    /// response waits for the reply's first piece, so a run that fails before it (a
    /// model error, a timeout, an invalid input) is answered with its error status; a
    /// later failure ends the stream with an `error` event.
    pub(super) async fn run(inner: Rc<ObjectInner>, call: ThreadCall) -> worker::Result<Response> {
        let admitted = match inner.admit_run(call).await {
            Ok(admitted) => admitted,
            Err(err) => return object_response(&HttpResponse::error(&err)),
        };
        inner.directory_run_started(admitted.prepared.index_update());
        let mut items = ObjectInner::spawn_run(&inner, admitted);
        match events_until_open(&mut items).await {
            Opening::Stream(head) => event_stream(head, items),
            Opening::Whole(answer) => object_response(&answer),
        }
    }

    /// Checks the caller, waits its turn at the thread's run gate, and prepares the run
    /// (its thread, the amnesia guard, the graph id).
    async fn admit_run(&self, call: ThreadCall) -> Result<Admitted, Error> {
        let config = EdgeConfig::from_env(&self.env)?.for_call(&call);
        // Another user's thread is unknown before it can be found busy or queued on.
        api::check_caller(&self.edge_store(), &call).await?;
        let ThreadCall {
            thread_id,
            command: ThreadCommand::Run(run),
            owner,
        } = call
        else {
            return Err(Error::backend("not a run"));
        };
        let ticket = self.runs.admit(&thread_id, run.multitask).await?;
        let model = config.model(&self.env)?;
        let store = self.edge_store();
        let engine = config.engine(&store, &model);
        let prepared = api::prepare_run(&engine, thread_id, run, owner.as_deref()).await?;
        Ok(Admitted {
            config,
            model,
            ticket,
            prepared,
        })
    }

    /// Starts the run as a task of the object, which outlives this request; its events,
    /// then its final response, come through the returned channel.
    fn spawn_run(inner: &Rc<ObjectInner>, admitted: Admitted) -> UnboundedReceiver<RunItem> {
        let (sender, items) = unbounded::<RunItem>();
        let task_inner = inner.clone();
        inner.state.wait_until(async move {
            let Admitted {
                config,
                model,
                ticket,
                prepared,
            } = admitted;
            let sink = ChannelSink(sender);
            let started = precise_now_ms();
            let store = task_inner.edge_store();
            let mut response =
                api::finish_run(&config.engine(&store, &model), prepared, &sink).await;
            let directory_update = response.index.take();
            if let Some(reason) = &response.internal_error {
                worker::console_error!("edge-memory run: {reason}");
            }
            let took = precise_now_ms() - started;
            task_inner.last_run_ms.set(took);
            let response = response.with_header("server-timing", server_timing(took));
            let _ = sink.0.unbounded_send(RunItem::Done(response));
            // Answered and out of the thread's line first: the directory waits for neither.
            drop(ticket);
            if let Some(update) = directory_update {
                task_inner.directory_update(update, true).await;
            }
        });
        items
    }
}

/// Reads the run's events up to the reply's first piece, which opens the stream.
async fn events_until_open(items: &mut UnboundedReceiver<RunItem>) -> Opening {
    let mut before_open = Vec::new();
    loop {
        match items.next().await {
            Some(RunItem::Event(event)) => {
                let opens = api::opens_stream(&event);
                before_open.push(event);
                if opens {
                    return Opening::Stream(before_open);
                }
            }
            // Over before the reply's first piece: answered whole, as JSON.
            Some(RunItem::Done(response)) => {
                return Opening::Whole(api::whole_answer(response, before_open))
            }
            None => {
                return Opening::Whole(HttpResponse::error(&Error::backend(
                    "the run ended without an answer",
                )))
            }
        }
    }
}

/// The event stream of a run: `head`, then the rest of its events as they come; a run
/// that fails after opening ends with an `error` event.
fn event_stream(
    head: Vec<SseEvent>,
    items: UnboundedReceiver<RunItem>,
) -> worker::Result<Response> {
    let head: String = head.iter().map(SseEvent::to_text).collect();
    let rest = items.map(|item| match item {
        RunItem::Event(event) => event.to_text(),
        RunItem::Done(response) if response.status >= 400 => api::error_event(&response).to_text(),
        RunItem::Done(_) => String::new(),
    });
    let body = futures_util::stream::once(async move { head })
        .chain(rest)
        .map(|text| Ok::<Vec<u8>, worker::Error>(text.into_bytes()));
    let response = Response::from_stream(body)?;
    let headers = response.headers();
    headers.set("content-type", "text/event-stream; charset=utf-8")?;
    headers.set("x-accel-buffering", "no")?;
    headers.set(STREAM_HEADER, "1")?;
    Ok(response)
}
