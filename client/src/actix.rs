//! actix-web extractors (feature `actix`): a handler that takes a
//! [`LatchkeyUser`] or [`LatchkeyAdmin`] runs only for a live token.
//!
//! The extractors find the [`Client`] in the app data (`web::Data<Client>`)
//! and answer for the handler otherwise, as JSON
//! `{"error": "<code>", "message": "<text>"}`:
//!
//! | status | `error` | when |
//! |---|---|---|
//! | 401 | `missing_token` | no `Authorization` header, or an empty one (with a `WWW-Authenticate: Bearer realm="…"` challenge) |
//! | 401 | `invalid_token` | a token latchkey does not accept: unknown, malformed, expired, logged out, revoked; or another scheme than Bearer |
//! | 403 | `forbidden` | [`LatchkeyAdmin`] only: a live token of a user without the admin flag |
//! | 503 | `service_unavailable` | latchkey could not answer (down, slow, overloaded, or it refused the service key), with `Retry-After: 1`; the cause is logged |
//! | 500 | `internal_error` | no `Client` in the app data (a wiring mistake) |
//!
//! A request is never let through because latchkey could not be asked.
//!
//! ```no_run
//! use actix_web::{App, HttpResponse, web};
//! use latchkey_client::{Client, LatchkeyAdmin, LatchkeyUser};
//!
//! async fn whoami(LatchkeyUser(user): LatchkeyUser) -> HttpResponse {
//!     HttpResponse::Ok().body(user.email)
//! }
//!
//! async fn purge(LatchkeyAdmin(admin): LatchkeyAdmin) -> HttpResponse {
//!     HttpResponse::NoContent().finish()
//! }
//!
//! # fn app() -> Result<(), latchkey_client::Error> {
//! let client = web::Data::new(Client::new("http://127.0.0.1:8080", "the-service-key")?);
//! let app = App::new()
//!     .app_data(client)
//!     .route("/whoami", web::get().to(whoami))
//!     .route("/purge", web::post().to(purge));
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use serde::Serialize;

use crate::{Client, Error, Identity};

/// The user behind the request's live bearer token.
#[derive(Debug, Clone)]
pub struct LatchkeyUser(pub Identity);

/// Like [`LatchkeyUser`], for users with latchkey's admin flag only; any
/// other user gets 403 `forbidden`.
#[derive(Debug, Clone)]
pub struct LatchkeyAdmin(pub Identity);

type Extracted<T> = Pin<Box<dyn Future<Output = Result<T, Rejection>>>>;

impl FromRequest for LatchkeyUser {
    type Error = Rejection;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let presented = client_and_token(req);
        Box::pin(async move {
            let (client, token) = presented?;
            identify(&client, &token).await.map(Self)
        })
    }
}

impl FromRequest for LatchkeyAdmin {
    type Error = Rejection;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let presented = client_and_token(req);
        Box::pin(async move {
            let (client, token) = presented?;
            let identity = identify(&client, &token).await?;
            if identity.admin {
                Ok(Self(identity))
            } else {
                Err(Rejection::Forbidden)
            }
        })
    }
}

/// Why an extractor answered for the handler. Its `Display` is the
/// `message` of the JSON body, and says nothing about latchkey's failure;
/// that is in [`std::error::Error::source`] and in the log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// No token was presented (401 `missing_token`).
    #[error("this request needs a bearer token")]
    MissingToken {
        /// The realm of the `WWW-Authenticate` challenge.
        realm: String,
    },
    /// The token is not a live session, or is not a bearer token
    /// (401 `invalid_token`).
    #[error("the token is invalid, expired or revoked")]
    InvalidToken {
        /// The realm of the `WWW-Authenticate` challenge.
        realm: String,
    },
    /// A live token of a user without the admin flag (403 `forbidden`).
    #[error("this needs an administrator")]
    Forbidden,
    /// latchkey could not answer (503 `service_unavailable`).
    #[error("the authentication service is unavailable; try again shortly")]
    Unavailable(#[source] Error),
    /// No [`Client`] in the app data (500 `internal_error`).
    #[error("the server cannot check tokens")]
    MissingClient,
}

