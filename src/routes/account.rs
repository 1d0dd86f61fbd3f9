//! The account itself: verifying its email address, deleting it, and its
//! security event trail ("recent activity").

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{record_failed_login, verification_spec};
use super::client::origin;
use super::password::{Accepted, code_owner};
use crate::auth::Authenticated;
use crate::delivery::message::MessageUser;
use crate::domain::{CodeDigest, Password, Purpose, now};
use crate::error::ApiError;
use crate::hashing::Verification;
use crate::state::AppState;
use crate::store::codes;
use crate::store::events::{self, Event, EventKind, NewEvent};
use crate::store::users::{self, AdminChangeRefused, Audit};

#[derive(Deserialize, ToSchema)]
pub struct VerifyBody {
    /// The code from the verification mail (or webhook event).
    code: String,
}

#[derive(Deserialize, ToSchema)]
pub struct DeleteAccountBody {
    /// The account's password, asked again before anything is deleted.
    password: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Page size, 1 to 500 (default 50).
    limit: Option<i64>,
    /// The `next_before` of the previous page.
    before: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EventPage {
    /// Newest first.
    events: Vec<Event>,
    /// Pass as `before` to get the next (older) page; null on the last page.
    next_before: Option<String>,
}

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;

/// Confirms the account's email address with the code mailed to it.
#[utoipa::path(post, path = "/auth/email/verify", tag = "account", request_body = VerifyBody,
    responses(
        (status = 204, description = "Verified; the code is spent"),
        (status = 400, description = "Malformed JSON, or a wrong, expired, used or superseded code (invalid_code)", body = crate::error::ErrorBody),
        (status = 401, description = "The account is suspended", body = crate::error::ErrorBody),
        (status = 415, description = "The body is not JSON", body = crate::error::ErrorBody),
        (status = 429, description = "Too many code attempts from this client; see Retry-After", body = crate::error::ErrorBody),
    ))]
pub async fn verify_email(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<VerifyBody>,
) -> Result<HttpResponse, ApiError> {
    state.admit(state.throttle.code_use(&req)).await?;
    let digest = CodeDigest::of_presented(&body.code).map_err(|_| ApiError::InvalidCode)?;
    let owner = code_owner(&state, &digest, Purpose::EmailVerification).await?;
    let origin = origin(&state, &req);
    let user_id = owner.user_id.clone();
    state
        .db(move |conn| {
            use diesel::Connection as _;
            crate::db::retry_on_deadlock(|| {
                conn.transaction::<_, ApiError, _>(|conn| {
                    let now = now();
                    if !codes::spend(conn, &digest, Purpose::EmailVerification, &user_id, now)? {
                        return Err(ApiError::InvalidCode);
                    }
                    users::mark_email_verified(conn, &user_id, now)?;
                    events::record(
                        conn,
                        NewEvent::new(EventKind::EmailVerified, &user_id, &origin),
                        now,
                    )?;
                    Ok(())
                })
            })
        })
        .await?;
    tracing::info!(user_id = %owner.user_id, "email verified");
    Ok(HttpResponse::NoContent().finish())
}

/// Sends the caller a new verification message (the earlier code stops working).
#[utoipa::path(post, path = "/auth/email/verify/resend", tag = "account", security(("bearer" = [])),
    responses(
        (status = 202, description = "A new code is on its way", body = Accepted),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 409, description = "The email is already verified", body = crate::error::ErrorBody),
        (status = 429, description = "Too many messages for this email or client; see Retry-After", body = crate::error::ErrorBody),
        (status = 503, description = "No mail or webhook delivery is configured (delivery_unavailable)", body = crate::error::ErrorBody),
    ))]
pub async fn resend_verification(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    if !state.settings.delivery.is_active() {
        return Err(ApiError::DeliveryUnavailable);
    }
    if auth.user.email_verified() {
        return Err(ApiError::AlreadyVerified);
    }
    state
        .admit(state.throttle.recovery(&req, &auth.user.email))
        .await?;
    let origin = origin(&state, &req);
    let account = state.settings.account.clone();
    let recipient = MessageUser {
        id: auth.user.id.clone(),
        email: auth.user.email.clone(),
    };
    let session_id = auth.session.id.clone();
    state
        .db(move |conn| {
            let event = NewEvent::new(
                EventKind::EmailVerificationRequested,
                &recipient.id,
                &origin,
            )
            .session(&session_id);
            codes::issue_and_queue(
                conn,
                &recipient,
                verification_spec(&account),
                true,
                event,
                now(),
            )?;
            Ok(())
        })
        .await?;
    state.wake_delivery();
    Ok(HttpResponse::Accepted().json(Accepted {
        message: "a new verification message is on its way",
    }))
}

