//! The run routes (`runs/wait`, `runs/stream`, on a thread or stateless) and their body
//! decoding: input, checkpoint, stream modes, multitask strategy, the amnesia guard and
//! the digest an idempotency key is bound to.

use super::assistants::{assistant_named, Named};
use super::fields::*;
use super::route::RunsRoute;
use super::*;

/// Reads the guard from the body (`expected_head`, `expected_turns`) and the headers
/// (`If-Match`, `x-expected-head`, `x-expected-turns`).
pub(super) fn parse_guard(body: &Map<String, Value>, req: &HttpRequest) -> Result<RunGuard> {
    let checkpoint = |raw: &str, field: &str| {
        CheckpointId::parse(raw.trim().trim_start_matches("W/").trim_matches('"'))
            .map_err(|_| Error::invalid(field, format!("is not a checkpoint id: {raw:?}")))
    };
    let if_match = match req.header("if-match") {
        Some(raw) => Some(checkpoint(raw, "If-Match")?),
        None => None,
    };
    let expected_head = match (
        opt_str(body, "expected_head")?,
        req.header("x-expected-head"),
    ) {
        (Some(raw), _) => Some(checkpoint(&raw, "expected_head")?),
        (None, Some(raw)) => Some(checkpoint(raw, "x-expected-head")?),
        (None, None) => None,
    };
    let expected_turns = match (body.get("expected_turns"), req.header("x-expected-turns")) {
        (Some(Value::Number(n)), _) => Some(
            n.as_u64()
                .ok_or_else(|| Error::invalid("expected_turns", "must be a whole number ≥ 0"))?,
        ),
        (Some(Value::Null) | None, Some(raw)) => Some(raw.trim().parse().map_err(|_| {
            Error::invalid(
                "x-expected-turns",
                format!("must be a whole number, got {raw:?}"),
            )
        })?),
        (Some(Value::Null) | None, None) => None,
        (Some(other), _) => {
            return Err(Error::invalid(
                "expected_turns",
                format!("must be a whole number, got {}", json_type_name(other)),
            ))
        }
    };
    Ok(RunGuard {
        if_match,
        expected_head,
        expected_turns,
    })
}

/// Run fields that change how a result is delivered, not which run it is: a `runs/wait`
/// retried as a stream is the same run.
pub(super) const DELIVERY_FIELDS: [&str; 5] = [
    "stream_mode",
    "stream_subgraphs",
    "stream_resumable",
    "on_disconnect",
    "feedback_keys",
];

