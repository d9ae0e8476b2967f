//! The JSON shapes of assistants: `Assistant`, its versions, and the description of our
//! one graph (`__start__` → `agent` → `__end__` over a `messages` state).

use serde_json::{json, Map, Value};

use super::GRAPH_ID;
use crate::api::ASSISTANT_UUID;
use crate::checkpoint::assistants::Assistant;
use crate::runtime::iso8601;

/// When the system assistant was "created": a fixed date, as it is part of the build.
const SYSTEM_CREATED_MS: i64 = 1_735_689_600_000; // 2025-01-01T00:00:00Z

/// The system assistant of graph `agent` (LangGraph's default: its UUID is
/// `uuid5(NAMESPACE, "agent")`, `metadata.created_by` is `system`).
pub fn system_assistant() -> Assistant {
    let mut metadata = Map::new();
    metadata.insert("created_by".into(), json!("system"));
    Assistant {
        assistant_id: ASSISTANT_UUID.to_string(),
        graph_id: GRAPH_ID.to_string(),
        config: Map::new(),
        context: Map::new(),
        metadata,
        name: GRAPH_ID.to_string(),
        description: Some("Chat agent with durable per-thread memory (edge-memory)".into()),
        version: 1,
        created_at_ms: SYSTEM_CREATED_MS,
        updated_at_ms: SYSTEM_CREATED_MS,
    }
}

/// An `Assistant`.
pub fn assistant_json(a: &Assistant) -> Value {
    json!({
        "assistant_id": a.assistant_id,
        "graph_id": a.graph_id,
        "config": a.config,
        "context": a.context,
        "metadata": a.metadata,
        "name": a.name,
        "description": a.description,
        "version": a.version,
        "created_at": iso8601(a.created_at_ms),
        "updated_at": iso8601(a.updated_at_ms),
    })
}

/// An `AssistantVersion`: an assistant as one version made it (no `updated_at`).
pub(super) fn version_json(a: &Assistant) -> Value {
    json!({
        "assistant_id": a.assistant_id,
        "version": a.version,
        "graph_id": a.graph_id,
        "config": a.config,
        "context": a.context,
        "metadata": a.metadata,
        "created_at": iso8601(a.created_at_ms),
        "name": a.name,
        "description": a.description,
    })
}

/// `/graph`: the nodes and edges of the graph, as LangGraph draws it.
pub fn graph_json() -> Value {
    static_json(
        r#"{
            "nodes": [
                {"id": "__start__", "type": "runnable", "data": {"name": "__start__"}},
                {"id": "agent", "type": "runnable", "data": {"name": "agent"}},
                {"id": "__end__"}
            ],
            "edges": [
                {"source": "__start__", "target": "agent"},
                {"source": "agent", "target": "__end__"}
            ]
        }"#,
    )
}

/// `/schemas`: the graph's state (`messages`, LangGraph's `MessagesState`) as input,
/// output and state; the settings an assistant may give its runs as config and context.
pub fn schemas_json(graph_id: &str) -> Value {
    let messages = json!({
        "title": "Messages",
        "type": "array",
        "items": {"$ref": "#/$defs/Message"},
    });
    let defs = json!({"Message": message_schema()});
    let state = |title: &str, required: bool| {
        let mut schema = json!({
            "title": title,
            "type": "object",
            "properties": {"messages": messages},
            "$defs": defs,
        });
        if required {
            schema["required"] = json!(["messages"]);
        }
        schema
    };
    let settings = settings_schema();
    json!({
        "graph_id": graph_id,
        "input_schema": state("MessagesState", true),
        "output_schema": state("MessagesState", true),
        "state_schema": state("agent_state", false),
        "config_schema": {
            "title": "Configurable",
            "type": "object",
            "properties": {"configurable": settings},
        },
        "context_schema": settings,
    })
}

/// A message as the API reads it (LangChain's dialects).
fn message_schema() -> Value {
    static_json(
        r#"{
            "title": "Message",
            "type": "object",
            "properties": {
                "type": {"type": "string", "enum": ["human", "ai", "system", "tool", "remove"]},
                "role": {"type": "string", "enum": ["user", "assistant", "system", "tool"]},
                "content": {"anyOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "object"}]}}
                ]},
                "id": {"type": "string"},
                "name": {"type": "string"},
                "tool_call_id": {"type": "string"},
                "tool_calls": {"type": "array", "items": {"type": "object"}}
            },
            "required": ["content"]
        }"#,
    )
}

/// The run settings an assistant may set (`context`, or `config.configurable`).
fn settings_schema() -> Value {
    static_json(
        r#"{
            "title": "Context",
            "type": "object",
            "properties": {
                "system_prompt": {"type": "string", "description": "Shown first to the model (instead of SYSTEM_PROMPT)"},
                "model": {"type": "string", "description": "The provider's model name (instead of OPENAI_MODEL / WORKERS_AI_MODEL)"},
                "temperature": {"type": "number", "minimum": 0},
                "max_tokens": {"type": "integer", "minimum": 1, "description": "Bound on the reply (instead of MODEL_MAX_TOKENS)"}
            }
        }"#,
    )
}

/// A fixed JSON document of this file, parsed. Kept as text rather than `json!`: the
/// text is a few hundred bytes of data, the macro's code several KB of wasm. The
/// documents are valid (tested), so the `Null` fallback is never taken.
fn static_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_documents_parse() {
        assert!(graph_json()["nodes"].is_array());
        assert!(message_schema()["properties"].is_object());
        assert!(settings_schema()["properties"].is_object());
        assert_eq!(schemas_json("g")["graph_id"], "g");
    }
}
