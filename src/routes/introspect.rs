//! `POST /auth/introspect`: token introspection for backends (RFC 7662).
//!
//! Callers authenticate with a static service key from
//! `LATCHKEY_INTROSPECT_KEYS`. The answer for any token that is not a live
//! session is `{"active": false}`, with no reason: a caller learns nothing
//! about tokens it does not hold.

use actix_web::http::header;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::auth::{bearer_token, live_session};
use crate::domain::TokenDigest;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::token_check::Touch;

#[derive(Deserialize, ToSchema)]
pub struct IntrospectBody {
    token: String,
    /// Introspection counts as activity unless the caller asks otherwise.
    #[serde(default = "default_touch")]
    touch: bool,
}

fn default_touch() -> bool {
    true
}

/// An active token. An inactive one is just `{"active": false}`.
#[derive(Serialize, ToSchema)]
pub struct Active<'a> {
    active: bool,
    sub: &'a str,
    email: &'a str,
    admin: bool,
    /// When the session ends if not used again (Unix seconds).
    exp: i64,
    /// When the session was created (Unix seconds).
    iat: i64,
    session_id: &'a str,
    token_type: &'static str,
}

/// RFC 7662 token introspection, for backends holding a service key.
#[utoipa::path(post, path = "/auth/introspect", tag = "introspection", security(("service_key" = [])),
    request_body(content = IntrospectBody, content_type = "application/x-www-form-urlencoded",
        description = "Form or JSON"),
    responses(
        (status = 200, description = "The token's state; inactive tokens get {\"active\": false}", body = Active),
        (status = 401, description = "Missing or wrong service key", body = crate::error::ErrorBody),
    ))]
pub async fn introspect(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    // The key is checked before the body is even read: a caller without a
    // valid key learns nothing, not even whether its body would parse.
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(bearer_token)
        .ok_or(ApiError::InvalidServiceKey)?;
    if !state.settings.introspect_keys.accepts(presented) {
        return Err(ApiError::InvalidServiceKey);
    }
    let IntrospectBody { token, touch } = parse_body(&req, &body)?;
    let Ok(digest) = TokenDigest::of_presented(&token) else {
        return Ok(inactive());
    };
    let touch = if touch { Touch::IfStale } else { Touch::Never };
    let found = live_session(&state, digest, touch).await?;
    let policy = state.settings.session;
    let Some((session, user)) = found else {
        return Ok(inactive());
    };
    let expires_at = policy.expires_at(session.created_at, session.last_updated_at);
    Ok(HttpResponse::Ok().json(Active {
        active: true,
        sub: &user.id,
        email: &user.email,
        admin: user.admin,
        exp: expires_at.and_utc().timestamp(),
        iat: session.created_at.and_utc().timestamp(),
        session_id: &session.id,
        token_type: "Bearer",
    }))
}

/// RFC 7662 specifies a form; JSON is accepted too.
fn parse_body(req: &HttpRequest, body: &[u8]) -> Result<IntrospectBody, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
    } else if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        serde_urlencoded::from_bytes(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid form body: {e}")))
    } else {
        Err(ApiError::UnsupportedMediaType(
            "a form (application/x-www-form-urlencoded) or JSON (application/json)",
        ))
    }
}

fn inactive() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "active": false }))
}
