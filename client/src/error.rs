//! What can go wrong when asking latchkey about a token.
//!
//! A token that is not live is not an error: [`crate::Client::introspect`]
//! answers `Ok(None)` for it. An `Err` always means "latchkey's word could
//! not be had", and a caller must then refuse the request (the actix
//! extractors answer 503), never let it through.

use std::fmt;

/// The error of every fallible call of this crate.
///
/// No variant holds the service key or a token, so an error can be logged
/// as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client was given settings it cannot work with (a base URL that is
    /// not http(s), an empty service key, a zero timeout, …). Raised by
    /// [`crate::ClientBuilder::build`] only.
    #[error("invalid latchkey client configuration: {0}")]
    Config(String),

    /// latchkey could not be asked: no connection, no answer in time, or it
    /// answered 429 or 5xx. Usually temporary.
    #[error("latchkey is unavailable: {reason}")]
    Unavailable {
        /// What happened.
        reason: Unavailable,
        /// The transport's error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// latchkey refused the service key (401 `invalid_service_key`): the
    /// key is wrong, or not (or no longer) in `LATCHKEY_INTROSPECT_KEYS`.
    /// A configuration problem, not a temporary one.
    #[error("latchkey refused the service key (401 invalid_service_key)")]
    Unauthorized,

    /// latchkey answered with a status introspection never gives (e.g. 404:
    /// the base URL does not point at latchkey, or latchkey is too old to
    /// have `POST /auth/introspect`).
    #[error("latchkey answered HTTP {status} to introspection; is the base URL latchkey's?")]
    UnexpectedStatus {
        /// The HTTP status.
        status: u16,
    },

    /// latchkey answered 200 with a body that is not an RFC 7662 answer
    /// this client understands.
    #[error("latchkey's introspection answer is malformed: {0}")]
    Malformed(String),
}

impl Error {
    /// Whether the failure is likely temporary (latchkey down, slow or
    /// overloaded), as opposed to a configuration or protocol problem.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    pub(crate) fn unavailable(reason: Unavailable) -> Self {
        Self::Unavailable {
            reason,
            source: None,
        }
    }

    /// A transport failure: a timeout, or no connection / a broken one.
    pub(crate) fn transport(error: reqwest::Error) -> Self {
        let reason = if error.is_timeout() {
            Unavailable::Timeout
        } else {
            Unavailable::Unreachable
        };
        Self::Unavailable {
            reason,
            source: Some(Box::new(error)),
        }
    }
}

/// Why latchkey was unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unavailable {
    /// No connection could be made, or it broke before the answer was read.
    Unreachable,
    /// No complete answer within the client's timeout.
    Timeout,
    /// latchkey answered this status: 429, or 5xx (e.g. 503 when it is
    /// overloaded or its database is down).
    Status(u16),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable => f.write_str("it cannot be reached"),
            Self::Timeout => f.write_str("it did not answer in time"),
            Self::Status(status) => write!(f, "it answered HTTP {status}"),
        }
    }
}
