//! The routes of background runs and run records: `POST /threads/{id}/runs`,
//! `POST /runs`, `POST /runs/batch`, and list, get, delete, cancel, join and stream of
//! a thread's runs.

use super::fields::*;
use super::route::{RunOpKind, RunRecordsRoute};
use super::run::{body_digest, idempotency_key, parse_guard, parse_run};
use super::*;
use crate::api::runs::{
    parse_last_event_id, parse_stop_action, RUNS_BATCH_MAX, RUNS_LIST_MAX, RUN_RECORD_MAX_BYTES,
};

/// Inputs larger than this are not repeated in a run's `kwargs` (they are in the
/// thread's state): a run record stays small in `runs.list`.
const KWARGS_INPUT_MAX_BYTES: usize = 64 * 1024;

/// Plans a route on background runs or run records.
pub(super) fn plan_run_records(
    route: RunRecordsRoute<'_>,
    incoming: &Incoming<'_>,
) -> Result<Plan> {
    match route {
        RunRecordsRoute::Create(thread) => {
            let thread_id = ThreadId::parse(thread)?;
            let body = incoming.body()?;
            let mut run = background_run(&body, incoming)?;
            run.guard = parse_guard(&body, incoming.req)?;
            run.idempotency_key = idempotency_key(incoming.req)?;
            run.idempotency_body = run.idempotency_key.as_ref().map(|_| body_digest(&body));
            Ok(thread_call(thread_id, ThreadCommand::Run(run)))
        }
        RunRecordsRoute::CreateStateless => {
            let body = incoming.body()?;
            let run = stateless_background_run(&body, incoming)?;
            Ok(thread_call(
                ThreadId::generate(incoming.entropy),
                ThreadCommand::Run(run),
            ))
        }
        RunRecordsRoute::Batch => plan_batch(incoming),
        RunRecordsRoute::List(thread) => {
            let thread_id = ThreadId::parse(thread)?;
            let limit = query_count(incoming.req, "limit")?.unwrap_or(10);
            if limit > RUNS_LIST_MAX {
                return Err(Error::invalid(
                    "limit",
                    format!("must be at most {RUNS_LIST_MAX}"),
                ));
            }
            let op = RunOp::List {
                status: incoming.req.query_param("status"),
                limit,
                offset: query_count(incoming.req, "offset")?.unwrap_or(0),
            };
            Ok(thread_call(thread_id, ThreadCommand::RunOp(op)))
        }
        RunRecordsRoute::One { thread, run, op } => {
            let thread_id = ThreadId::parse(thread)?;
            let run_id = check_run_id(run)?;
            let op = one_run_op(op, run_id, incoming.req)?;
            Ok(thread_call(thread_id, ThreadCommand::RunOp(op)))
        }
    }
}

/// What a route asks of one run, with its query parameters read.
fn one_run_op(kind: RunOpKind, run_id: String, req: &HttpRequest) -> Result<RunOp> {
    Ok(match kind {
        RunOpKind::Get => RunOp::Get { run_id },
        RunOpKind::Delete => RunOp::Delete { run_id },
        RunOpKind::Join => RunOp::Join { run_id },
        RunOpKind::Cancel => RunOp::Cancel {
            run_id,
            wait: query_flag(req, "wait")?,
            action: parse_stop_action(req.query_param("action").as_deref())?,
        },
        RunOpKind::Stream => RunOp::JoinStream {
            run_id,
            replay: parse_last_event_id(req.header("last-event-id"))?,
            modes: req
                .query_param("stream_mode")
                .filter(|raw| !raw.is_empty())
                .map(|raw| join_modes(&raw)),
        },
    })
}

/// `stream_mode` of a join: one mode, a comma-separated list, or a JSON list (what the
/// JS SDK sends for several).
fn join_modes(raw: &str) -> Vec<String> {
    let names: Vec<String> = match serde_json::from_str::<Vec<String>>(raw) {
        Ok(list) => list,
        Err(_) => raw.split(',').map(|m| m.trim().to_string()).collect(),
    };
    names
        .into_iter()
        .map(|m| match m.as_str() {
            "messages" => "messages-tuple".to_string(),
            _ => m,
        })
        .collect()
}

/// A run id as a path segment: printable, and short enough to be one.
fn check_run_id(raw: &str) -> Result<String> {
    if raw.is_empty() || raw.len() > 64 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            "run_id",
            format!("is not a run id: {raw:?}"),
        ));
    }
    Ok(raw.to_string())
}

fn query_count(req: &HttpRequest, name: &str) -> Result<Option<usize>> {
    match req.query_param(name) {
        None => Ok(None),
        Some(raw) => {
            raw.trim().parse().map(Some).map_err(|_| {
                Error::invalid(name, format!("must be a whole number ≥ 0, got {raw:?}"))
            })
        }
    }
}