impl Rejection {
    /// The `error` code of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingToken { .. } => "missing_token",
            Self::InvalidToken { .. } => "invalid_token",
            Self::Forbidden => "forbidden",
            Self::Unavailable(_) => "service_unavailable",
            Self::MissingClient => "internal_error",
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
}

impl ResponseError for Rejection {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::MissingToken { .. } | Self::InvalidToken { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::MissingClient => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        // Whether a token is live changes with every logout: never cache.
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        match self {
            // RFC 6750 §3: no error code when no credentials were sent.
            Self::MissingToken { realm } => {
                response.insert_header(challenge(format!("Bearer realm=\"{realm}\"")));
            }
            Self::InvalidToken { realm } => {
                response.insert_header(challenge(format!(
                    "Bearer realm=\"{realm}\", error=\"invalid_token\""
                )));
            }
            Self::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            Self::Forbidden | Self::MissingClient => {}
        }
        response.json(ErrorBody {
            error: self.code(),
            message: self.to_string(),
        })
    }
}

fn challenge(value: String) -> (header::HeaderName, HeaderValue) {
    // The realm was checked to be printable ASCII when the client was built.
    let value = HeaderValue::try_from(value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
    (header::WWW_AUTHENTICATE, value)
}

/// The client from the app data and the presented token, or the rejection.
fn client_and_token(req: &HttpRequest) -> Result<(Client, String), Rejection> {
    let client = req
        .app_data::<web::Data<Client>>()
        .map(|data| data.get_ref().clone())
        .or_else(|| req.app_data::<Client>().cloned())
        .ok_or_else(|| {
            tracing::error!(
                "a latchkey extractor found no latchkey_client::Client in the app data; \
                 add one with App::app_data(web::Data::new(client))"
            );
            Rejection::MissingClient
        })?;
    let realm = || client.realm().to_owned();
    let token = match presented_token(req.headers().get(header::AUTHORIZATION)) {
        Presented::Token(token) => token.to_owned(),
        Presented::Nothing => return Err(Rejection::MissingToken { realm: realm() }),
        Presented::Unusable => return Err(Rejection::InvalidToken { realm: realm() }),
    };
    Ok((client, token))
}

async fn identify(client: &Client, token: &str) -> Result<Identity, Rejection> {
    match client.introspect(token).await {
        Ok(Some(identity)) => Ok(identity),
        Ok(None) => Err(Rejection::InvalidToken {
            realm: client.realm().to_owned(),
        }),
        Err(error) => {
            // Down or slow is an incident; a refused key or a foreign
            // answer is a misconfiguration that no retry will cure.
            let cause = ErrorChain(&error);
            if error.is_unavailable() {
                tracing::warn!(error = %cause, "latchkey could not check a token; answering 503");
            } else {
                tracing::error!(error = %cause, "latchkey could not check a token; answering 503");
            }
            Err(Rejection::Unavailable(error))
        }
    }
}

/// What the `Authorization` header holds.
#[derive(Debug, PartialEq, Eq)]
enum Presented<'a> {
    Token(&'a str),
    /// No header, or no token in it.
    Nothing,
    /// Something that cannot be a bearer token: another scheme, bytes that
    /// are not text, spaces inside.
    Unusable,
}

/// `Bearer <token>` (the scheme in any case, RFC 7235), or a bare latchkey
/// token (`lk_…`) with no scheme at all.
fn presented_token(header: Option<&HeaderValue>) -> Presented<'_> {
    let Some(header) = header else {
        return Presented::Nothing;
    };
    let Ok(value) = header.to_str() else {
        return Presented::Unusable;
    };
    let value = value.trim();
    let is_space = |c: char| c == ' ' || c == '\t';
    match value.split_once(is_space) {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            let token = token.trim();
            if token.is_empty() {
                Presented::Nothing
            } else if token.contains(is_space) {
                Presented::Unusable
            } else {
                Presented::Token(token)
            }
        }
        Some(_) => Presented::Unusable,
        None if value.is_empty() || value.eq_ignore_ascii_case("bearer") => Presented::Nothing,
        None if value.starts_with("lk_") => Presented::Token(value),
        None => Presented::Unusable,
    }
}