/// Deletes the caller's account, with every session, code, queued message
/// and event of it. The password is asked again.
#[utoipa::path(delete, path = "/auth/account", tag = "account", security(("bearer" = [])),
    request_body = DeleteAccountBody,
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed JSON", body = crate::error::ErrorBody),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 403, description = "Wrong password", body = crate::error::ErrorBody),
        (status = 409, description = "The last admin cannot delete their account", body = crate::error::ErrorBody),
        (status = 415, description = "The body is not JSON", body = crate::error::ErrorBody),
        (status = 429, description = "Too many attempts; see Retry-After", body = crate::error::ErrorBody),
        (status = 503, description = "Too many password checks waiting; see Retry-After", body = crate::error::ErrorBody),
    ))]
pub async fn delete_account(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Authenticated,
    body: web::Json<DeleteAccountBody>,
) -> Result<HttpResponse, ApiError> {
    // A password check like a login's, throttled like one.
    state
        .admit(state.throttle.login(&req, &auth.user.email))
        .await?;
    let slot = state.hasher.reserve()?;
    let user_id = auth.user.id.clone();
    let credentials = state
        .db(move |conn| Ok(users::find_credentials_by_id(conn, &user_id)?))
        .await?
        .ok_or(ApiError::Unauthorized(crate::error::TokenProblem::Invalid))?;
    let password = Password::candidate(body.into_inner().password);
    let verification = slot
        .verify(password, Some(credentials.password_hash.clone()))
        .await?;
    drop(slot);
    let origin = origin(&state, &req);
    if verification == Verification::Mismatch {
        record_failed_login(&state, auth.user.id.clone(), origin).await;
        return Err(ApiError::WrongCurrentPassword);
    }
    let user_id = auth.user.id.clone();
    let ended = state
        .db(move |conn| {
            let audit = Audit {
                actor_id: None,
                origin: &origin,
            };
            let active = crate::store::sessions::count_all_for_user(conn, &user_id)?;
            let deleted = users::delete(conn, &user_id, &audit, now())?;
            Ok(deleted.map(|_| active))
        })
        .await?
        .map_err(|refused| match refused {
            AdminChangeRefused::LastAdmin => ApiError::LastAdmin,
            AdminChangeRefused::NotFound => {
                ApiError::Unauthorized(crate::error::TokenProblem::Invalid)
            }
        })?;
    state.metrics.sessions_revoked.inc_by(ended as u64);
    tracing::info!(user_id = %auth.user.id, "user deleted their account");
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's security events, newest first: the "recent activity" screen.
#[utoipa::path(get, path = "/auth/events", tag = "account", security(("bearer" = [])), params(EventsQuery),
    responses(
        (status = 200, description = "One page of events", body = EventPage),
        (status = 400, description = "Malformed query", body = crate::error::ErrorBody),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 422, description = "limit out of range", body = crate::error::ErrorBody),
    ))]
pub async fn own_events(
    state: web::Data<AppState>,
    auth: Authenticated,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(event_page(&state, auth.user.id, query.into_inner()).await?))
}

/// One page of a user's events, for the user and for admins.
pub async fn event_page(
    state: &AppState,
    user_id: String,
    query: EventsQuery,
) -> Result<EventPage, ApiError> {
    let EventsQuery { limit, before } = query;
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::Validation {
            code: "invalid_limit",
            message: format!("limit must be between 1 and {MAX_PAGE}"),
        });
    }
    let mut events = state
        .db(move |conn| {
            Ok(events::page_for_user(
                conn,
                &user_id,
                before.as_deref(),
                limit + 1,
            )?)
        })
        .await?;
    let more = events.len() as i64 > limit;
    events.truncate(limit as usize);
    let next_before = more.then(|| events.last().map(|e| e.id.clone())).flatten();
    Ok(EventPage {
        events,
        next_before,
    })
}