fn query_flag(req: &HttpRequest, name: &str) -> Result<bool> {
    match req
        .query_param(name)
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => Err(Error::invalid(
            name,
            format!("must be true or false, got {other:?}"),
        )),
    }
}

/// A background run's body: a run whose events are kept in the modes asked (`values` by
/// default), waiting in line behind the thread's current run unless told otherwise (as
/// LangGraph's server does for `POST .../runs`).
fn background_run(body: &Map<String, Value>, incoming: &Incoming<'_>) -> Result<RunRequest> {
    let mut run = parse_run(body, true, incoming.entropy)?;
    if !body.contains_key("multitask_strategy") {
        run.multitask = Multitask::Enqueue;
    }
    run.delivery.background = true;
    run.delivery.after_ms = match body.get("after_seconds") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) if n.as_f64().is_some_and(|s| (0.0..=86_400.0).contains(&s)) => {
            (n.as_f64().unwrap_or(0.0) * 1000.0) as i64
        }
        Some(other) => {
            return Err(Error::invalid(
                "after_seconds",
                format!("must be a number of seconds from 0 to 86400, got {other}"),
            ))
        }
    };
    if incoming.req.body.len() > RUN_RECORD_MAX_BYTES {
        return Err(Error::TooLarge {
            what: "background run request (bytes; it is kept until the run starts)".into(),
            size: incoming.req.body.len(),
            limit: RUN_RECORD_MAX_BYTES,
        });
    }
    Ok(run)
}

/// `POST /runs`: a background run on a new thread, deleted when the run ends unless
/// `on_completion` is `keep`.
fn stateless_background_run(
    body: &Map<String, Value>,
    incoming: &Incoming<'_>,
) -> Result<RunRequest> {
    let mut run = background_run(body, incoming)?;
    run.if_not_exists = IfNotExists::Create;
    run.delivery.delete_thread_after = match opt_str(body, "on_completion")?.as_deref() {
        None | Some("delete") => true,
        Some("keep") => false,
        Some(other) => {
            return Err(Error::invalid(
                "on_completion",
                format!("must be \"delete\" or \"keep\", got {other:?}"),
            ))
        }
    };
    Ok(run)
}

/// `POST /runs/batch`: a list of stateless background runs, each checked before any
/// starts.
fn plan_batch(incoming: &Incoming<'_>) -> Result<Plan> {
    let items = match serde_json::from_slice::<Value>(&incoming.req.body) {
        Ok(Value::Array(items)) => items,
        Ok(other) => {
            return Err(Error::invalid(
                "body",
                format!("must be a list of runs, got {}", json_type_name(&other)),
            ))
        }
        Err(e) => return Err(Error::invalid("body", format!("is not JSON: {e}"))),
    };
    if items.is_empty() || items.len() > RUNS_BATCH_MAX {
        return Err(Error::invalid(
            "body",
            format!("must hold 1 to {RUNS_BATCH_MAX} runs, got {}", items.len()),
        ));
    }
    let runs = items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(body) => stateless_background_run(body, incoming).map(|run| ThreadCall {
                thread_id: ThreadId::generate(incoming.entropy),
                command: ThreadCommand::Run(run),
                owner: None,
            }),
            other => Err(Error::invalid(
                format!("body[{i}]"),
                format!("must be a run object, got {}", json_type_name(other)),
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Plan::Batch(runs))
}

/// What a run was asked, as LangGraph's server answers it in `kwargs`.
pub(super) fn run_kwargs(
    body: &Map<String, Value>,
    modes: &[StreamMode],
    resumable: bool,
) -> Value {
    let field = |key: &str| body.get(key).cloned().unwrap_or(Value::Null);
    let input = match body.get("input") {
        Some(input) if input.to_string().len() > KWARGS_INPUT_MAX_BYTES => {
            json!({"omitted_bytes": input.to_string().len()})
        }
        _ => field("input"),
    };
    let modes: Vec<&str> = modes
        .iter()
        .map(|m| match m {
            StreamMode::Values => "values",
            StreamMode::MessagesTuple => "messages-tuple",
            StreamMode::Updates => "updates",
            StreamMode::Events => "events",
        })
        .collect();
    json!({
        "input": input,
        "command": field("command"),
        "config": body.get("config").cloned().unwrap_or_else(|| json!({})),
        "context": body.get("context").cloned().unwrap_or_else(|| json!({})),
        "stream_mode": modes,
        "interrupt_before": field("interrupt_before"),
        "interrupt_after": field("interrupt_after"),
        "webhook": field("webhook"),
        "feedback_keys": field("feedback_keys"),
        "temporary": false,
        "subgraphs": false,
        "resumable": resumable,
    })
}
