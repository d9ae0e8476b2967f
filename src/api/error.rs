//! The API's error: what a failed request is answered with. It wraps the core's error
//! ([`Error`]: storage, engine, a request's content), adds what only the HTTP layer
//! fails on (credentials, CORS, methods), and owns the HTTP status, the stable `code`
//! clients switch on, and the `detail` text they read.

use std::fmt;

use crate::error::Error;

/// A request's failure, as the API answers it: `{"detail": ..., "code": ...}` with
/// [`ApiError::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiError {
    /// A failure of the core: a request's content, storage, the model.
    Core(Error),
    /// The method is not allowed on this path.
    MethodNotAllowed {
        /// The method that was used.
        method: String,
    },
    /// The request carries no valid credentials (API key). Says nothing about threads.
    Unauthorized,
    /// The request's bearer token is not valid (expired, forged, ...). Says nothing
    /// about threads.
    InvalidToken {
        /// What is wrong with the token.
        reason: String,
    },
    /// The deployment has no authentication configured, so it refuses thread data
    /// (closed by default). Answered 503 until an operator configures it.
    AuthNotConfigured {
        /// What to configure.
        reason: String,
    },
    /// The request is refused whoever sends it (a CORS preflight from an origin not
    /// on the list).
    Forbidden {
        /// Why.
        reason: String,
    },
}

impl ApiError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Core(err) => core_status(err),
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::Unauthorized | ApiError::InvalidToken { .. } => 401,
            ApiError::AuthNotConfigured { .. } => 503,
            ApiError::Forbidden { .. } => 403,
        }
    }

    /// A stable, machine-readable name of the error for clients to switch on (never
    /// the `detail` text, which may change).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Core(err) => core_code(err),
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Unauthorized => "unauthorized",
            ApiError::InvalidToken { .. } => "invalid_token",
            ApiError::AuthNotConfigured { .. } => "auth_not_configured",
            ApiError::Forbidden { .. } => "forbidden",
        }
    }

    /// The `detail` text a client sees. Backend reasons are not exposed.
    pub fn client_detail(&self) -> String {
        match self {
            ApiError::Core(Error::Backend { .. }) => "Internal server error".to_string(),
            other => other.to_string(),
        }
    }
}

/// The status of a core error: the kind of failure decides it.
fn core_status(err: &Error) -> u16 {
    match err {
        Error::BadRequest { .. } => 400,
        Error::MemoryMismatch { .. } | Error::Conflict { .. } => 409,
        Error::NotFound { .. } => 404,
        Error::TooLarge { .. } => 413,
        Error::InvalidInput { .. } | Error::Unsupported { .. } => 422,
        Error::Upstream { .. } => 502,
        Error::UpstreamBusy { .. } | Error::Unavailable { .. } => 503,
        Error::UpstreamTimeout { .. } | Error::UpstreamDeadline { .. } => 504,
        Error::Backend { .. } => 500,
    }
}

/// The stable code of a core error.
fn core_code(err: &Error) -> &'static str {
    match err {
        Error::BadRequest { .. } => "bad_request",
        Error::InvalidInput { .. } => "invalid_input",
        Error::NotFound { what, .. } => match *what {
            "thread" => "thread_not_found",
            "checkpoint" => "checkpoint_not_found",
            "assistant" => "assistant_not_found",
            "assistant version" => "assistant_version_not_found",
            "graph" => "graph_not_found",
            "route" => "route_not_found",
            _ => "not_found",
        },
        Error::Conflict { kind, .. } => kind.code(),
        Error::TooLarge { .. } => "too_large",
        Error::Unsupported { .. } => "unsupported",
        Error::MemoryMismatch { .. } => "memory_mismatch",
        Error::Upstream { .. } => "model_failed",
        Error::UpstreamBusy { .. } => "model_busy",
        Error::Unavailable { .. } => "unavailable",
        Error::UpstreamTimeout { .. } => "model_timeout",
        Error::UpstreamDeadline { .. } => "model_deadline",
        Error::Backend { .. } => "internal_error",
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Core(err) => err.fmt(f),
            ApiError::MethodNotAllowed { method } => {
                write!(f, "Method {method} is not allowed on this path")
            }
            ApiError::Unauthorized => write!(
                f,
                "Missing or invalid credentials (send x-api-key, or Authorization: Bearer <JWT>)"
            ),
            ApiError::InvalidToken { reason } => write!(f, "Invalid bearer token: {reason}"),
            ApiError::AuthNotConfigured { reason } => {
                write!(f, "This deployment refuses thread data: {reason}")
            }
            ApiError::Forbidden { reason } => write!(f, "Forbidden: {reason}"),
        }
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ApiError::Core(err) => Some(err),
            _ => None,
        }
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        ApiError::Core(err)
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(err: serde_json::Error) -> Self {
        ApiError::Core(err.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_codes_and_details() {
        let nf = ApiError::from(Error::thread_not_found("abc"));
        assert_eq!((nf.status(), nf.code()), (404, "thread_not_found"));
        assert!(nf
            .client_detail()
            .starts_with("Thread 'abc' not found. This usually means"));
        let be = ApiError::from(Error::backend("disk on fire"));
        assert_eq!((be.status(), be.code()), (500, "internal_error"));
        assert_eq!(be.client_detail(), "Internal server error");
        assert!(be.to_string().contains("disk on fire"), "logged in full");
        let inv = ApiError::from(Error::invalid("input.messages", "expected a list"));
        assert_eq!(inv.status(), 422);
        assert!(inv.client_detail().contains("input.messages"));
        assert_eq!(ApiError::Unauthorized.status(), 401);
        let closed = ApiError::AuthNotConfigured {
            reason: "set API_KEYS".into(),
        };
        assert_eq!(
            (closed.status(), closed.code()),
            (503, "auth_not_configured")
        );
    }
}
