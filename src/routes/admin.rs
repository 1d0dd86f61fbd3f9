//! `/admin/...`: user and session management for users with the admin flag.
//! Every action is logged with the acting admin's id.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Admin;
use crate::domain::now;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::sessions;
use crate::store::users::{self, AdminChangeRefused};
use crate::views::{SessionJson, SessionList, UserSummary};

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 500 (default 50).
    limit: Option<i64>,
    /// The `next_after` of the previous page.
    after: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct AdminPatch {
    admin: bool,
}

#[derive(Serialize, ToSchema)]
pub struct UserPage {
    users: Vec<UserSummary>,
    /// Pass as `after` to get the next page; null on the last page.
    next_after: Option<String>,
}

/// Lists users in creation order, keyset-paginated.
#[utoipa::path(get, path = "/admin/users", tag = "admin", security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, description = "One page of users", body = UserPage),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 403, description = "Not an admin", body = crate::error::ErrorBody),
        (status = 422, description = "limit out of range", body = crate::error::ErrorBody),
    ))]
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
    let (page, counts, more) = state
        .db(move |conn| {
            // One row more than asked tells whether another page exists.
            let mut page = users::list_page(conn, after.as_deref(), limit + 1)?;
            let more = page.len() as i64 > limit;
            page.truncate(limit as usize);
            let ids: Vec<String> = page.iter().map(|u| u.id.clone()).collect();
            let counts = sessions::count_live_by_user(conn, &ids, &policy, now())?;
            Ok((page, counts, more))
        })
        .await?;
    let next_after = more.then(|| page.last().map(|u| u.id.clone())).flatten();
    let users = page
        .into_iter()
        .map(|user| {
            let active_sessions = counts.get(&user.id).copied().unwrap_or(0);
            UserSummary::new(user, active_sessions)
        })
        .collect();
    Ok(HttpResponse::Ok().json(UserPage { users, next_after }))
}

/// One user, with their number of live sessions.
#[utoipa::path(get, path = "/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "The user", body = UserSummary),
        (status = 403, description = "Not an admin", body = crate::error::ErrorBody),
        (status = 404, description = "No such user", body = crate::error::ErrorBody),
    ))]
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
            let active_sessions = sessions::count_live_for_user(conn, &user.id, &policy, now())?;
            Ok(Some(UserSummary::new(user, active_sessions)))
        })
        .await?
        .ok_or(ApiError::NotFound("no such user"))?;
    Ok(HttpResponse::Ok().json(summary))
}

/// A user's live sessions.
#[utoipa::path(get, path = "/admin/users/{id}/sessions", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "Live sessions", body = SessionList),
        (status = 403, description = "Not an admin", body = crate::error::ErrorBody),
        (status = 404, description = "No such user", body = crate::error::ErrorBody),
    ))]
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

/// Ends every session of a user (a stolen phone, a leaked token).
#[utoipa::path(delete, path = "/admin/users/{id}/sessions", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Every session ended"),
        (status = 403, description = "Not an admin", body = crate::error::ErrorBody),
        (status = 404, description = "No such user", body = crate::error::ErrorBody),
    ))]
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

/// Deletes a user and, with them, their sessions.
#[utoipa::path(delete, path = "/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not an admin", body = crate::error::ErrorBody),
        (status = 404, description = "No such user", body = crate::error::ErrorBody),
        (status = 409, description = "The last admin cannot be deleted", body = crate::error::ErrorBody),
    ))]
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

/// Grants or removes the admin flag; the last admin keeps it.
#[utoipa::path(patch, path = "/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")), request_body = AdminPatch,
    responses(
        (status = 200, description = "The updated user", body = crate::store::users::User),
        (status = 403, description = "Not an admin", body = crate::error::ErrorBody),
        (status = 404, description = "No such user", body = crate::error::ErrorBody),
        (status = 409, description = "It would leave no admin", body = crate::error::ErrorBody),
    ))]
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
