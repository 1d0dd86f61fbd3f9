//! Registration, login, the session check, logout and password change.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{Either, HttpRequest, HttpResponse, web};
use actix_web_httpauth::extractors::basic::BasicAuth;
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::client::{client_info, origin};
use crate::auth::Authenticated;
use crate::delivery::message::MessageUser;
use crate::domain::Purpose;
use crate::domain::password::InvalidPassword;
use crate::domain::{Email, Password, SessionToken, now};
use crate::error::ApiError;
use crate::hashing::Verification;
use crate::state::AppState;
use crate::store::codes::{self, CodeSpec};
use crate::store::events::{self, EventKind, NewEvent};
use crate::store::sessions::{self, NewSession, OpenRefused};
use crate::store::users::{self, CreateUserError, NewUser, User};
use crate::views::SessionJson;

#[derive(Deserialize, ToSchema)]
pub struct RegisterBody {
    email: String,
    password: String,
    #[serde(default)]
    label: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct LoginBody {
    email: String,
    password: String,
    #[serde(default)]
    label: Option<String>,
}

impl RegisterBody {
    /// The email and password as sent (for the fuzz targets).
    pub fn credentials(&self) -> (&str, &str) {
        (&self.email, &self.password)
    }
}

impl LoginBody {
    /// The email and password as sent (for the fuzz targets).
    pub fn credentials(&self) -> (&str, &str) {
        (&self.email, &self.password)
    }
}

/// The answer to a successful register or login.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse<'a> {
    user: &'a User,
    token: &'a str,
    token_type: &'static str,
    session_id: &'a str,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    expires_at: NaiveDateTime,
}

#[derive(Serialize, ToSchema)]
pub struct StatusResponse<'a> {
    user: &'a User,
    session: SessionJson,
}

/// Creates an account and its first session.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterBody,
    responses(
        (status = 201, description = "Registered and logged in", body = TokenResponse),
        (status = 400, description = "Malformed JSON", body = crate::error::ErrorBody),
        (status = 409, description = "The email is taken", body = crate::error::ErrorBody),
        (status = 429, description = "Too many registrations from this client; see Retry-After", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid email, password or label", body = crate::error::ErrorBody),
    ))]
pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<RegisterBody>,
) -> Result<HttpResponse, ApiError> {
    state.admit(state.throttle.registration(&req)).await?;
    let RegisterBody {
        email,
        password,
        label,
    } = body.into_inner();
    let email = Email::parse(&email).map_err(|e| ApiError::Validation {
        code: "invalid_email",
        message: e.to_string(),
    })?;
    let password = state
        .settings
        .password
        .check(password)
        .map_err(invalid_password)?;
    let client = client_info(&state, &req, label)?;
    let password_hash = state.hasher.hash(password).await?;

    let now = now();
    let user = User {
        id: users::new_id(),
        email: email.into_string(),
        admin: false,
        created_at: now,
        email_verified_at: None,
        disabled_at: None,
    };
    let delivering = state.settings.delivery.is_active();
    let account = state.settings.account.clone();
    let (token, digest) = SessionToken::generate();
    let session_id = sessions::new_id();
    let (user, session_id) = state
        .db(move |conn| {
            use diesel::Connection as _;
            // Retried on a lost race (a certification conflict on Galera).
            crate::db::retry_on_deadlock(|| conn.transaction::<_, ApiError, _>(|conn| {
                users::insert(
                    conn,
                    &NewUser {
                        id: &user.id,
                        email: &user.email,
                        password_hash: &password_hash,
                        admin: false,
                        created_at: now,
                        updated_at: now,
                    },
                )
                .map_err(|e| match e {
                    CreateUserError::EmailTaken => ApiError::EmailTaken,
                    CreateUserError::Database(e) => e.into(),
                })?;
                sessions::insert(
                    conn,
                    &NewSession::new(&session_id, &user.id, &digest, &client, now),
                )?;
                events::record(
                    conn,
                    NewEvent::new(EventKind::Registered, &user.id, &client.origin)
                        .session(&session_id),
                    now,
                )?;
                Ok(())
            }))?;
            if delivering {
                // A transaction of its own: a registration never fails for
                // its verification mail.
                let recipient = MessageUser {
                    id: user.id.clone(),
                    email: user.email.clone(),
                };
                let event = NewEvent::new(
                    EventKind::EmailVerificationRequested,
                    &user.id,
                    &client.origin,
                );
                if let Err(e) = codes::issue_and_queue(
                    conn,
                    &recipient,
                    verification_spec(&account),
                    true,
                    event,
                    now,
                ) {
                    tracing::warn!(error = %e, user_id = %user.id, "failed to queue the verification mail");
                }
            }
            Ok((user, session_id))
        })
        .await?;
    if delivering {
        state.wake_delivery();
    }
    state.metrics.sessions_created.inc();
    tracing::info!(user_id = %user.id, session_id = %session_id, "user registered");
    let expires_at = state.settings.session.expires_at(now, now);
    Ok(token_response(
        HttpResponse::Created(),
        &user,
        &token,
        &session_id,
        expires_at,
    ))
}

