//! The state routes: a thread's state (at its head or a checkpoint), updates to it, and
//! its history.

use super::fields::*;
use super::route::StateRoute;
use super::run::{bounded, parse_if_not_exists};
use super::*;

/// Plans a state route.
pub(super) fn plan_state(route: StateRoute<'_>, incoming: &Incoming<'_>) -> Result<Plan> {
    let state_at = |checkpoint_id| ThreadCommand::GetState { checkpoint_id };
    Ok(match route {
        StateRoute::Head(id) => thread_call(ThreadId::parse(id)?, state_at(None)),
        StateRoute::At { thread, checkpoint } => {
            let checkpoint_id = Some(CheckpointId::parse(checkpoint)?);
            thread_call(ThreadId::parse(thread)?, state_at(checkpoint_id))
        }
        StateRoute::Checkpoint(id) => {
            let checkpoint_id = checkpoint_in(&incoming.body()?, "checkpoint")?;
            thread_call(ThreadId::parse(id)?, state_at(checkpoint_id))
        }
        StateRoute::Update(id) => {
            let thread_id = ThreadId::parse(id)?;
            let command = parse_update_state(&incoming.body()?, incoming.entropy)?;
            thread_call(thread_id, command)
        }
        StateRoute::History(id) => {
            let thread_id = ThreadId::parse(id)?;
            thread_call(thread_id, parse_history(&incoming.body()?)?)
        }
    })
}

/// The body of `POST /threads/{id}/history`.
fn parse_history(body: &Map<String, Value>) -> Result<ThreadCommand> {
    let limit = opt_count(body, "limit")?.unwrap_or(10).min(LIST_LIMIT_MAX);
    let before = checkpoint_in(body, "before")?;
    let checkpoint_id = checkpoint_in(body, "checkpoint")?;
    let metadata = opt_metadata(body, "metadata")?;
    Ok(ThreadCommand::History {
        limit,
        before,
        metadata,
        checkpoint_id,
    })
}

/// The body of `POST /threads/{id}/state`.
fn parse_update_state(body: &Map<String, Value>, entropy: &dyn Entropy) -> Result<ThreadCommand> {
    let ops = match body.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(values)) => {
            if let Some(unknown) = values.keys().find(|k| k.as_str() != "messages") {
                return Err(Error::invalid(
                    format!("values.{unknown}"),
                    "is not a key of this graph's state; the state has only `messages`",
                ));
            }
            match values.get("messages") {
                Some(messages) => bounded(parse_messages(messages, "values.messages", entropy)?)?,
                None => Vec::new(),
            }
        }
        // A list of values updates, LangGraph's batch form: only one is supported.
        Some(other) => {
            return Err(Error::invalid(
                "values",
                format!(
                    "must be an object like {{\"messages\": [...]}}, got {}",
                    json_type_name(other)
                ),
            ))
        }
    };
    let checkpoint_id = match opt_str(body, "checkpoint_id")? {
        Some(raw) => Some(CheckpointId::parse(&raw)?),
        None => checkpoint_in(body, "checkpoint")?,
    };
    let as_node = opt_str(body, "as_node")?.unwrap_or_else(|| ASSISTANT_ID.to_string());
    Ok(ThreadCommand::UpdateState {
        ops,
        checkpoint_id,
        as_node,
        if_not_exists: parse_if_not_exists(body)?,
    })
}