/// A digest of what a run request asks for, independent of key order and whitespace
/// (the map sorts its keys) and of [`DELIVERY_FIELDS`]: the first 16 bytes of its
/// SHA-256, in hex.
pub(super) fn body_digest(body: &Map<String, Value>) -> String {
    use sha2::{Digest, Sha256};
    let mut asked = body.clone();
    for field in DELIVERY_FIELDS {
        asked.remove(field);
    }
    let hash = Sha256::digest(Value::Object(asked).to_string().as_bytes());
    hash[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Plans a run: on a thread (with its guard and idempotency key), or stateless.
pub(super) fn plan_run(route: RunsRoute<'_>, incoming: &Incoming<'_>) -> Result<Plan> {
    match route {
        RunsRoute::OnThread { thread, stream } => {
            let thread_id = ThreadId::parse(thread)?;
            let body = incoming.body()?;
            let mut run = parse_run(&body, stream, incoming.entropy)?;
            run.guard = parse_guard(&body, incoming.req)?;
            run.idempotency_key = idempotency_key(incoming.req)?;
            run.idempotency_body = run.idempotency_key.as_ref().map(|_| body_digest(&body));
            Ok(thread_call(thread_id, ThreadCommand::Run(run)))
        }
        RunsRoute::Stateless { stream } => Ok(Plan::Stateless(parse_run(
            &incoming.body()?,
            stream,
            incoming.entropy,
        )?)),
    }
}

/// The `Idempotency-Key` header, trimmed; 1 to [`IDEMPOTENCY_KEY_MAX_LEN`] characters.
pub(super) fn idempotency_key(req: &HttpRequest) -> Result<Option<String>> {
    match req.header("idempotency-key").map(str::trim) {
        Some(key) if key.is_empty() || key.len() > IDEMPOTENCY_KEY_MAX_LEN => Err(Error::invalid(
            "Idempotency-Key",
            format!("must be 1 to {IDEMPOTENCY_KEY_MAX_LEN} characters"),
        )),
        key => Ok(key.map(str::to_string)),
    }
}

/// Reads the body of a run request.
pub(super) fn parse_run(
    body: &Map<String, Value>,
    stream: bool,
    entropy: &dyn Entropy,
) -> Result<RunRequest> {
    let assistant = check_assistant(body)?;
    let input = match command_input(body, entropy)? {
        Some(input) => input,
        None => parse_input(body, entropy)?,
    };
    let interrupt_before = interrupts_our_node(body, "interrupt_before")?;
    // After our one node the graph ends: nothing is left to stop before (LangGraph's
    // server, too, leaves such a thread idle). Checked, then ignored.
    interrupts_our_node(body, "interrupt_after")?;
    let if_not_exists = parse_if_not_exists(body)?;
    let multitask = parse_multitask(body)?;
    let checkpoint_id = run_checkpoint(body)?;
    let stream = stream
        .then(|| stream_modes(body.get("stream_mode")))
        .transpose()?;
    let resumable = match body.get("stream_resumable") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(Error::invalid(
                "stream_resumable",
                format!("must be true or false, got {}", json_type_name(other)),
            ))
        }
    };
    let modes = stream.clone().unwrap_or_default();
    Ok(RunRequest {
        input,
        if_not_exists,
        checkpoint_id,
        metadata: opt_metadata(body, "metadata")?,
        stream,
        guard: RunGuard::default(),
        idempotency_key: None,
        idempotency_body: None,
        multitask,
        ignored_input_keys: ignored_input_keys(body),
        interrupt_before,
        delivery: Delivery {
            resumable,
            ttl_minutes: super::threads::parse_ttl(body)?,
            kwargs: super::runs::run_kwargs(body, &modes, resumable),
            ..Delivery::default()
        },
        assistant,
        chat: None,
    })
}

/// `interrupt_before` / `interrupt_after`: `"*"` or a list of node names; whether it
/// names our graph's one node (`agent`). Other names are ignored, as LangGraph's server
/// ignores nodes it does not have.
fn interrupts_our_node(body: &Map<String, Value>, key: &str) -> Result<bool> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::String(all)) if all == "*" => Ok(true),
        Some(Value::Array(nodes)) => nodes.iter().try_fold(false, |named, node| match node {
            Value::String(name) => Ok(named || name == "agent" || name == "*"),
            other => Err(Error::invalid(
                key,
                format!("must hold node names, got {}", json_type_name(other)),
            )),
        }),
        Some(other) => Err(Error::invalid(
            key,
            format!("must be \"*\" or a list of node names, got {other}"),
        )),
    }
}

/// A run's `command`: `{resume}` continues an interrupted thread (as `input: null`
/// does); `{update: {messages}}` is the run's input. `None` without a command.
fn command_input(
    body: &Map<String, Value>,
    entropy: &dyn Entropy,
) -> Result<Option<Vec<MessageOp>>> {
    let command = match body.get("command") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(command)) => command,
        Some(other) => {
            return Err(Error::invalid(
                "command",
                format!("must be an object, got {}", json_type_name(other)),
            ))
        }
    };
    if body.get("input").is_some_and(|i| !i.is_null()) {
        return Err(Error::invalid(
            "command",
            "cannot be sent with `input`: send one of them",
        ));
    }
    if command.get("goto").is_some_and(|g| !g.is_null()) {
        return Err(Error::Unsupported {
            what: "command.goto (this graph has one node, `agent`)".into(),
        });
    }
    match command.get("update") {
        None | Some(Value::Null) => Ok(Some(Vec::new())),
        Some(Value::Object(update)) => {
            let messages = update.get("messages").ok_or_else(|| {
                Error::invalid(
                    "command.update",
                    "must have `messages`, the graph's one state key",
                )
            })?;
            Ok(Some(bounded(parse_messages(
                messages,
                "command.update.messages",
                entropy,
            )?)?))
        }
        Some(other) => Err(Error::invalid(
            "command.update",
            format!("must be an object, got {}", json_type_name(other)),
        )),
    }
}

