//! The one place where failures become HTTP responses.
//!
//! Policy: handlers return `Result<_, ApiError>`. Client errors carry a
//! stable snake_case code and a human message. Server-side failures
//! (`Internal`, `Unavailable`) keep their cause for the log only; the client
//! sees a generic message. Causes never contain secrets: tokens, digests,
//! passwords and hashes are types whose `Debug` is redacted.

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::error::JsonPayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// What the JSON endpoints accept, for 415 messages.
pub const JSON_BODY: &str = "JSON (Content-Type: application/json)";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("a request header is larger than {0} bytes")]
    HeaderTooLarge(usize),
    #[error("the request body must be {0}")]
    UnsupportedMediaType(&'static str),
    #[error("{message}")]
    Validation { code: &'static str, message: String },
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("the email or password is wrong")]
    InvalidCredentials,
    #[error("the current password is wrong")]
    WrongCurrentPassword,
    #[error("{0}")]
    Unauthorized(TokenProblem),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(&'static str),
    #[error("this would leave no admin; promote another user first")]
    LastAdmin,
    #[error("the code is invalid, expired or already used")]
    InvalidCode,
    #[error("the email address is not verified yet; follow the link in the verification mail")]
    EmailUnverified,
    #[error("the email address is already verified")]
    AlreadyVerified,
    #[error("no mail or webhook delivery is configured")]
    DeliveryUnavailable,
    #[error("a valid introspection service key is required")]
    InvalidServiceKey,
    #[error("this method is not allowed here")]
    MethodNotAllowed,
    #[error("the password was changed by another request; try again")]
    Conflict,
    #[error("too many password checks are in progress; retry shortly")]
    Overloaded,
    #[error("too many attempts; retry after {} seconds", retry_after.as_secs())]
    TooManyRequests { retry_after: std::time::Duration },
    #[error("the service is temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// Why a request carried no usable session token (RFC 6750 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenProblem {
    #[error("an Authorization: Bearer token is required")]
    Missing,
    #[error("the Authorization header is not a valid Bearer token")]
    Malformed,
    #[error("the token is unknown, expired or revoked")]
    Invalid,
}

/// Every error response: a stable code and a human message.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// snake_case, stable: match on this.
    error: &'a str,
    message: String,
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::HeaderTooLarge(_) => "request_header_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Validation { code, .. } => code,
            Self::EmailTaken => "email_taken",
            Self::InvalidCredentials | Self::WrongCurrentPassword => "invalid_credentials",
            Self::Unauthorized(TokenProblem::Missing) => "missing_token",
            Self::Unauthorized(_) => "invalid_token",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::LastAdmin => "last_admin",
            Self::InvalidCode => "invalid_code",
            Self::EmailUnverified => "email_unverified",
            Self::AlreadyVerified => "email_already_verified",
            Self::DeliveryUnavailable => "delivery_unavailable",
            Self::InvalidServiceKey => "invalid_service_key",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::Overloaded | Self::Unavailable(_) => "service_unavailable",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::Internal(_) => "internal_error",
        }
    }

    pub fn internal(context: &'static str, error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into().context(context))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::InvalidCode => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeaderTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::EmailTaken | Self::Conflict | Self::LastAdmin | Self::AlreadyVerified => {
                StatusCode::CONFLICT
            }
            Self::InvalidCredentials | Self::Unauthorized(_) | Self::InvalidServiceKey => {
                StatusCode::UNAUTHORIZED
            }
            Self::WrongCurrentPassword | Self::Forbidden(_) | Self::EmailUnverified => {
                StatusCode::FORBIDDEN
            }
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Overloaded | Self::Unavailable(_) | Self::DeliveryUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Internal(cause) => {
                tracing::error!(error = %format!("{cause:#}"), "request failed")
            }
            Self::Unavailable(cause) => {
                tracing::warn!(error = %format!("{cause:#}"), "dependency unavailable")
            }
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::Unauthorized(problem) => {
                response.insert_header((header::WWW_AUTHENTICATE, www_authenticate(*problem)));
            }
            Self::InvalidServiceKey => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Bearer realm=\"latchkey-introspection\", error=\"invalid_token\"",
                    ),
                ));
            }
            Self::Overloaded => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
                // Shed the load: a client that ignores Retry-After has to
                // reconnect before its next login, which slows a flood down
                // far more than it slows latchkey.
                response.force_close();
            }
            Self::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            Self::TooManyRequests { retry_after } => {
                // Whole seconds, rounded up: never invite a retry that is too early.
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                response.insert_header((header::RETRY_AFTER, seconds.to_string()));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: self.code(),
            message: self.to_string(),
        })
    }
}

