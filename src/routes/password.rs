//! Passwords: changing one (knowing it), and recovering a forgotten one
//! through a one-time code delivered by mail or webhook.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::invalid_password;
use super::client::origin;
use crate::auth::Authenticated;
use crate::delivery::message::MessageUser;
use crate::domain::{CodeDigest, Email, Password, Purpose, now};
use crate::error::ApiError;
use crate::hashing::Verification;
use crate::settings::AccountSettings;
use crate::state::AppState;
use crate::store::codes::{self, CodeSpec};
use crate::store::events::{EventKind, NewEvent, Origin};
use crate::store::{sessions, users};

#[derive(Deserialize, ToSchema)]
pub struct ChangePasswordBody {
    current_password: String,
    new_password: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ForgotBody {
    email: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ResetBody {
    /// The code from the reset mail (or webhook event).
    code: String,
    new_password: String,
}

/// The one answer of `forgot` and of the other requests that queue a message.
#[derive(Serialize, ToSchema)]
pub struct Accepted {
    pub message: &'static str,
}

const FORGOT_ANSWER: &str =
    "if an account with this email exists, a message with a reset code is on its way";

/// Changes the password and ends every other session of the user.
#[utoipa::path(put, path = "/auth/password", tag = "password", security(("bearer" = [])),
    request_body = ChangePasswordBody,
    responses(
        (status = 204, description = "Changed; other sessions ended"),
        (status = 400, description = "Malformed JSON", body = crate::error::ErrorBody),
        (status = 401, description = "No valid token", body = crate::error::ErrorBody),
        (status = 403, description = "Wrong current password", body = crate::error::ErrorBody),
        (status = 409, description = "Changed by another request meanwhile", body = crate::error::ErrorBody),
        (status = 422, description = "The new password breaks the rules", body = crate::error::ErrorBody),
        (status = 503, description = "Too many password checks waiting; see Retry-After", body = crate::error::ErrorBody),
    ))]
pub async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Authenticated,
    body: web::Json<ChangePasswordBody>,
) -> Result<HttpResponse, ApiError> {
    let ChangePasswordBody {
        current_password,
        new_password,
    } = body.into_inner();
    let new_password = state
        .settings
        .password
        .check(new_password)
        .map_err(invalid_password)?;
    let slot = state.hasher.reserve()?;
    let user_id = auth.user.id.clone();
    let credentials = state
        .db(move |conn| Ok(users::find_credentials_by_id(conn, &user_id)?))
        .await?
        .ok_or(ApiError::Unauthorized(crate::error::TokenProblem::Invalid))?;
    let verification = slot
        .verify(
            Password::candidate(current_password),
            Some(credentials.password_hash.clone()),
        )
        .await?;
    if verification == Verification::Mismatch {
        return Err(ApiError::WrongCurrentPassword);
    }
    let new_hash = slot.hash(new_password).await?;
    drop(slot);
    let keep = auth.session.id.clone();
    let origin = origin(&state, &req);
    let revoked = state
        .db(move |conn| {
            use diesel::Connection as _;
            crate::db::durably(conn, |conn| {
                crate::db::retry_on_deadlock(|| {
                    conn.transaction::<_, ApiError, _>(|conn| {
                        let now = now();
                        if !users::replace_password_hash(
                            conn,
                            &credentials.id,
                            &credentials.password_hash,
                            &new_hash,
                            now,
                        )? {
                            return Err(ApiError::Conflict);
                        }
                        crate::store::events::record(
                            conn,
                            NewEvent::new(EventKind::PasswordChanged, &credentials.id, &origin)
                                .session(&keep),
                            now,
                        )?;
                        Ok(sessions::delete_all_for_user_except(
                            conn,
                            &credentials.id,
                            &keep,
                        )?)
                    })
                })
            })
        })
        .await?;
    state.metrics.sessions_revoked.inc_by(revoked as u64);
    tracing::info!(user_id = %auth.user.id, revoked_sessions = revoked, "password changed");
    Ok(HttpResponse::NoContent().finish())
}

/// Asks for a password reset code. The answer is the same, and comes as
/// fast, whether or not an account has this email: the lookup and the
/// message are handled after the answer is sent.
#[utoipa::path(post, path = "/auth/password/forgot", tag = "password", request_body = ForgotBody,
    responses(
        (status = 202, description = "Accepted (whether or not the account exists)", body = Accepted),
        (status = 400, description = "Malformed JSON", body = crate::error::ErrorBody),
        (status = 415, description = "The body is not JSON", body = crate::error::ErrorBody),
        (status = 422, description = "Not an email address", body = crate::error::ErrorBody),
        (status = 429, description = "Too many requests for this email or from this client; see Retry-After", body = crate::error::ErrorBody),
    ))]
