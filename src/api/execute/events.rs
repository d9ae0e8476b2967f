//! `stream_mode: "events"`: LangChain's `astream_events` (v2) told for our one-node chat
//! graph — the graph and its `agent` node as chains, the model as a chat model — for the
//! frontends that read only that mode.

use serde_json::{json, Value};

use crate::api::wire::values_json;
use crate::api::{RunSink, SseEvent, ASSISTANT_ID};
use crate::message::Message;

/// Tells a run as `events`, when asked (else says nothing, and builds nothing: its
/// methods take what the events would carry and turn it into JSON only when on).
pub(super) struct GraphEvents<'a> {
    sink: &'a dyn RunSink,
    on: bool,
    run_id: String,
    node_run_id: String,
    model_run_id: String,
    meta: Value,
    step: i64,
}

impl<'a> GraphEvents<'a> {
    /// The events of run `run_id`; `node_ids` name the node's and the model's runs.
    pub(super) fn new(
        sink: &'a dyn RunSink,
        on: bool,
        run_id: &str,
        node_ids: (String, String),
        (meta, step): (Value, i64),
    ) -> Self {
        GraphEvents {
            sink,
            on,
            run_id: run_id.to_string(),
            node_run_id: node_ids.0,
            model_run_id: node_ids.1,
            meta,
            step,
        }
    }

    /// Whether `events` was asked (the other modes need not build what only it tells).
    pub(super) fn is_on(&self) -> bool {
        self.on
    }

    fn emit(&self, event: &str, (name, run_id, nested): (&str, &str, u8), data: Value) {
        if !self.on {
            return;
        }
        let parents: Vec<&str> = match nested {
            0 => vec![],
            1 => vec![&self.run_id],
            _ => vec![&self.run_id, &self.node_run_id],
        };
        let tags = match nested {
            0 => json!([]),
            _ => json!([format!("graph:step:{}", self.step)]),
        };
        self.sink.event(SseEvent {
            event: "events".into(),
            data: json!({
                "event": event, "name": name, "run_id": run_id, "tags": tags,
                "metadata": self.meta, "data": data, "parent_ids": parents,
            }),
            id: None,
        });
    }

    /// The graph starts with the run's input.
    pub(super) fn graph_start(&self, input: &Value) {
        if !self.on {
            return;
        }
        self.emit(
            "on_chain_start",
            (ASSISTANT_ID, &self.run_id, 0),
            json!({"input": input}),
        );
    }

    /// The node starts with `state`, and the model with the `context` it is shown.
    pub(super) fn node_start(&self, state: &[Message], context: &[Message]) {
        if !self.on {
            return;
        }
        self.emit(
            "on_chain_start",
            ("agent", &self.node_run_id, 1),
            json!({"input": values_json(state)}),
        );
        let context: Vec<Value> = context.iter().map(Message::to_json).collect();
        let model = self.model_name();
        self.emit(
            "on_chat_model_start",
            (&model, &self.model_run_id, 2),
            json!({"input": {"messages": [context]}}),
        );
    }

    /// One piece of the reply (an `AIMessageChunk`).
    pub(super) fn chunk(&self, chunk: &Value) {
        if !self.on {
            return;
        }
        let model = self.model_name();
        self.emit(
            "on_chat_model_stream",
            (&model, &self.model_run_id, 2),
            json!({"chunk": chunk}),
        );
    }

    /// The model and the node end with the reply (as JSON; `None` when off), the node
    /// having started from `state`.
    pub(super) fn node_end(&self, reply: Option<&Value>, state: &[Message]) {
        let Some(reply) = reply.filter(|_| self.on) else {
            return;
        };
        let state = values_json(state);
        let model = self.model_name();
        self.emit(
            "on_chat_model_end",
            (&model, &self.model_run_id, 2),
            json!({"output": reply}),
        );
        let update = json!({"messages": [reply]});
        self.emit(
            "on_chain_stream",
            ("agent", &self.node_run_id, 1),
            json!({"chunk": update}),
        );
        self.emit(
            "on_chain_end",
            ("agent", &self.node_run_id, 1),
            json!({"output": update, "input": state}),
        );
    }

    /// The graph ends with its final values.
    pub(super) fn graph_end(&self, output: &[Message]) {
        if !self.on {
            return;
        }
        self.emit(
            "on_chain_end",
            (ASSISTANT_ID, &self.run_id, 0),
            json!({"output": values_json(output)}),
        );
    }

    fn model_name(&self) -> String {
        self.meta
            .get("ls_model_name")
            .and_then(Value::as_str)
            .unwrap_or("ChatModel")
            .to_string()
    }
}