/// Logs in with JSON `{"email","password"}` or HTTP Basic credentials.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginBody,
    security((), ("basic" = [])),
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 400, description = "Malformed JSON", body = crate::error::ErrorBody),
        (status = 401, description = "Wrong email or password", body = crate::error::ErrorBody),
        (status = 429, description = "Too many attempts for this account or client; see Retry-After", body = crate::error::ErrorBody),
        (status = 503, description = "Too many logins waiting; see Retry-After", body = crate::error::ErrorBody),
    ))]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    credentials: Either<web::Json<LoginBody>, BasicAuth>,
) -> Result<HttpResponse, ApiError> {
    let result = log_in(&state, &req, credentials).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(ApiError::InvalidCredentials) => "failed",
        Err(ApiError::Overloaded) => "refused",
        Err(ApiError::TooManyRequests { .. }) => "throttled",
        Err(_) => "error",
    };
    state.metrics.logins.with_label_values(&[outcome]).inc();
    if result.is_ok() {
        state.metrics.sessions_created.inc();
    }
    result
}

async fn log_in(
    state: &AppState,
    req: &HttpRequest,
    credentials: Either<web::Json<LoginBody>, BasicAuth>,
) -> Result<HttpResponse, ApiError> {
    let (email, password, label) = match credentials {
        Either::Left(body) => {
            let LoginBody {
                email,
                password,
                label,
            } = body.into_inner();
            (email, password, label)
        }
        Either::Right(basic) => (
            basic.user_id().to_owned(),
            basic.password().unwrap_or_default().to_owned(),
            None,
        ),
    };
    // Throttled before anything else, and per account whether or not the
    // account exists: a 429 says nothing about who is registered.
    let parsed = Email::parse(&email);
    let account = match &parsed {
        Ok(email) => email.as_str().to_owned(),
        Err(_) => email.trim().to_lowercase(),
    };
    if let Err(throttled) = state.admit(state.throttle.login(req, &account)).await {
        if state.throttle.should_record_throttled(&account) {
            let origin = origin(state, req);
            let recorded = state
                .db(move |conn| {
                    Ok(events::record_for_email(
                        conn,
                        &account,
                        EventKind::LoginThrottled,
                        &origin,
                        now(),
                    )?)
                })
                .await;
            if let Err(e) = recorded {
                tracing::warn!(error = %e, "failed to record a throttled login");
            }
        }
        return Err(throttled);
    }
    let client = client_info(state, req, label)?;
    // Room for the bcrypt check is reserved before the database lookup: in
    // a login flood the excess is refused (503) without costing a query.
    let slot = state.hasher.reserve()?;
    // A malformed email cannot belong to anyone; it is checked against the
    // dummy hash like any unknown email, so the answer and its timing match.
    let credentials = match parsed {
        Ok(email) => {
            state
                .db(move |conn| Ok(users::find_credentials_by_email(conn, email.as_str())?))
                .await?
        }
        Err(_) => None,
    };
    let stored_hash = credentials.as_ref().map(|c| c.password_hash.clone());
    let verification = slot
        .verify(Password::candidate(password), stored_hash)
        .await?;
    drop(slot);
    let (credentials, upgraded_hash) = match (credentials, verification) {
        (Some(credentials), Verification::Match { upgraded_hash }) => (credentials, upgraded_hash),
        (found, _) => {
            if let Some(credentials) = found {
                record_failed_login(state, credentials.id, client.origin).await;
            }
            tracing::info!("login refused: invalid credentials");
            return Err(ApiError::InvalidCredentials);
        }
    };
    // Only now, with the password verified, may the answer depend on the
    // account's state: a guesser learns nothing from it.
    if credentials.disabled_at.is_some() {
        record_failed_login(state, credentials.id, client.origin).await;
        tracing::info!("login refused: the account is suspended");
        return Err(ApiError::InvalidCredentials);
    }
    if state.settings.account.require_verified_email && credentials.email_verified_at.is_none() {
        tracing::info!(user_id = %credentials.id, "login refused: the email is not verified");
        return Err(ApiError::EmailUnverified);
    }

    let now = now();
    let (token, digest) = SessionToken::generate();
    let session_id = sessions::new_id();
    let policy = state.settings.session;
    let cap = state.settings.sessions_per_user;
    let user_id = credentials.id.clone();
    let user = state
        .db(move |conn| {
            let new = NewSession::new(&session_id, &user_id, &digest, &client, now);
            let opened = sessions::open_for_login(
                conn,
                &new,
                &client.origin,
                &credentials.password_hash,
                upgraded_hash.as_deref(),
                cap,
                &policy,
                now,
            )?;
            match opened {
                Ok(evicted) => Ok((users::find_by_id(conn, &user_id)?, session_id, evicted)),
                Err(OpenRefused::CredentialsChanged) => Ok((None, session_id, 0)),
            }
        })
        .await?;
    let (Some(user), session_id, evicted) = user else {
        tracing::info!("login refused: the password changed while it was being checked");
        return Err(ApiError::InvalidCredentials);
    };
    state.metrics.sessions_revoked.inc_by(evicted as u64);
    tracing::info!(user_id = %user.id, session_id = %session_id, evicted, "user logged in");
    let expires_at = policy.expires_at(now, now);
    Ok(token_response(
        HttpResponse::Ok(),
        &user,
        &token,
        &session_id,
        expires_at,
    ))
}