pub async fn forgot(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<ForgotBody>,
) -> Result<HttpResponse, ApiError> {
    let email = Email::parse(&body.email).map_err(|e| ApiError::Validation {
        code: "invalid_email",
        message: e.to_string(),
    })?;
    state
        .admit(state.throttle.recovery(&req, email.as_str()))
        .await?;
    if state.settings.delivery.is_active() {
        let origin = origin(&state, &req);
        let state = state.clone();
        actix_web::rt::spawn(async move {
            match request_reset(&state, email, origin).await {
                Ok(true) => state.wake_delivery(),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "failed to queue a password reset"),
            }
        });
    }
    Ok(HttpResponse::Accepted().json(Accepted {
        message: FORGOT_ANSWER,
    }))
}

/// Issues a reset code for the account with `email`, if there is one that
/// is not suspended, and queues its message. Returns whether it did.
async fn request_reset(state: &AppState, email: Email, origin: Origin) -> Result<bool, ApiError> {
    let account = state.settings.account.clone();
    state
        .db(move |conn| {
            let Some(user) = users::find_by_email(conn, email.as_str())? else {
                return Ok(false);
            };
            if user.disabled() {
                return Ok(false);
            }
            let recipient = MessageUser {
                id: user.id.clone(),
                email: user.email.clone(),
            };
            let event = NewEvent::new(EventKind::PasswordResetRequested, &user.id, &origin);
            codes::issue_and_queue(conn, &recipient, reset_spec(&account), true, event, now())?;
            Ok(true)
        })
        .await
}

/// How reset codes are issued under these settings.
pub fn reset_spec(account: &AccountSettings) -> CodeSpec<'_> {
    CodeSpec {
        purpose: Purpose::PasswordReset,
        ttl: account.reset_ttl,
        link_template: account.reset_link.as_deref(),
    }
}

/// Sets a new password with a reset code. Every session of the user ends;
/// the user then logs in as usual. The code is spent.
#[utoipa::path(post, path = "/auth/password/reset", tag = "password", request_body = ResetBody,
    responses(
        (status = 204, description = "Password set; every session ended"),
        (status = 400, description = "Malformed JSON, or a wrong, expired, used or superseded code (invalid_code)", body = crate::error::ErrorBody),
        (status = 401, description = "The account is suspended", body = crate::error::ErrorBody),
        (status = 415, description = "The body is not JSON", body = crate::error::ErrorBody),
        (status = 422, description = "The new password breaks the rules", body = crate::error::ErrorBody),
        (status = 429, description = "Too many code attempts from this client; see Retry-After", body = crate::error::ErrorBody),
        (status = 503, description = "Too many password checks waiting; see Retry-After", body = crate::error::ErrorBody),
    ))]
pub async fn reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<ResetBody>,
) -> Result<HttpResponse, ApiError> {
    let ResetBody { code, new_password } = body.into_inner();
    state.admit(state.throttle.code_use(&req)).await?;
    let digest = CodeDigest::of_presented(&code).map_err(|_| ApiError::InvalidCode)?;
    let password = state
        .settings
        .password
        .check(new_password)
        .map_err(invalid_password)?;
    let owner = code_owner(&state, &digest, Purpose::PasswordReset).await?;
    let new_hash = state.hasher.hash(password).await?;
    let origin = origin(&state, &req);
    let user_id = owner.user_id.clone();
    let revoked = state
        .db(move |conn| {
            use diesel::Connection as _;
            crate::db::durably(conn, |conn| {
                crate::db::retry_on_deadlock(|| {
                    conn.transaction::<_, ApiError, _>(|conn| {
                        let now = now();
                        // Of concurrent uses of one code, only one deletes it.
                        if !codes::spend(conn, &digest, Purpose::PasswordReset, &user_id, now)? {
                            return Err(ApiError::InvalidCode);
                        }
                        let event =
                            NewEvent::new(EventKind::PasswordResetCompleted, &user_id, &origin);
                        let revoked = users::set_password(conn, &user_id, &new_hash, event, now)?;
                        // The code reached the address: it is the user's.
                        users::mark_email_verified(conn, &user_id, now)?;
                        Ok(revoked)
                    })
                })
            })
        })
        .await?;
    state.metrics.sessions_revoked.inc_by(revoked as u64);
    tracing::info!(user_id = %owner.user_id, revoked_sessions = revoked, "password reset with a code");
    Ok(HttpResponse::NoContent().finish())
}

/// The account a presented code belongs to: 400 `invalid_code` when none,
/// and for a suspended account the 401 a wrong password gets.
pub(super) async fn code_owner(
    state: &AppState,
    digest: &CodeDigest,
    purpose: Purpose,
) -> Result<codes::CodeOwner, ApiError> {
    let digest = digest.clone();
    let owner = state
        .db(move |conn| Ok(codes::owner(conn, &digest, purpose, now())?))
        .await?
        .ok_or(ApiError::InvalidCode)?;
    if owner.disabled {
        return Err(ApiError::InvalidCredentials);
    }
    Ok(owner)
}
