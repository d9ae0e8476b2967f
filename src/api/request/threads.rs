//! The thread routes: create, read, patch, delete, copy, search and count.

use super::fields::*;
use super::route::ThreadsRoute;
use super::*;

/// Plans a thread route.
pub(super) fn plan_threads(route: ThreadsRoute<'_>, incoming: &Incoming<'_>) -> Result<Plan> {
    Ok(match route {
        ThreadsRoute::Create => create(&incoming.body()?, incoming.entropy)?,
        ThreadsRoute::Search { count } => Plan::Search {
            query: parse_search(&incoming.body()?)?,
            count_only: count,
        },
        ThreadsRoute::Get(id) => thread_call(ThreadId::parse(id)?, ThreadCommand::Get),
        ThreadsRoute::Patch(id) => {
            let body = incoming.body()?;
            let metadata = opt_metadata(&body, "metadata")?;
            let ttl_minutes = parse_ttl(&body)?;
            let command = ThreadCommand::Patch {
                metadata,
                ttl_minutes,
            };
            thread_call(ThreadId::parse(id)?, command)
        }
        ThreadsRoute::Delete(id) => thread_call(ThreadId::parse(id)?, ThreadCommand::Delete),
        ThreadsRoute::Copy(id) => Plan::Copy {
            from: ThreadId::parse(id)?,
            to: ThreadId::generate(incoming.entropy),
            owner: None,
        },
    })
}

/// `POST /threads`.
fn create(body: &Map<String, Value>, entropy: &dyn Entropy) -> Result<Plan> {
    let thread_id = match body.get("thread_id") {
        None | Some(Value::Null) => ThreadId::generate(entropy),
        Some(Value::String(raw)) => ThreadId::parse(raw)?,
        Some(other) => {
            return Err(Error::invalid(
                "thread_id",
                format!("must be a string, got {}", json_type_name(other)),
            ))
        }
    };
    let if_exists = match opt_str(body, "if_exists")?.as_deref() {
        None | Some("raise") => IfExists::Raise,
        Some("do_nothing") => IfExists::DoNothing,
        Some(other) => {
            return Err(Error::invalid(
                "if_exists",
                format!("must be \"raise\" or \"do_nothing\", got {other:?}"),
            ))
        }
    };
    let metadata = opt_metadata(body, "metadata")?;
    Ok(thread_call(
        thread_id,
        ThreadCommand::Create {
            metadata,
            if_exists,
            ttl_minutes: parse_ttl(body)?,
            supersteps: parse_supersteps(body, entropy)?,
        },
    ))
}

/// `ttl`: `{strategy?: "delete", ttl: minutes}`, minutes from now (as LangGraph's).
pub(super) fn parse_ttl(body: &Map<String, Value>) -> Result<Option<f64>> {
    let ttl = match body.get("ttl") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(ttl)) => ttl,
        Some(other) => {
            return Err(Error::invalid(
                "ttl",
                format!(
                "must be an object {{\"strategy\": \"delete\", \"ttl\": <minutes>}}, got {other}"
            ),
            ))
        }
    };
    match opt_str(ttl, "strategy")?.as_deref() {
        None | Some("delete") => {}
        Some(other) => {
            return Err(Error::Unsupported {
                what: format!("ttl strategy {other:?} (\"delete\" is implemented)"),
            })
        }
    }
    match ttl.get("ttl").and_then(Value::as_f64) {
        Some(minutes) if minutes > 0.0 && minutes <= TTL_MAX_MINUTES => Ok(Some(minutes)),
        _ => Err(Error::invalid(
            "ttl.ttl",
            format!("must be a number of minutes above 0 and at most {TTL_MAX_MINUTES}"),
        )),
    }
}

/// `supersteps`: `[{updates: [{values: {messages}, as_node?}]}]`, each update's messages
/// applied in order with the reducer.
fn parse_supersteps(
    body: &Map<String, Value>,
    entropy: &dyn Entropy,
) -> Result<Vec<Vec<MessageOp>>> {
    let steps = match body.get("supersteps") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(steps)) => steps,
        Some(other) => {
            return Err(Error::invalid(
                "supersteps",
                format!("must be a list, got {}", json_type_name(other)),
            ))
        }
    };
    let mut ops = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let updates = step
            .get("updates")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                Error::invalid(
                    format!("supersteps[{i}].updates"),
                    "must be a list of updates",
                )
            })?;
        for (j, update) in updates.iter().enumerate() {
            let at = format!("supersteps[{i}].updates[{j}]");
            if let Some(node) = update.get("as_node").and_then(Value::as_str) {
                if !["__input__", "__start__", "agent"].contains(&node) {
                    return Err(Error::invalid(
                        format!("{at}.as_node"),
                        format!("node {node:?} does not exist (this graph has `agent`)"),
                    ));
                }
            }
            let messages = update
                .get("values")
                .and_then(|v| v.get("messages"))
                .ok_or_else(|| {
                    Error::invalid(
                        format!("{at}.values"),
                        "must be {\"messages\": [...]} (`command` updates are not supported)",
                    )
                })?;
            ops.push(super::run::bounded(parse_messages(
                messages,
                &format!("{at}.values.messages"),
                entropy,
            )?)?);
        }
    }
    if ops.len() > SUPERSTEPS_MAX {
        return Err(Error::TooLarge {
            what: "supersteps updates".into(),
            size: ops.len(),
            limit: SUPERSTEPS_MAX,
        });
    }
    Ok(ops)
}

/// The longest thread TTL: a year.
const TTL_MAX_MINUTES: f64 = 525_600.0;

/// Most updates one `POST /threads` applies (each is a checkpoint).
const SUPERSTEPS_MAX: usize = 100;

/// The body of `POST /threads/search` and `/threads/count`.
fn parse_search(body: &Map<String, Value>) -> Result<ThreadSearch> {
    let (limit, offset) = paging(body)?;
    let ids = match body.get("ids") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|v| match v {
                    Value::String(s) => ThreadId::parse(s),
                    other => Err(Error::invalid(
                        "ids",
                        format!("must be a list of strings, got {}", json_type_name(other)),
                    )),
                })
                .collect::<Result<Vec<_>>>()?,
        ),
        Some(other) => {
            return Err(Error::invalid(
                "ids",
                format!("must be a list, got {}", json_type_name(other)),
            ))
        }
    };
    let status = match opt_str(body, "status")?.as_deref() {
        None => None,
        Some("idle") => Some(ThreadStatus::Idle),
        Some("busy") => Some(ThreadStatus::Busy),
        Some("error") => Some(ThreadStatus::Error),
        // No thread is ever interrupted here: a valid filter that matches nothing.
        Some("interrupted") => Some(ThreadStatus::Interrupted),
        Some(other) => {
            return Err(Error::invalid(
                "status",
                format!("must be idle, busy, interrupted or error, got {other:?}"),
            ))
        }
    };
    let sort_by = match opt_str(body, "sort_by")?.as_deref() {
        None | Some("updated_at") => ThreadSortKey::UpdatedAt,
        Some("created_at") => ThreadSortKey::CreatedAt,
        Some("thread_id") => ThreadSortKey::ThreadId,
        Some(other) => {
            return Err(Error::invalid(
                "sort_by",
                format!("must be updated_at, created_at or thread_id, got {other:?}"),
            ))
        }
    };
    let ascending = ascending(body)?;
    Ok(ThreadSearch {
        metadata: opt_metadata(body, "metadata")?,
        ids,
        status,
        sort_by,
        ascending,
        limit,
        offset,
    })
}
