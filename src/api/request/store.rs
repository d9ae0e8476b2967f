//! `/store/*`: the Store API's requests, decoded and checked (LangGraph's shapes).

use super::fields::{opt_count, opt_str};
use super::route::StoreRoute;
use super::*;
use crate::api::directory::SEARCH_WINDOW_MAX;
use crate::api::store::{IndexSpec, StoreOp, StorePlan};
use crate::limits::{STORE_SEARCH_LIMIT_MAX, STORE_VALUE_MAX_BYTES};
use crate::store::filter::Filter;
use crate::store::{check_key, Namespace, NamespaceQuery, SearchQuery};

/// Plans a Store API request; the owner is set by `scope`.
pub(super) fn plan_store(route: StoreRoute, incoming: &Incoming<'_>) -> Result<Plan> {
    let op = match route {
        StoreRoute::Get => get(&incoming.req.query)?,
        StoreRoute::Put => put(&incoming.body()?)?,
        StoreRoute::Delete => {
            let body = incoming.body()?;
            StoreOp::Delete {
                namespace: namespace(&body, "namespace", false)?,
                key: key(&body)?,
            }
        }
        StoreRoute::Search => search(&incoming.body()?)?,
        StoreRoute::Namespaces => list_namespaces(&incoming.body()?)?,
    };
    Ok(Plan::Store(StorePlan { op, owner: None }))
}

/// `GET /store/items?namespace=a.b&key=k&refresh_ttl=true` (the SDKs' encoding: labels
/// joined by `.`; of repeated parameters the last counts, as in LangGraph's server).
fn get(query: &str) -> Result<StoreOp> {
    let params = query_params(query)?;
    let param = |name: &str| {
        params
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let labels: Vec<String> = param("namespace")
        .unwrap_or_default()
        .split('.')
        .map(str::to_string)
        .collect();
    let namespace = Namespace::new(labels, "namespace", false)?;
    let key = param("key").ok_or_else(|| Error::invalid("key", "is required"))?;
    check_key(key)?;
    let refresh_ttl = match param("refresh_ttl") {
        None => true,
        Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => true,
        Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => false,
        Some(other) => {
            return Err(Error::invalid(
                "refresh_ttl",
                format!("must be true or false, got '{other}'"),
            ))
        }
    };
    Ok(StoreOp::Get {
        namespace,
        key: key.to_string(),
        refresh_ttl,
    })
}

fn put(body: &Map<String, Value>) -> Result<StoreOp> {
    let namespace = namespace(body, "namespace", false)?;
    let key = key(body)?;
    let value = match body.get("value") {
        Some(Value::Object(map)) => map.clone(),
        other => {
            return Err(Error::invalid(
                "value",
                format!(
                    "must be a JSON object, got {}",
                    other.map_or("nothing", json_type_name)
                ),
            ))
        }
    };
    let size = Value::Object(value.clone()).to_string().len();
    if size > STORE_VALUE_MAX_BYTES {
        return Err(Error::TooLarge {
            what: "value (bytes)".into(),
            size,
            limit: STORE_VALUE_MAX_BYTES,
        });
    }
    let index = match body.get("index") {
        None | Some(Value::Null) => IndexSpec::Default,
        Some(Value::Bool(false)) => IndexSpec::Off,
        Some(Value::Array(paths)) => IndexSpec::Paths(
            paths
                .iter()
                .map(|p| match p {
                    Value::String(s) if !s.is_empty() => Ok(s.clone()),
                    other => Err(Error::invalid(
                        "index",
                        format!("paths must be non-empty strings, got {other}"),
                    )),
                })
                .collect::<Result<_>>()?,
        ),
        Some(other) => {
            return Err(Error::invalid(
                "index",
                format!("must be false, null or a list of paths, got {other}"),
            ))
        }
    };
    Ok(StoreOp::Put {
        namespace,
        key,
        value,
        index,
        ttl_minutes: ttl(body)?,
    })
}

/// `ttl`: minutes, a number > 0, or `null` for none.
fn ttl(body: &Map<String, Value>) -> Result<Option<f64>> {
    match body.get("ttl") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(minutes) if minutes > 0.0 && minutes.is_finite() => Ok(Some(minutes)),
            _ => Err(Error::invalid(
                "ttl",
                format!("must be minutes > 0, got {n}"),
            )),
        },
        Some(other) => Err(Error::invalid(
            "ttl",
            format!("must be a number of minutes, got {}", json_type_name(other)),
        )),
    }
}

