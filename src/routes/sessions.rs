use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::auth::Authenticated;
use crate::domain::now;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::sessions;
use crate::views::SessionJson;

#[derive(Serialize)]
struct SessionList {
    sessions: Vec<SessionJson>,
}

/// `GET /auth/sessions`: the caller's live sessions, most recent first.
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

/// `DELETE /auth/sessions/{id}`: revokes one of the caller's sessions.
/// Someone else's session id is answered exactly like an unknown one.
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
