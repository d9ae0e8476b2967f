//! Threads: the id that names a conversation, and the record kept for it.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::limits::THREAD_ID_MAX_LEN;
use crate::runtime::{uuid_v4, Entropy};

/// A validated thread id: 1 to [`THREAD_ID_MAX_LEN`] characters of `[A-Za-z0-9._:-]`.
///
/// The id names the thread's Durable Object and appears in URLs, so it is checked once
/// here and never coerced: `123` (a JSON number) is rejected, not turned into `"123"`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ThreadId(String);

impl ThreadId {
    /// Validates `raw` as a thread id.
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.is_empty() {
            return Err(Error::invalid("thread_id", "must not be empty"));
        }
        if raw.len() > THREAD_ID_MAX_LEN {
            return Err(Error::invalid(
                "thread_id",
                format!(
                    "is {} characters long; the limit is {THREAD_ID_MAX_LEN}",
                    raw.len()
                ),
            ));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(Error::invalid(
                "thread_id",
                format!("contains {bad:?}; allowed are letters, digits and . _ : -"),
            ));
        }
        if raw == "." || raw == ".." {
            return Err(Error::invalid("thread_id", "must not be `.` or `..`"));
        }
        Ok(ThreadId(raw.to_string()))
    }

    /// A fresh, unguessable id: a random UUID (122 random bits).
    pub fn generate(entropy: &dyn Entropy) -> Self {
        ThreadId(uuid_v4(entropy))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ThreadId {
    type Error = Error;
    fn try_from(raw: String) -> Result<Self> {
        ThreadId::parse(&raw)
    }
}

impl From<ThreadId> for String {
    fn from(id: ThreadId) -> String {
        id.0
    }
}

/// Whether a thread is running something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThreadStatus {
    /// No run in progress.
    Idle,
    /// A run is in progress.
    Busy,
    /// The last run failed.
    Error,
    /// Waiting on a human (LangGraph interrupts); never set by this server's graph.
    Interrupted,
}

impl ThreadStatus {
    /// The wire name (`idle`, `busy`, `error`).
    pub fn as_str(self) -> &'static str {
        match self {
            ThreadStatus::Idle => "idle",
            ThreadStatus::Busy => "busy",
            ThreadStatus::Error => "error",
            ThreadStatus::Interrupted => "interrupted",
        }
    }

    /// Parses a wire name.
    pub fn parse(raw: &str) -> Result<Self> {
        match raw {
            "idle" => Ok(ThreadStatus::Idle),
            "busy" => Ok(ThreadStatus::Busy),
            "error" => Ok(ThreadStatus::Error),
            "interrupted" => Ok(ThreadStatus::Interrupted),
            other => Err(Error::backend(format_args!(
                "unknown stored thread status {other:?}"
            ))),
        }
    }
}

/// What is kept about a thread besides its checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadRecord {
    /// The thread's id.
    pub thread_id: ThreadId,
    /// Creation time, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// Last change to the record or its checkpoints, ms since the Unix epoch.
    pub updated_at_ms: i64,
    /// Free-form metadata set by clients (e.g. `graph_id`, a user id).
    pub metadata: Map<String, Value>,
    /// Run status.
    pub status: ThreadStatus,
}

impl ThreadRecord {
    /// A new, idle thread created at `now_ms`.
    pub fn new(thread_id: ThreadId, metadata: Map<String, Value>, now_ms: i64) -> Self {
        ThreadRecord {
            thread_id,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            metadata,
            status: ThreadStatus::Idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::SystemEntropy;

    #[test]
    fn accepts_usual_ids() {
        for ok in [
            "user-123",
            "a",
            "01a20ae2-3e86-7155-81aa-be072d81169d",
            "org:team.x_1",
        ] {
            assert_eq!(ThreadId::parse(ok).unwrap().as_str(), ok);
        }
        assert!(ThreadId::parse(&"x".repeat(THREAD_ID_MAX_LEN)).is_ok());
    }

    #[test]
    fn rejects_bad_ids_naming_the_problem() {
        for bad in ["", "a/b", "..", ".", "a b", "é", "a%2Fb"] {
            let err = ThreadId::parse(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidInput { .. }), "{bad:?}");
            assert!(err.to_string().contains("thread_id"), "{err}");
        }
        let long = ThreadId::parse(&"x".repeat(THREAD_ID_MAX_LEN + 1)).unwrap_err();
        assert!(long.to_string().contains("limit is 128"), "{long}");
    }

    #[test]
    fn json_numbers_are_not_coerced() {
        assert!(serde_json::from_value::<ThreadId>(serde_json::json!(123)).is_err());
        assert!(serde_json::from_value::<ThreadId>(serde_json::json!("123")).is_ok());
    }

    #[test]
    fn generated_ids_are_uuids_and_valid() {
        let id = ThreadId::generate(&SystemEntropy);
        assert_eq!(id.as_str().len(), 36);
        assert!(ThreadId::parse(id.as_str()).is_ok());
    }
}
