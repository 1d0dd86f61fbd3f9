use actix_web::{HttpResponse, web};

use crate::auth::Authenticated;
use crate::domain::now;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::sessions;
use crate::views::{SessionJson, SessionList};

/// The caller's live sessions, most recently used first.
#[utoipa::path(get, path = "/auth/sessions", tag = "sessions", security(("bearer" = [])),
    responses(
        (status = 200, description = "Live sessions", body = SessionList),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
    ))]
pub async fn list(
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let policy = state.settings.session;
    let user_id = auth.user.id.clone();
    let rows = state
        .db(move |conn| {
            Ok(sessions::list_live_for_user(
                conn,
                &user_id,
                &policy,
                now(),
            )?)
        })
        .await?;
    let sessions = rows
        .iter()
        .map(|s| SessionJson::new(s, &policy, Some(&auth.session.id)))
        .collect();
    Ok(HttpResponse::Ok().json(SessionList { sessions }))
}

/// Revokes one of the caller's sessions. Someone else's session id is
/// answered exactly like an unknown one.
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 404, description = "No such session of the caller", body = crate::error::ErrorBody),
    ))]
pub async fn revoke(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let session_id = path.into_inner();
    let user_id = auth.user.id;
    let deleted = state
        .db(move |conn| Ok(sessions::delete_for_user(conn, &user_id, &session_id)?))
        .await?;
    if !deleted {
        return Err(ApiError::NotFound("no such session"));
    }
    state.metrics.sessions_revoked.inc();
    Ok(HttpResponse::NoContent().finish())
}
