//! The extractor that turns `Authorization: Bearer <token>` into a live,
//! freshly slid session. Handlers that take [`Authenticated`] are protected.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header::{AUTHORIZATION, HeaderValue};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use crate::domain::TokenDigest;
use crate::domain::token::{TOKEN_LENGTH, TOKEN_PREFIX};
use crate::error::{ApiError, TokenProblem};
use crate::state::AppState;
use crate::store::sessions::Session;
use crate::store::token_check::{Check, Touch};
use crate::store::users::User;

/// The caller's user and current session.
#[derive(Debug)]
pub struct Authenticated {
    pub user: User,
    pub session: Session,
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let digest = bearer_digest(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let digest = digest?;
            let state = state.ok_or_else(|| {
                ApiError::internal("app state missing", anyhow::anyhow!("no AppState"))
            })?;
            let found = live_session(&state, digest, Touch::IfStale).await?;
            let (session, user) = found.ok_or(ApiError::Unauthorized(TokenProblem::Invalid))?;
            Ok(Self { user, session })
        })
    }
}

/// The live session a token digest belongs to, with its user, slid or not.
/// The one path from a presented token to a session, for the extractor and
/// for introspection alike.
pub async fn live_session(
    state: &AppState,
    digest: TokenDigest,
    touch: Touch,
) -> Result<Option<(Session, User)>, ApiError> {
    state.checks.run(Check { digest, touch }).await
}

/// Reads the token's digest from the request, refusing a missing header,
/// a non-Bearer scheme, or a token whose shape or checksum is wrong, all
/// without a database query.
fn bearer_digest(req: &HttpRequest) -> Result<TokenDigest, ApiError> {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .ok_or(ApiError::Unauthorized(TokenProblem::Missing))?;
    let token = session_token(header).ok_or(ApiError::Unauthorized(TokenProblem::Malformed))?;
    TokenDigest::of_presented(token).map_err(|_| ApiError::Unauthorized(TokenProblem::Invalid))
}

/// The token of an `Authorization: Bearer <token>` header, borrowed.
///
/// Written here rather than taken from actix-web-httpauth because its
/// `Bearer::parse` matches the scheme case-sensitively (RFC 7235 §2.1 says
/// `bearer` and `BEARER` are the same scheme) and allocates, on the path
/// every authenticated request takes.
pub fn bearer_token(header: &HeaderValue) -> Option<&str> {
    let (scheme, token) = header.to_str().ok()?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim_matches(' ');
    (!token.is_empty() && !token.contains(' ')).then_some(token)
}

/// The session token of an `Authorization` header: `Bearer <token>`, or
/// the token alone when the value has a latchkey token's shape (`lk_` and
/// its length), as front-ends written after the "put the token in the
/// Authorization header" tutorials send it. Never from anywhere else.
pub fn session_token(header: &HeaderValue) -> Option<&str> {
    if let Some(token) = bearer_token(header) {
        return Some(token);
    }
    let value = header.to_str().ok()?.trim_matches(' ');
    (value.len() == TOKEN_LENGTH && value.starts_with(TOKEN_PREFIX)).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_token_of_the_right_shape_is_taken() {
        let (token, _) = crate::domain::SessionToken::generate();
        let bare = HeaderValue::from_str(token.expose()).unwrap();
        assert_eq!(session_token(&bare), Some(token.expose()));
        let bearer = HeaderValue::from_str(&format!("Bearer {}", token.expose())).unwrap();
        assert_eq!(session_token(&bearer), Some(token.expose()));
        for other in ["lk_short", "Basic YTpi", "abc", ""] {
            assert_eq!(
                session_token(&HeaderValue::from_static(other)),
                None,
                "{other}"
            );
        }
    }

    fn parse(raw: &'static str) -> Option<String> {
        bearer_token(&HeaderValue::from_static(raw)).map(str::to_owned)
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        assert_eq!(parse("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(parse("bearer abc").as_deref(), Some("abc"));
        assert_eq!(parse("BEARER abc").as_deref(), Some("abc"));
    }

    #[test]
    fn other_schemes_and_empty_tokens_are_refused() {
        for raw in ["Basic YTpi", "Bearer", "Bearer ", "Bearerabc", "Bearer a b"] {
            assert_eq!(parse(raw), None, "{raw}");
        }
    }
}

/// An authenticated caller with the admin flag; anyone else gets 403.
#[derive(Debug)]
pub struct Admin(pub Authenticated);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let authenticated = Authenticated::from_request(req, payload);
        Box::pin(async move {
            let caller = authenticated.await?;
            if !caller.user.admin {
                return Err(ApiError::Forbidden("this requires an admin"));
            }
            Ok(Self(caller))
        })
    }
}