/// Gives the responses actix-web produces by itself (unknown route, wrong
/// method, a failed extractor) the same JSON shape as ours. Responses that
/// are already JSON pass through untouched.
pub fn json_for_framework_errors<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "there is no such route".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method_not_allowed", ApiError::MethodNotAllowed.to_string())
        }
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "the request body is too large".to_owned(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            ApiError::UnsupportedMediaType(JSON_BODY).to_string(),
        ),
        StatusCode::REQUEST_TIMEOUT => (
            "request_timeout",
            "the request took too long to arrive".to_owned(),
        ),
        s if s.is_server_error() => ("internal_error", "internal error".to_owned()),
        s => (
            "bad_request",
            s.canonical_reason().unwrap_or("bad request").to_lowercase(),
        ),
    };
    let (req, old) = res.into_parts();
    let mut new = HttpResponse::build(status);
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.append_header((name.clone(), value.clone()));
        }
    }
    let new = new.json(ErrorBody {
        error: code,
        message,
    });
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, new).map_into_right_body(),
    ))
}

/// Maps the JSON extractor's failures to our errors.
pub fn json_payload_error(error: JsonPayloadError, limit: usize) -> ApiError {
    match error {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::PayloadTooLarge(limit)
        }
        JsonPayloadError::Payload(actix_web::error::PayloadError::Overflow) => {
            ApiError::PayloadTooLarge(limit)
        }
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType(JSON_BODY),
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            ApiError::BadRequest(format!("invalid request body: {e}"))
        }
        JsonPayloadError::Deserialize(e) => ApiError::BadRequest(format!("malformed JSON: {e}")),
        other => ApiError::BadRequest(format!("unreadable request body: {other}")),
    }
}

/// RFC 6750 §3: no error code when no credentials were sent at all.
fn www_authenticate(problem: TokenProblem) -> HeaderValue {
    HeaderValue::from_static(match problem {
        TokenProblem::Missing => "Bearer realm=\"latchkey\"",
        TokenProblem::Malformed => {
            "Bearer realm=\"latchkey\", error=\"invalid_request\", error_description=\"malformed Authorization header\""
        }
        TokenProblem::Invalid => {
            "Bearer realm=\"latchkey\", error=\"invalid_token\", error_description=\"the token is unknown, expired or revoked\""
        }
    })
}

impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> Self {
        if crate::db::is_unavailable(&error) {
            return Self::Unavailable(
                anyhow::Error::new(error).context("the database is unreachable"),
            );
        }
        Self::internal("database query failed", error)
    }
}

/// A transaction that answered with an API error is run again (see
/// [`crate::db::retry_on_deadlock`]) only when the database error it came
/// from says it lost a race.
impl crate::db::LostRace for ApiError {
    fn lost_race(&self) -> bool {
        match self {
            Self::Internal(cause) => cause
                .downcast_ref::<diesel::result::Error>()
                .is_some_and(crate::db::LostRace::lost_race),
            _ => false,
        }
    }
}

impl From<diesel::r2d2::PoolError> for ApiError {
    fn from(error: diesel::r2d2::PoolError) -> Self {
        Self::Unavailable(anyhow::Error::new(error).context("no database connection available"))
    }
}

#[cfg(test)]
mod tests {
    use diesel::result::{DatabaseErrorKind, Error};

    use super::*;
    use crate::db::{LostRace as _, retry_on_deadlock};

    fn database_error(kind: DatabaseErrorKind, message: &str) -> Error {
        Error::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn an_api_error_knows_when_its_transaction_lost_a_race() {
        // Galera's certification conflict, as MariaDB reports it from COMMIT.
        let conflict = database_error(
            DatabaseErrorKind::Unknown,
            "Deadlock found when trying to get lock; try restarting transaction",
        );
        assert!(ApiError::from(conflict).lost_race());
        let deadlock = database_error(DatabaseErrorKind::SerializationFailure, "deadlock");
        assert!(ApiError::from(deadlock).lost_race());
        let taken = database_error(DatabaseErrorKind::UniqueViolation, "Duplicate entry");
        assert!(!ApiError::from(taken).lost_race());
        assert!(!ApiError::Conflict.lost_race());
    }

    #[test]
    fn a_transaction_answering_api_errors_is_retried_only_for_a_lost_race() {
        let mut attempts = 0;
        let answer = retry_on_deadlock(|| {
            attempts += 1;
            if attempts < 3 {
                return Err(ApiError::from(database_error(
                    DatabaseErrorKind::Unknown,
                    "Deadlock found when trying to get lock; try restarting transaction",
                )));
            }
            Ok(attempts)
        });
        assert_eq!(answer.ok(), Some(3));

        let mut attempts = 0;
        let answer: Result<(), ApiError> = retry_on_deadlock(|| {
            attempts += 1;
            Err(ApiError::WrongCurrentPassword)
        });
        assert!(matches!(answer, Err(ApiError::WrongCurrentPassword)));
        assert_eq!(attempts, 1, "an answer is not a lost race");
    }
}