fn search(body: &Map<String, Value>) -> Result<StoreOp> {
    // LangGraph's server answers 500 without a prefix; none means all, as `[]` does.
    let prefix = namespace(body, "namespace_prefix", true)?;
    let filter = match body.get("filter") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(Filter::parse(map.clone())?),
        Some(other) => {
            return Err(Error::invalid(
                "filter",
                format!("must be an object, got {}", json_type_name(other)),
            ))
        }
    };
    // `limit: 0` is the default page, as in LangGraph's server.
    let limit = match opt_count(body, "limit")? {
        None | Some(0) => 10,
        Some(n) => n,
    };
    let (limit, offset) = bounded_page(limit, opt_count(body, "offset")?.unwrap_or(0))?;
    let text = opt_str(body, "query")?.filter(|q| !q.is_empty());
    Ok(StoreOp::Search {
        query: SearchQuery {
            prefix,
            filter,
            limit,
            offset,
            vector: None,
            refresh_ttl: opt_bool(body, "refresh_ttl")?.unwrap_or(true),
        },
        text,
    })
}

fn list_namespaces(body: &Map<String, Value>) -> Result<StoreOp> {
    let labels = |field: &str| -> Result<Vec<String>> {
        // `*` is a wildcard label here.
        Ok(namespace(body, field, true)?.labels().to_vec())
    };
    let max_depth = match opt_count(body, "max_depth")? {
        Some(0) => return Err(Error::invalid("max_depth", "must be at least 1")),
        depth => depth,
    };
    let limit = opt_count(body, "limit")?.unwrap_or(100);
    let (limit, offset) = bounded_page(limit, opt_count(body, "offset")?.unwrap_or(0))?;
    Ok(StoreOp::ListNamespaces(NamespaceQuery {
        prefix: labels("prefix")?,
        suffix: labels("suffix")?,
        max_depth,
        limit,
        offset,
    }))
}

/// A page within [`STORE_SEARCH_LIMIT_MAX`], whose end is within the merge window.
fn bounded_page(limit: usize, offset: usize) -> Result<(usize, usize)> {
    let limit = limit.min(STORE_SEARCH_LIMIT_MAX);
    if offset.saturating_add(limit) > SEARCH_WINDOW_MAX {
        return Err(Error::invalid(
            "offset",
            format!("offset + limit may be at most {SEARCH_WINDOW_MAX}"),
        ));
    }
    Ok((limit, offset))
}

/// A namespace field: a list of labels (absent or `null`: empty, where allowed).
fn namespace(body: &Map<String, Value>, field: &str, allow_empty: bool) -> Result<Namespace> {
    let labels = match body.get(field) {
        None | Some(Value::Null) if allow_empty => Vec::new(),
        Some(Value::Array(labels)) => labels
            .iter()
            .enumerate()
            .map(|(i, label)| match label {
                Value::String(s) => Ok(s.clone()),
                other => Err(Error::invalid(
                    format!("{field}[{i}]"),
                    format!("must be a string, got {}", json_type_name(other)),
                )),
            })
            .collect::<Result<_>>()?,
        other => {
            return Err(Error::invalid(
                field,
                format!(
                    "must be a list of labels, got {}",
                    other.map_or("nothing", json_type_name)
                ),
            ))
        }
    };
    Namespace::new(labels, field, allow_empty)
}

fn key(body: &Map<String, Value>) -> Result<String> {
    let key = match body.get("key") {
        Some(Value::String(key)) => key.clone(),
        other => {
            return Err(Error::invalid(
                "key",
                format!(
                    "must be a string, got {}",
                    other.map_or("nothing", json_type_name)
                ),
            ))
        }
    };
    check_key(&key)?;
    Ok(key)
}

fn opt_bool(body: &Map<String, Value>, field: &str) -> Result<Option<bool>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(Error::invalid(
            field,
            format!("must be true or false, got {}", json_type_name(other)),
        )),
    }
}

/// `a=1&b=x%20y` → pairs, percent-decoded (`+` is a space).
fn query_params(query: &str) -> Result<Vec<(String, String)>> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(name)?, percent_decode(value)?))
        })
        .collect()
}

fn percent_decode(text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| Error::BadRequest {
                        reason: format!("the query string has a bad escape in '{text}'"),
                    })?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| Error::BadRequest {
        reason: "the query string is not UTF-8".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        let params = query_params("namespace=a.b%20c&key=k+1&flag").unwrap_or_default();
        assert_eq!(
            params,
            [
                ("namespace".into(), "a.b c".into()),
                ("key".into(), "k 1".into()),
                ("flag".into(), String::new())
            ]
        );
        assert!(query_params("key=%zz").is_err());
        assert!(query_params("key=%c3").is_err());
    }
}