/// An error and its causes on one line, for the log.
struct ErrorChain<'a>(&'a Error);

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = std::error::Error::source(self.0);
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody as _;

    use super::*;

    fn presented(value: &str) -> Presented<'_> {
        // Leaked so that the borrowed token can outlive this helper.
        let header: &'static HeaderValue =
            Box::leak(Box::new(HeaderValue::from_str(value).unwrap()));
        presented_token(Some(header))
    }

    #[test]
    fn a_bearer_token_is_read_whatever_the_case_of_the_scheme() {
        for value in [
            "Bearer lk_abc",
            "bearer lk_abc",
            "BEARER  lk_abc ",
            "Bearer\tlk_abc",
        ] {
            assert_eq!(presented(value), Presented::Token("lk_abc"), "{value:?}");
        }
    }

    #[test]
    fn a_bare_latchkey_token_is_read_without_a_scheme() {
        assert_eq!(presented("lk_abc"), Presented::Token("lk_abc"));
        assert_eq!(presented(" lk_abc "), Presented::Token("lk_abc"));
    }

    #[test]
    fn no_header_or_no_token_in_it_is_nothing_presented() {
        assert_eq!(presented_token(None), Presented::Nothing);
        for value in ["", " ", "Bearer", "bearer ", "Bearer   "] {
            assert_eq!(presented(value), Presented::Nothing, "{value:?}");
        }
    }

    #[test]
    fn other_schemes_and_bare_words_are_unusable() {
        for value in [
            "Basic dXNlcjpwYXNz",
            "Token lk_abc",
            "abc",
            "Bearer lk_a lk_b",
        ] {
            assert_eq!(presented(value), Presented::Unusable, "{value:?}");
        }
        let not_text = HeaderValue::from_bytes(b"Bearer lk_\xff").unwrap();
        assert_eq!(presented_token(Some(&not_text)), Presented::Unusable);
    }

    fn answer_to(rejection: &Rejection) -> (u16, serde_json::Value, header::HeaderMap) {
        let response = rejection.error_response();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().try_into_bytes().unwrap();
        (status, serde_json::from_slice(&bytes).unwrap(), headers)
    }

    #[test]
    fn a_rejection_is_answered_as_json_with_its_code_and_headers() {
        let realm = || "books".to_owned();
        let unavailable =
            Rejection::Unavailable(Error::unavailable(crate::Unavailable::Status(502)));
        let cases = [
            (
                Rejection::MissingToken { realm: realm() },
                401,
                "missing_token",
                Some("Bearer realm=\"books\""),
            ),
            (
                Rejection::InvalidToken { realm: realm() },
                401,
                "invalid_token",
                Some("Bearer realm=\"books\", error=\"invalid_token\""),
            ),
            (Rejection::Forbidden, 403, "forbidden", None),
            (unavailable, 503, "service_unavailable", None),
            (Rejection::MissingClient, 500, "internal_error", None),
        ];
        for (rejection, status, code, challenge) in cases {
            let (actual, body, headers) = answer_to(&rejection);

            assert_eq!(actual, status, "{code}");
            assert_eq!(body["error"], code);
            assert!(
                body["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{body}"
            );
            assert!(
                !body.to_string().contains("502"),
                "the cause leaked: {body}"
            );
            assert_eq!(
                headers
                    .get(header::WWW_AUTHENTICATE)
                    .map(|v| v.to_str().unwrap()),
                challenge,
                "{code}"
            );
            assert_eq!(
                headers.get(header::RETRY_AFTER).is_some(),
                status == 503,
                "{code}"
            );
            assert_eq!(
                headers.get(header::CONTENT_TYPE).unwrap(),
                "application/json"
            );
        }
    }
}
