use actix_web::{HttpRequest, HttpResponse, web};

use super::client::origin;
use crate::auth::Authenticated;
use crate::domain::now;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::events::{EventKind, NewEvent};
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
    req: HttpRequest,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let session_id = path.into_inner();
    let user_id = auth.user.id;
    let current = auth.session.id;
    let origin = origin(&state, &req);
    let deleted = state
        .db(move |conn| {
            // The session that asked, not the one revoked: the event says
            // which device did it (the revoked one is gone).
            let event =
                NewEvent::new(EventKind::SessionRevoked, &user_id, &origin).session(&current);
            Ok(sessions::delete_for_user(
                conn,
                &user_id,
                &session_id,
                event,
                now(),
            )?)
        })
        .await?;
    if !deleted {
        return Err(ApiError::NotFound("no such session"));
    }
    state.metrics.sessions_revoked.inc();
    Ok(HttpResponse::NoContent().finish())
}

/// Ends the current session.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
    ))]
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let Authenticated { user, session } = auth;
    let origin = origin(&state, &req);
    let ended = state
        .db(move |conn| {
            let event = NewEvent::new(EventKind::Logout, &user.id, &origin).session(&session.id);
            Ok(sessions::delete_for_user(
                conn,
                &user.id,
                &session.id,
                event,
                now(),
            )?)
        })
        .await?;
    state.metrics.sessions_revoked.inc_by(u64::from(ended));
    Ok(HttpResponse::NoContent().finish())
}

/// Ends every session of the caller.
#[utoipa::path(post, path = "/auth/logout-all", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "Every session ended"),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
    ))]
pub async fn logout_all(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let user_id = auth.user.id;
    let session_id = auth.session.id;
    let origin = origin(&state, &req);
    let ended = state
        .db(move |conn| {
            let event = NewEvent::new(EventKind::LogoutAll, &user_id, &origin).session(&session_id);
            Ok(sessions::delete_all_for_user(conn, &user_id, event, now())?)
        })
        .await?;
    state.metrics.sessions_revoked.inc_by(ended as u64);
    tracing::info!(sessions = ended, "logged out everywhere");
    Ok(HttpResponse::NoContent().finish())
}