/// The keys of `input` other than `messages`, sorted.
fn ignored_input_keys(body: &Map<String, Value>) -> Vec<String> {
    let Some(Value::Object(input)) = body.get("input") else {
        return Vec::new();
    };
    let mut keys: Vec<String> = input.keys().filter(|k| *k != "messages").cloned().collect();
    crate::sort::sort(&mut keys);
    keys
}

/// `assistant_id`: the system assistant (`agent`, its UUID, or none), or a stored
/// assistant's UUID (resolved before the run goes to its thread); anything else is 404.
fn check_assistant(body: &Map<String, Value>) -> Result<RunAssistant> {
    let assistant_id = opt_str(body, "assistant_id")?.unwrap_or_else(|| ASSISTANT_ID.to_string());
    Ok(RunAssistant {
        assistant_id: match assistant_named(&assistant_id)? {
            Named::System => None,
            Named::Stored(id) => Some(id),
        },
        ..RunAssistant::default()
    })
}

/// The run's input messages: none without an input (a run that continues the state).
fn parse_input(body: &Map<String, Value>, entropy: &dyn Entropy) -> Result<Vec<MessageOp>> {
    let messages = input_messages(body)?;
    // Keys beside `messages` are ignored, as LangGraph ignores input keys its state does
    // not have (agent-chat-ui sends `context`); an input without `messages` is refused
    // by `input_messages`, so a mismatched input key never fails late and vaguely.
    let input = match messages {
        Some(messages) => bounded(parse_messages(messages, "input.messages", entropy)?)?,
        None => Vec::new(),
    };
    if messages.is_some() && input.is_empty() {
        return Err(Error::invalid(
            "input.messages",
            "must hold at least one message",
        ));
    }
    Ok(input)
}

/// `input.messages`, unparsed; `None` when there is no input at all.
fn input_messages(body: &Map<String, Value>) -> Result<Option<&Value>> {
    let input = match body.get("input") {
        Some(Value::Object(input)) => input,
        // No input: continue from the checkpoint (or head) as it is, e.g. a regenerate.
        None | Some(Value::Null) => return Ok(None),
        Some(other) => {
            return Err(Error::invalid(
                "input",
                format!(
                    "must be an object with a `messages` key, got {}",
                    json_type_name(other)
                ),
            ))
        }
    };
    if let Some(messages) = input.get("messages") {
        return Ok(Some(messages));
    }
    let keys: Vec<String> = input.keys().map(|k| format!("`{k}`")).collect();
    Err(Error::invalid(
        "input.messages",
        format!(
            "missing input key `messages`; expected {{\"messages\": [...]}}, got {}",
            if keys.is_empty() {
                "an empty object".to_string()
            } else {
                format!("keys {}", keys.join(", "))
            }
        ),
    ))
}

/// `multitask_strategy`.
fn parse_multitask(body: &Map<String, Value>) -> Result<Multitask> {
    match opt_str(body, "multitask_strategy")?.as_deref() {
        None | Some("reject") => Ok(Multitask::Reject),
        Some("enqueue") => Ok(Multitask::Enqueue),
        Some("interrupt") => Ok(Multitask::Interrupt),
        Some("rollback") => Ok(Multitask::Rollback),
        Some(other) => Err(Error::invalid(
            "multitask_strategy",
            format!(
                "must be \"reject\", \"enqueue\", \"interrupt\" or \"rollback\", got {other:?}"
            ),
        )),
    }
}

