//! The AI SDK's encoding of a run's response, in the thread object: a chat turn's
//! response and a resumed chat stream follow the run's `LiveRun` like any LangGraph
//! client, written as a UI message stream (`api::aisdk::UiStream`).

use std::rc::Rc;

use futures_channel::mpsc::UnboundedReceiver;
use futures_util::StreamExt;
use worker::Response;

use super::objects::STREAM_HEADER;
use super::thread_object::{object_response, ObjectInner};
use crate::api::aisdk::{UiStream, UI_STREAM_HEADER, UI_STREAM_VERSION};
use crate::api::runs::{run_location, LiveEvent, Replay, RunItem};
use crate::api::{self, HttpResponse, ThreadCall};

/// A run's response as a UI message stream: `head` (the events up to the reply's first
/// piece), then the rest as they come.
pub(super) fn ui_stream(
    head: Vec<Rc<LiveEvent>>,
    items: UnboundedReceiver<RunItem>,
    location: &str,
) -> worker::Result<Response> {
    let items = futures_util::stream::iter(head.into_iter().map(RunItem::Event)).chain(items);
    let body = items
        .scan(UiStream::new(), |stream, item| {
            std::future::ready(Some(stream.item(&item)))
        })
        .filter(|text| std::future::ready(!text.is_empty()))
        .map(|text| Ok::<Vec<u8>, worker::Error>(text.into_bytes()));
    let response = Response::from_stream(body)?;
    let headers = response.headers();
    headers.set("content-type", "text/event-stream")?;
    headers.set("x-accel-buffering", "no")?;
    headers.set(UI_STREAM_HEADER, UI_STREAM_VERSION)?;
    headers.set("content-location", location)?;
    headers.set(STREAM_HEADER, "1")?;
    Ok(response)
}

impl ObjectInner {
    /// `GET /api/chat/{id}/stream`: the thread's run under way, from its first event, as
    /// a UI message stream (the AI SDK replays a resumed reply from its start); 204 when
    /// none is, and for a thread the caller cannot see (nothing is confirmed).
    pub(super) async fn chat_stream(self: &Rc<Self>, call: ThreadCall) -> worker::Result<Response> {
        self.reconcile_runs();
        let visible = api::check_caller(&self.edge_store(), &call).await.is_ok();
        // The run under way is the oldest: later ones wait behind it.
        let under_way = self
            .live
            .on_thread(call.thread_id.as_str())
            .into_iter()
            .next();
        let (true, Some(run)) = (visible, under_way) else {
            return object_response(&HttpResponse::no_content());
        };
        let record = run.record();
        let replay = if record.resumable {
            Replay::All
        } else {
            Replay::Live
        };
        let location = run_location(record.thread_id.as_str(), &record.run_id);
        ui_stream(Vec::new(), run.follow(replay, None), &location)
    }
}
