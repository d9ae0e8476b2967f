//! `POST /threads/{id}/saver/{op}`: the storage of LangGraph checkpointers
//! (`EdgeMemorySaver`), one request a call.

use super::fields::*;
use super::*;

/// Plans a checkpointer call: a command on the thread, or a copy to another thread.
pub(super) fn plan_saver(thread: &str, op: &str, incoming: &Incoming<'_>) -> Result<Plan> {
    let thread_id = ThreadId::parse(thread)?;
    let body = incoming.body()?;
    Ok(match parse_saver(op, &body)? {
        SaverCall::Copy(target) => Plan::SaverCopy {
            from: thread_id,
            to: target,
            owner: None,
        },
        SaverCall::Command(command) => thread_call(thread_id, ThreadCommand::Saver(*command)),
    })
}

/// The most run ids one `delete_for_runs` takes: each is looked up in the directory and
/// every thread they touched is visited, so the work is bounded by it.
pub(super) const DELETE_FOR_RUNS_MAX: usize = 1_000;

/// `POST /saver/delete_for_runs` `{run_ids: [..]}`.
pub(super) fn plan_delete_for_runs(incoming: &Incoming<'_>) -> Result<Plan> {
    let body = incoming.body()?;
    let Some(Value::Array(items)) = body.get("run_ids") else {
        return Err(Error::invalid("run_ids", "is required: a list of run ids"));
    };
    if items.len() > DELETE_FOR_RUNS_MAX {
        return Err(Error::invalid(
            "run_ids",
            format!(
                "at most {DELETE_FOR_RUNS_MAX} run ids at once, got {}",
                items.len()
            ),
        ));
    }
    let run_ids = items
        .iter()
        .map(|item| match item.as_str() {
            Some(id) if !id.is_empty() && id.len() <= 128 => Ok(id.to_string()),
            _ => Err(Error::invalid(
                "run_ids",
                format!("each must be a non-empty string of at most 128 characters, got {item}"),
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Plan::SaverDeleteRuns {
        run_ids,
        owner: None,
    })
}

/// A checkpointer call: on this thread, or a copy to another.
enum SaverCall {
    Command(Box<SaverCommand>),
    Copy(ThreadId),
}

fn parse_saver(op: &str, body: &Map<String, Value>) -> Result<SaverCall> {
    let value = Value::Object(body.clone());
    let decode = |what: &str| {
        let field = format!("saver {what} body");
        move |e: serde_json::Error| Error::invalid(field, e.to_string())
    };
    let command = match op {
        "put" => SaverCommand::Put(serde_json::from_value(value).map_err(decode("put"))?),
        "put_writes" => {
            SaverCommand::PutWrites(serde_json::from_value(value).map_err(decode("put_writes"))?)
        }
        "get" => SaverCommand::Get {
            checkpoint_ns: opt_str(body, "checkpoint_ns")?.unwrap_or_default(),
            checkpoint_id: opt_str(body, "checkpoint_id")?,
        },
        "list" => SaverCommand::List(serde_json::from_value(value).map_err(decode("list"))?),
        "prune" => SaverCommand::Prune {
            keep_latest: match opt_str(body, "strategy")?.as_deref() {
                None | Some("keep_latest") => true,
                Some("delete") => false,
                Some(other) => {
                    return Err(Error::invalid(
                        "strategy",
                        format!("must be \"keep_latest\" or \"delete\", got {other:?}"),
                    ))
                }
            },
        },
        "copy" => {
            let target = opt_str(body, "target_thread_id")?
                .ok_or_else(|| Error::invalid("target_thread_id", "is required"))?;
            return Ok(SaverCall::Copy(ThreadId::parse(&target)?));
        }
        // The route table takes any op; an unknown one is an unknown route.
        other => {
            return Err(Error::NotFound {
                what: "route",
                id: format!("POST /threads/{{id}}/saver/{other}"),
            })
        }
    };
    Ok(SaverCall::Command(Box::new(command)))
}
