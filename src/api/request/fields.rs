//! Reading JSON fields of a request body, each error naming the field.

use super::*;

/// `sort_order`: `desc` (the default) or `asc`; whether it is ascending.
pub(super) fn ascending(body: &Map<String, Value>) -> Result<bool> {
    match opt_str(body, "sort_order")?.as_deref() {
        None | Some("desc") => Ok(false),
        Some("asc") => Ok(true),
        Some(other) => Err(Error::invalid(
            "sort_order",
            format!("must be asc or desc, got {other:?}"),
        )),
    }
}

pub(super) fn paging(body: &Map<String, Value>) -> Result<(usize, usize)> {
    let limit = opt_count(body, "limit")?.unwrap_or(10).min(LIST_LIMIT_MAX);
    let offset = opt_count(body, "offset")?.unwrap_or(0);
    Ok((limit, offset))
}

/// `{"<key>": {"checkpoint_id": "..."}}` → the id, if any.
pub(super) fn checkpoint_in(body: &Map<String, Value>, key: &str) -> Result<Option<CheckpointId>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        // A config, `{"configurable": {"checkpoint_id": ...}}`, as the JS SDK sends `before`.
        Some(Value::Object(config)) if config.contains_key("configurable") => {
            match config.get("configurable") {
                Some(Value::Object(configurable)) => checkpoint_in(configurable, "checkpoint_id"),
                _ => Ok(None),
            }
        }
        Some(Value::Object(cp)) => match cp.get("checkpoint_id") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(raw)) => CheckpointId::parse(raw).map(Some),
            Some(other) => Err(Error::invalid(
                format!("{key}.checkpoint_id"),
                format!("must be a string, got {}", json_type_name(other)),
            )),
        },
        // `before` is sometimes sent as a bare id.
        Some(Value::String(raw)) => CheckpointId::parse(raw).map(Some),
        Some(other) => Err(Error::invalid(
            key,
            format!(
                "must be an object like {{\"checkpoint_id\": \"...\"}}, got {}",
                json_type_name(other)
            ),
        )),
    }
}

/// Decodes a JSON object body; an empty body is an empty object.
pub(super) fn read_object(body: &[u8]) -> Result<Map<String, Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let text = std::str::from_utf8(body).map_err(|e| Error::BadRequest {
        reason: format!("body is not valid UTF-8 ({e})"),
    })?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Error::BadRequest {
            reason: format!("expected a JSON object, got {}", json_type_name(&other)),
        }),
        Err(e) => Err(Error::BadRequest {
            reason: format!("invalid JSON ({e})"),
        }),
    }
}

pub(super) fn opt_str(obj: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Error::invalid(
            key,
            format!("must be a string, got {}", json_type_name(other)),
        )),
    }
}

pub(super) fn opt_count(obj: &Map<String, Value>, key: &str) -> Result<Option<usize>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| Error::invalid(key, format!("must be a whole number ≥ 0, got {n}"))),
        Some(other) => Err(Error::invalid(
            key,
            format!("must be a number, got {}", json_type_name(other)),
        )),
    }
}

pub(super) fn opt_metadata(obj: &Map<String, Value>, key: &str) -> Result<Map<String, Value>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => {
            let size = Value::Object(map.clone()).to_string().len();
            if size > METADATA_MAX_BYTES {
                return Err(Error::TooLarge {
                    what: format!("{key} (bytes)"),
                    size,
                    limit: METADATA_MAX_BYTES,
                });
            }
            Ok(map.clone())
        }
        Some(other) => Err(Error::invalid(
            key,
            format!("must be an object, got {}", json_type_name(other)),
        )),
    }
}
