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
            let metadata = opt_metadata(&incoming.body()?, "metadata")?;
            thread_call(ThreadId::parse(id)?, ThreadCommand::Patch { metadata })
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
        },
    ))
}

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
