//! `/auth/verify`: forward authentication for reverse proxies (nginx
//! `auth_request`, Traefik `forwardAuth`, Caddy `forward_auth`, Envoy
//! `ext_authz`). The token is checked exactly as `/auth/status` checks it
//! (same extractor: same sliding, batching and errors); the answer is an
//! empty 200 whose headers name the caller, for the proxy to pass upstream.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Authenticated;
use crate::error::ApiError;

pub const USER_ID_HEADER: &str = "x-latchkey-user-id";
pub const EMAIL_HEADER: &str = "x-latchkey-email";
pub const ADMIN_HEADER: &str = "x-latchkey-admin";
pub const SESSION_ID_HEADER: &str = "x-latchkey-session-id";

/// What the protected route asks of the caller, beyond a live session.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Policy {
    /// `true`: only admins pass (others get 403).
    admin: Option<bool>,
}

/// Checks the presented token for a proxy. Answers every method a proxy
/// may forward with (Envoy keeps the original one).
#[utoipa::path(method(get, head, post, put, patch, delete, options), path = "/auth/verify",
    tag = "forward-auth", security(("bearer" = [])), params(Policy),
    responses(
        (status = 200, description = "A live session. Empty body; X-Latchkey-User-Id, X-Latchkey-Email, X-Latchkey-Admin and X-Latchkey-Session-Id name the caller"),
        (status = 400, description = "Malformed query", body = crate::error::ErrorBody),
        (status = 401, description = "Missing, malformed, unknown, expired or revoked token (with WWW-Authenticate)", body = crate::error::ErrorBody),
        (status = 403, description = "The policy asks for an admin", body = crate::error::ErrorBody),
        (status = 503, description = "The database is unreachable; see Retry-After", body = crate::error::ErrorBody),
    ))]
pub async fn verify(
    auth: Authenticated,
    policy: web::Query<Policy>,
) -> Result<HttpResponse, ApiError> {
    if policy.admin == Some(true) && !auth.user.admin {
        return Err(ApiError::Forbidden("this requires an admin"));
    }
    let mut response = HttpResponse::Ok();
    for (name, value) in [
        (USER_ID_HEADER, auth.user.id.as_bytes()),
        // Emails may hold UTF-8: sent as raw bytes (obs-text), as proxies pass them.
        (EMAIL_HEADER, auth.user.email.as_bytes()),
        (
            ADMIN_HEADER,
            if auth.user.admin {
                b"true".as_slice()
            } else {
                b"false".as_slice()
            },
        ),
        (SESSION_ID_HEADER, auth.session.id.as_bytes()),
    ] {
        let value = HeaderValue::from_bytes(value)
            .map_err(|e| ApiError::internal("an identity header could not be written", e))?;
        response.insert_header((HeaderName::from_static(name), value));
    }
    Ok(response.finish())
}

/// The same check under a path: Envoy's `ext_authz` appends the protected
/// request's path to its `path_prefix` (`/auth/verify/books/42`).
#[utoipa::path(method(get, head, post, put, patch, delete, options), path = "/auth/verify/{path}",
    tag = "forward-auth", security(("bearer" = [])),
    params(("path" = String, Path, description = "The protected request's path, as Envoy appends it (ignored)"), Policy),
    responses(
        (status = 200, description = "A live session; the same answer as /auth/verify"),
        (status = 400, description = "Malformed query", body = crate::error::ErrorBody),
        (status = 401, description = "Missing, malformed, unknown, expired or revoked token (with WWW-Authenticate)", body = crate::error::ErrorBody),
        (status = 403, description = "The policy asks for an admin", body = crate::error::ErrorBody),
        (status = 503, description = "The database is unreachable; see Retry-After", body = crate::error::ErrorBody),
    ))]
pub async fn verify_under_path(
    auth: Authenticated,
    policy: web::Query<Policy>,
) -> Result<HttpResponse, ApiError> {
    verify(auth, policy).await
}
