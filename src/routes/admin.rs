//! `/admin/...`: user and session management for users with the admin flag.
//! Every action is logged with the acting admin's id.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::account::{EventPage, EventsQuery, event_page};
use super::client::origin;
use super::password::{Accepted, reset_spec};
use crate::auth::Admin;
use crate::delivery::message::MessageUser;
use crate::domain::now;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::events::{EventKind, NewEvent};
use crate::store::users::{self, AdminChangeRefused, Audit, User};
use crate::store::{codes, sessions};
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

/// What to change; at least one field.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminPatch {
    /// Grant or remove the admin flag.
    admin: Option<bool>,
    /// Suspend (true) or restore (false) the account. Suspension ends every
    /// session at once; the account's logins and codes are refused.
    disabled: Option<bool>,
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
    req: HttpRequest,
    admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let target = id.clone();
    let origin = origin(&state, &req);
    let admin_id = admin.0.user.id.clone();
    let revoked = state
        .db(move |conn| {
            if users::find_by_id(conn, &target)?.is_none() {
                return Ok(None);
            }
            let event = NewEvent::new(EventKind::LogoutAll, &target, &origin).by(&admin_id);
            Ok(Some(sessions::delete_all_for_user(
                conn,
                &target,
                event,
                now(),
            )?))
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
    req: HttpRequest,
    admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let target = id.clone();
    let origin = origin(&state, &req);
    let admin_id = admin.0.user.id.clone();
    state
        .db(move |conn| {
            let audit = Audit {
                actor_id: Some(&admin_id),
                origin: &origin,
            };
            Ok(users::delete(conn, &target, &audit, now())?)
        })
        .await?
        .map_err(refused)?;
    tracing::info!(admin_id = %admin.0.user.id, user_id = %id, "admin deleted a user");
    Ok(HttpResponse::NoContent().finish())
}

/// Grants or removes the admin flag, suspends or restores the account; the
/// last admin keeps the flag and cannot be suspended.
#[utoipa::path(patch, path = "/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")), request_body = AdminPatch,
    responses(
        (status = 200, description = "The updated user", body = UserSummary),
        (status = 400, description = "Malformed JSON, or nothing to change", body = crate::error::ErrorBody),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 403, description = "Not an admin", body = crate::error::ErrorBody),
        (status = 404, description = "No such user", body = crate::error::ErrorBody),
        (status = 409, description = "It would leave no admin", body = crate::error::ErrorBody),
        (status = 415, description = "The body is not JSON", body = crate::error::ErrorBody),
    ))]
pub async fn update_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    path: web::Path<String>,
    body: web::Json<AdminPatch>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let AdminPatch {
        admin: flag,
        disabled,
    } = body.into_inner();
    if flag.is_none() && disabled.is_none() {
        return Err(ApiError::BadRequest(
            "nothing to change: send \"admin\" and/or \"disabled\"".into(),
        ));
    }
    let target = id.clone();
    let origin = origin(&state, &req);
    let admin_id = admin.0.user.id.clone();
    let policy = state.settings.session;
    let (user, ended, active) = state
        .db(move |conn| {
            let audit = Audit {
                actor_id: Some(&admin_id),
                origin: &origin,
            };
            let mut ended = 0;
            let mut user: Option<User> = None;
            if let Some(disabled) = disabled {
                match users::set_disabled(conn, &target, disabled, &audit, now())? {
                    Ok((changed, n)) => {
                        ended = n;
                        user = Some(changed);
                    }
                    Err(refused) => return Ok(Err(refused)),
                }
            }
            if let Some(flag) = flag {
                match users::set_admin(conn, &target, flag, &audit, now())? {
                    Ok(changed) => user = Some(changed),
                    Err(refused) => return Ok(Err(refused)),
                }
            }
            let Some(user) = user else {
                return Ok(Err(AdminChangeRefused::NotFound));
            };
            let active = sessions::count_live_for_user(conn, &user.id, &policy, now())?;
            Ok(Ok((user, ended, active)))
        })
        .await?
        .map_err(refused)?;
    state.metrics.sessions_revoked.inc_by(ended as u64);
    tracing::info!(admin_id = %admin.0.user.id, user_id = %id, admin = ?flag, disabled = ?disabled, revoked = ended, "admin changed a user");
    Ok(HttpResponse::Ok().json(UserSummary::new(user, active)))
}

/// Sends the user a password reset code, as if they had asked for one.
#[utoipa::path(post, path = "/admin/users/{id}/password-reset", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 202, description = "A reset code is on its way to the user", body = Accepted),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 403, description = "Not an admin", body = crate::error::ErrorBody),
        (status = 404, description = "No such user", body = crate::error::ErrorBody),
        (status = 503, description = "No mail or webhook delivery is configured (delivery_unavailable)", body = crate::error::ErrorBody),
    ))]
pub async fn send_password_reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !state.settings.delivery.is_active() {
        return Err(ApiError::DeliveryUnavailable);
    }
    let id = path.into_inner();
    let target = id.clone();
    let origin = origin(&state, &req);
    let admin_id = admin.0.user.id.clone();
    let account = state.settings.account.clone();
    state
        .db(move |conn| {
            let Some(user) = users::find_by_id(conn, &target)? else {
                return Ok(None);
            };
            let recipient = MessageUser {
                id: user.id.clone(),
                email: user.email.clone(),
            };
            let event =
                NewEvent::new(EventKind::PasswordResetRequested, &user.id, &origin).by(&admin_id);
            codes::issue_and_queue(conn, &recipient, reset_spec(&account), true, event, now())?;
            Ok(Some(()))
        })
        .await?
        .ok_or(ApiError::NotFound("no such user"))?;
    state.wake_delivery();
    tracing::info!(admin_id = %admin.0.user.id, user_id = %id, "admin sent a password reset");
    Ok(HttpResponse::Accepted().json(Accepted {
        message: "a password reset code is on its way to the user",
    }))
}

/// A user's security events, newest first.
#[utoipa::path(get, path = "/admin/users/{id}/events", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id"), EventsQuery),
    responses(
        (status = 200, description = "One page of events", body = EventPage),
        (status = 400, description = "Malformed query", body = crate::error::ErrorBody),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 403, description = "Not an admin", body = crate::error::ErrorBody),
        (status = 404, description = "No such user", body = crate::error::ErrorBody),
        (status = 422, description = "limit out of range", body = crate::error::ErrorBody),
    ))]
pub async fn user_events(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let target = id.clone();
    if state
        .db(move |conn| Ok(users::find_by_id(conn, &target)?))
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound("no such user"));
    }
    Ok(HttpResponse::Ok().json(event_page(&state, id, query.into_inner()).await?))
}

fn refused(reason: AdminChangeRefused) -> ApiError {
    match reason {
        AdminChangeRefused::NotFound => ApiError::NotFound("no such user"),
        AdminChangeRefused::LastAdmin => ApiError::LastAdmin,
    }
}