/// Who the token belongs to. Counts as activity: slides the session.
#[utoipa::path(get, path = "/auth/status", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller and their session", body = StatusResponse),
        (status = 401, description = "Missing, malformed, unknown, expired or revoked token", body = crate::error::ErrorBody),
    ))]
pub async fn status(state: web::Data<AppState>, auth: Authenticated) -> HttpResponse {
    let session = SessionJson::new(
        &auth.session,
        &state.settings.session,
        Some(&auth.session.id),
    );
    HttpResponse::Ok().json(StatusResponse {
        user: &auth.user,
        session,
    })
}

fn token_response(
    mut builder: actix_web::HttpResponseBuilder,
    user: &User,
    token: &SessionToken,
    session_id: &str,
    expires_at: NaiveDateTime,
) -> HttpResponse {
    // RFC 6749 §5.1: responses carrying credentials must not be cached.
    builder
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")))
        .json(TokenResponse {
            user,
            token: token.expose(),
            token_type: "Bearer",
            session_id,
            expires_at,
        })
}

pub(super) fn invalid_password(e: InvalidPassword) -> ApiError {
    ApiError::Validation {
        code: "invalid_password",
        message: e.to_string(),
    }
}

/// Records `login_failed` for an existing account (a wrong password at
/// login or when deleting the account); a failure to record is logged,
/// never turned into an error for the client.
pub(super) async fn record_failed_login(state: &AppState, user_id: String, origin: events::Origin) {
    let recorded = state
        .db(move |conn| {
            Ok(events::record(
                conn,
                NewEvent::new(EventKind::LoginFailed, &user_id, &origin),
                now(),
            )?)
        })
        .await;
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "failed to record a failed login");
    }
}

/// How verification codes are issued under these settings.
pub(super) fn verification_spec(account: &crate::settings::AccountSettings) -> CodeSpec<'_> {
    CodeSpec {
        purpose: Purpose::EmailVerification,
        ttl: account.verify_ttl,
        link_template: account.verify_link.as_deref(),
    }
}
