//! A search's `filter`, with the semantics of LangGraph's `InMemoryStore`.
//!
//! `{"lang": "en"}` matches items whose value has `lang == "en"`; a nested object matches
//! key by key (`{"prefs": {"theme": "dark"}}`), a list matches a list of the same length
//! element by element, a missing key reads as `null`. An object whose keys start with `$`
//! is a set of operators on the value: `$eq`, `$ne`, `$gt`, `$gte`, `$lt`, `$lte`.
//!
//! Where we differ on purpose (LangGraph's in-memory store answers 500 or converts):
//! comparisons (`$gt`, ...) need a number as operand (else 422) and match only numbers
//! (a missing or non-numeric field does not match instead of failing the search); an
//! unknown operator is a 422; `true` does not equal `1`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::checkpoint::sql::SqlValue;
use crate::error::{Error, Result};
use crate::message::json_type_name;

/// The operators a filter may use.
pub const OPERATORS: [&str; 6] = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"];

/// A checked filter: every operator known, every comparison's operand a number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Filter(Map<String, Value>);

impl Filter {
    /// Checks `filter` (the `filter` field of a search body).
    pub fn parse(filter: Map<String, Value>) -> Result<Filter> {
        for (key, condition) in &filter {
            check(condition, &format!("filter.{key}"))?;
        }
        Ok(Filter(filter))
    }

    /// Whether `value` (an item's object) matches every condition.
    pub fn matches(&self, value: &Map<String, Value>) -> bool {
        self.0
            .iter()
            .all(|(key, condition)| compare(value.get(key), condition))
    }

    /// Conditions SQLite can check first, as `(json path, value)`: plain equality on a
    /// top-level key with a simple name and a string or number operand. A superset of
    /// the matches (SQLite reads `true` as 1): [`Filter::matches`] decides.
    pub fn sql_equalities(&self) -> Vec<(String, SqlValue)> {
        let simple = |key: &str| {
            !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        self.0
            .iter()
            .filter(|(key, _)| simple(key))
            .filter_map(|(key, condition)| {
                let operand = match condition {
                    Value::String(s) => SqlValue::Text(s.clone()),
                    Value::Number(n) => match n.as_i64() {
                        Some(i) => SqlValue::Integer(i),
                        None => SqlValue::Real(n.as_f64()?),
                    },
                    _ => return None,
                };
                Some((format!("$.{key}"), operand))
            })
            .collect()
    }
}

fn is_operators(condition: &Map<String, Value>) -> bool {
    condition.keys().any(|k| k.starts_with('$'))
}

fn check(condition: &Value, field: &str) -> Result<()> {
    match condition {
        Value::Object(map) if is_operators(map) => {
            for (op, operand) in map {
                if !OPERATORS.contains(&op.as_str()) {
                    return Err(Error::invalid(
                        field,
                        format!(
                            "unknown operator '{op}': use one of {}",
                            OPERATORS.join(", ")
                        ),
                    ));
                }
                let ordering = !matches!(op.as_str(), "$eq" | "$ne");
                if ordering && !operand.is_number() {
                    return Err(Error::invalid(
                        format!("{field}.{op}"),
                        format!("must be a number, got {}", json_type_name(operand)),
                    ));
                }
            }
            Ok(())
        }
        Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| check(v, &format!("{field}.{k}"))),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check(v, &format!("{field}[{i}]"))),
        _ => Ok(()),
    }
}

/// `InMemoryStore._compare_values`: whether `value` (absent: `null`) meets `condition`.
fn compare(value: Option<&Value>, condition: &Value) -> bool {
    match condition {
        Value::Object(ops) if is_operators(ops) => {
            ops.iter().all(|(op, operand)| apply(value, op, operand))
        }
        Value::Object(fields) => match value {
            Some(Value::Object(object)) => fields.iter().all(|(k, c)| compare(object.get(k), c)),
            _ => false,
        },
        Value::Array(conditions) => match value {
            Some(Value::Array(items)) => {
                items.len() == conditions.len()
                    && items
                        .iter()
                        .zip(conditions)
                        .all(|(item, c)| compare(Some(item), c))
            }
            _ => false,
        },
        scalar => json_eq(value.unwrap_or(&Value::Null), scalar),
    }
}

fn apply(value: Option<&Value>, op: &str, operand: &Value) -> bool {
    let value = value.unwrap_or(&Value::Null);
    let ordered = || Some((value.as_f64()?, operand.as_f64()?));
    match op {
        "$eq" => json_eq(value, operand),
        "$ne" => !json_eq(value, operand),
        "$gt" => ordered().is_some_and(|(a, b)| a > b),
        "$gte" => ordered().is_some_and(|(a, b)| a >= b),
        "$lt" => ordered().is_some_and(|(a, b)| a < b),
        "$lte" => ordered().is_some_and(|(a, b)| a <= b),
        // Checked by `Filter::parse`.
        _ => false,
    }
}

/// JSON equality as Python compares decoded JSON: numbers by value (`1 == 1.0`).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter(f: Value) -> Result<Filter> {
        match f {
            Value::Object(map) => Filter::parse(map),
            _ => unreachable!(),
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn conditions_match_as_in_memory_store_does() {
        let item = obj(
            json!({"lang": "en", "age": 30, "prefs": {"theme": "dark", "n": 1},
                               "tags": ["a", "b"], "score": 2.5}),
        );
        for (f, want) in [
            (json!({"lang": "en"}), true),
            (json!({"lang": "fr"}), false),
            (json!({"age": 30.0}), true),
            (json!({"prefs": {"theme": "dark"}}), true),
            (json!({"prefs": {"theme": "light"}}), false),
            (json!({"tags": ["a", "b"]}), true),
            (json!({"tags": ["a"]}), false),
            (json!({"missing": null}), true),
            (json!({"missing": 1}), false),
            (json!({"age": {"$gt": 20, "$lte": 30}}), true),
            (json!({"age": {"$lt": 30}}), false),
            (json!({"score": {"$gte": 2.5}}), true),
            (json!({"lang": {"$ne": "fr"}}), true),
            (json!({"missing": {"$ne": "fr"}}), true),
            (json!({"missing": {"$gt": 1}}), false),
            (json!({"lang": {"$gt": 1}}), false),
            (json!({"prefs": {"n": {"$eq": 1}}}), true),
        ] {
            let parsed = filter(f.clone()).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert_eq!(parsed.matches(&item), want, "{f}");
        }
    }

    #[test]
    fn unknown_operators_and_non_numeric_comparisons_are_refused() {
        for f in [
            json!({"a": {"$in": [1]}}),
            json!({"a": {"$gt": "5"}}),
            json!({"a": {"b": {"$regex": "x"}}}),
        ] {
            let err = filter(f.clone()).err().unwrap_or_else(|| panic!("{f}"));
            assert!(matches!(err, Error::InvalidInput { .. }), "{f}: {err:?}");
        }
    }
}
