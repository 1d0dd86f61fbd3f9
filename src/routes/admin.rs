//! `/admin/...`: user and session management for users with the admin flag.
//! Every action is logged with the acting admin's id.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::auth::Admin;
use crate::domain::now;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::sessions;
use crate::store::users::{self, AdminChangeRefused};
use crate::views::{SessionJson, UserSummary};

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;

#[derive(Deserialize)]
pub struct PageQuery {
    limit: Option<i64>,
    after: Option<String>,
}

#[derive(Deserialize)]
pub struct AdminPatch {
    admin: bool,
}

#[derive(Serialize)]
struct UserPage {
    users: Vec<UserSummary>,
    /// Pass as `after` to get the next page; null on the last page.
    next_after: Option<String>,
}

/// `GET /admin/users?limit=&after=`
pub async fn list_users(
    state: web::Data<AppState>,
    _admin: Admin,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let PageQuery { limit, after } = query.into_inner();
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::Validation {
            code: "invalid_limit",
            message: format!("limit must be between 1 and {MAX_PAGE}"),
        });
    }
    let policy = state.settings.session;
    let (page, counts) = state
        .db(move |conn| {
            let page = users::list_page(conn, after.as_deref(), limit)?;
            let ids: Vec<String> = page.iter().map(|u| u.id.clone()).collect();
            let counts = sessions::count_live_by_user(conn, &ids, &policy, now())?;
            Ok((page, counts))
        })
        .await?;
    let next_after = (page.len() as i64 == limit)
        .then(|| page.last().map(|u| u.id.clone()))
        .flatten();
    let users = page
        .into_iter()
        .map(|user| {
            let active_sessions = counts.get(&user.id).copied().unwrap_or(0);
            UserSummary {
                user,
                active_sessions,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(UserPage { users, next_after }))
}

/// `GET /admin/users/{id}`
pub async fn get_user(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let policy = state.settings.session;
    let summary = state
        .db(move |conn| {
            let Some(user) = users::find_by_id(conn, &id)? else {
                return Ok(None);
            };
            let counts =
                sessions::count_live_by_user(conn, std::slice::from_ref(&user.id), &policy, now())?;
            let active_sessions = counts.get(&user.id).copied().unwrap_or(0);
            Ok(Some(UserSummary {
                user,
                active_sessions,
            }))
        })
        .await?
        .ok_or(ApiError::NotFound("no such user"))?;
    Ok(HttpResponse::Ok().json(summary))
}

#[derive(Serialize)]
struct SessionList {
    sessions: Vec<SessionJson>,
}

/// `GET /admin/users/{id}/sessions`
pub async fn list_user_sessions(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let policy = state.settings.session;
    let rows = state
        .db(move |conn| {
            if users::find_by_id(conn, &id)?.is_none() {
                return Ok(None);
            }
            Ok(Some(sessions::list_live_for_user(
                conn,
                &id,
                &policy,
                now(),
            )?))
        })
        .await?
        .ok_or(ApiError::NotFound("no such user"))?;
    let sessions = rows
        .iter()
        .map(|s| SessionJson::new(s, &policy, None))
        .collect();
    Ok(HttpResponse::Ok().json(SessionList { sessions }))
}

/// `DELETE /admin/users/{id}/sessions`: ends every session of the user
/// (a stolen phone, a leaked token).
pub async fn revoke_user_sessions(
    state: web::Data<AppState>,
    admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let target = id.clone();
    let revoked = state
        .db(move |conn| {
            if users::find_by_id(conn, &target)?.is_none() {
                return Ok(None);
            }
            Ok(Some(sessions::delete_all_for_user(conn, &target)?))
        })
        .await?
        .ok_or(ApiError::NotFound("no such user"))?;
    state.metrics.sessions_revoked.inc_by(revoked as u64);
    tracing::info!(admin_id = %admin.0.user.id, user_id = %id, revoked, "admin revoked every session of a user");
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /admin/users/{id}`: deletes the user and, by cascade, the sessions.
pub async fn delete_user(
    state: web::Data<AppState>,
    admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let target = id.clone();
    state
        .db(move |conn| Ok(users::delete(conn, &target)?))
        .await?
        .map_err(refused)?;
    tracing::info!(admin_id = %admin.0.user.id, user_id = %id, "admin deleted a user");
    Ok(HttpResponse::NoContent().finish())
}

/// `PATCH /admin/users/{id}` `{"admin": bool}`
pub async fn set_admin(
    state: web::Data<AppState>,
    admin: Admin,
    path: web::Path<String>,
    body: web::Json<AdminPatch>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let flag = body.admin;
    let target = id.clone();
    let user = state
        .db(move |conn| Ok(users::set_admin(conn, &target, flag, now())?))
        .await?
        .map_err(refused)?;
    tracing::info!(admin_id = %admin.0.user.id, user_id = %id, admin = flag, "admin changed a user's admin flag");
    Ok(HttpResponse::Ok().json(user))
}

fn refused(reason: AdminChangeRefused) -> ApiError {
    match reason {
        AdminChangeRefused::NotFound => ApiError::NotFound("no such user"),
        AdminChangeRefused::LastAdmin => ApiError::LastAdmin,
    }
}