/// The checkpoint to continue from: `checkpoint_id`, the config's
/// `configurable.checkpoint_id`, or `checkpoint`.
fn run_checkpoint(body: &Map<String, Value>) -> Result<Option<CheckpointId>> {
    let configurable_checkpoint = match body.get("config") {
        Some(Value::Object(config)) => match config.get("configurable") {
            Some(Value::Object(c)) => opt_str(c, "checkpoint_id")?,
            _ => None,
        },
        _ => None,
    };
    match opt_str(body, "checkpoint_id")?.or(configurable_checkpoint) {
        Some(raw) => CheckpointId::parse(&raw).map(Some),
        None => checkpoint_in(body, "checkpoint"),
    }
}

pub(super) fn parse_if_not_exists(body: &Map<String, Value>) -> Result<IfNotExists> {
    match opt_str(body, "if_not_exists")?.as_deref() {
        None | Some("reject") => Ok(IfNotExists::Reject),
        Some("create") => Ok(IfNotExists::Create),
        Some(other) => Err(Error::invalid(
            "if_not_exists",
            format!("must be \"reject\" or \"create\", got {other:?}"),
        )),
    }
}

pub(super) fn stream_modes(value: Option<&Value>) -> Result<Vec<StreamMode>> {
    let names: Vec<&str> = match value {
        None | Some(Value::Null) => vec!["values"],
        Some(Value::String(mode)) => vec![mode.as_str()],
        Some(Value::Array(modes)) => modes
            .iter()
            .map(|m| {
                m.as_str().ok_or_else(|| {
                    Error::invalid(
                        "stream_mode",
                        format!("must hold strings, got {}", json_type_name(m)),
                    )
                })
            })
            .collect::<Result<_>>()?,
        Some(other) => {
            return Err(Error::invalid(
                "stream_mode",
                format!("must be a string or a list, got {}", json_type_name(other)),
            ))
        }
    };
    // Modes this server does not produce (events, debug, custom, ...) are ignored, as
    // LangGraph clients expect, not rejected.
    Ok(names
        .into_iter()
        .filter_map(|name| match name {
            "values" => Some(StreamMode::Values),
            "messages-tuple" => Some(StreamMode::MessagesTuple),
            "updates" => Some(StreamMode::Updates),
            "events" => Some(StreamMode::Events),
            _ => None,
        })
        .collect())
}

pub(super) fn bounded(ops: Vec<MessageOp>) -> Result<Vec<MessageOp>> {
    if ops.len() > INPUT_MESSAGES_MAX {
        return Err(Error::TooLarge {
            what: "messages in one request".into(),
            size: ops.len(),
            limit: INPUT_MESSAGES_MAX,
        });
    }
    Ok(ops)
}

/// What a client believes about a thread before it runs on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunGuard {
    /// `If-Match`: the head must be exactly this checkpoint (optimistic concurrency).
    pub if_match: Option<CheckpointId>,
    /// `expected_head` / `x-expected-head`: a checkpoint the client saw; the server must
    /// have it, else the client remembers a conversation the server lost.
    pub expected_head: Option<CheckpointId>,
    /// `expected_turns` / `x-expected-turns`: the thread has at least this many turns.
    pub expected_turns: Option<u64>,
}

impl RunGuard {
    /// Whether the client claims the thread already has a history.
    pub fn expects_memory(&self) -> bool {
        self.expected_head.is_some() || self.expected_turns.is_some_and(|t| t > 0)
    }

    /// Whether anything is to be checked.
    pub fn is_empty(&self) -> bool {
        self.if_match.is_none() && self.expected_head.is_none() && self.expected_turns.is_none()
    }
}
