//! The `security_events` table: what happened to each account, for the
//! user's "recent activity" screen and for operators. Written in the
//! transaction of the action it records. Never a password, token, code or
//! digest: only what happened, when, from where, and by whom.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::db::Connection;
use crate::db::schema::security_events as events;

/// The longest user agent kept, in characters.
pub const MAX_USER_AGENT_CHARS: usize = 255;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Registered,
    LoginSucceeded,
    LoginFailed,
    LoginThrottled,
    Logout,
    LogoutAll,
    SessionRevoked,
    PasswordChanged,
    PasswordResetRequested,
    PasswordResetCompleted,
    EmailVerificationRequested,
    EmailVerified,
    AccountDeleted,
    AccountDisabled,
    AccountEnabled,
    AdminGranted,
    AdminRevoked,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::LoginThrottled => "login_throttled",
            Self::Logout => "logout",
            Self::LogoutAll => "logout_all",
            Self::SessionRevoked => "session_revoked",
            Self::PasswordChanged => "password_changed",
            Self::PasswordResetRequested => "password_reset_requested",
            Self::PasswordResetCompleted => "password_reset_completed",
            Self::EmailVerificationRequested => "email_verification_requested",
            Self::EmailVerified => "email_verified",
            Self::AccountDeleted => "account_deleted",
            Self::AccountDisabled => "account_disabled",
            Self::AccountEnabled => "account_enabled",
            Self::AdminGranted => "admin_granted",
            Self::AdminRevoked => "admin_revoked",
        }
    }
}

/// Where a request came from: the client's address (as the throttle sees
/// it, i.e. through a trusted proxy header when one is configured) and its
/// user agent, truncated.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Origin {
    pub fn new(ip: Option<std::net::IpAddr>, user_agent: Option<&str>) -> Self {
        Self {
            ip: ip.map(|ip| ip.to_string()),
            user_agent: user_agent.map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect()),
        }
    }
}

/// One event to record.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    pub kind: EventKind,
    /// Whose account; `None` only for an account that no longer exists.
    pub user_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    /// The admin who acted, for admin actions.
    pub actor_id: Option<&'a str>,
    pub origin: &'a Origin,
}

impl<'a> NewEvent<'a> {
    pub fn new(kind: EventKind, user_id: &'a str, origin: &'a Origin) -> Self {
        Self {
            kind,
            user_id: Some(user_id),
            session_id: None,
            actor_id: None,
            origin,
        }
    }

    pub fn session(self, session_id: &'a str) -> Self {
        Self {
            session_id: Some(session_id),
            ..self
        }
    }

    pub fn by(self, actor_id: &'a str) -> Self {
        Self {
            actor_id: Some(actor_id),
            ..self
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = events)]
struct Row<'a> {
    id: &'a str,
    user_id: Option<&'a str>,
    kind: &'a str,
    session_id: Option<&'a str>,
    actor_id: Option<&'a str>,
    client_ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    created_at: NaiveDateTime,
}

/// An event as the user and operators see it.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = events)]
pub struct Event {
    pub id: String,
    /// `registered`, `login_succeeded`, `login_failed`, `login_throttled`,
    /// `logout`, `logout_all`, `session_revoked`, `password_changed`,
    /// `password_reset_requested`, `password_reset_completed`,
    /// `email_verification_requested`, `email_verified`,
    /// `account_deleted`, `account_disabled`, `account_enabled`,
    /// `admin_granted`, `admin_revoked`.
    #[serde(rename = "type")]
    pub kind: String,
    pub session_id: Option<String>,
    /// The admin who did it, for admin actions.
    pub actor_id: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: NaiveDateTime,
}

/// Records an event at `now`.
pub fn record(conn: &mut Connection, event: NewEvent<'_>, now: NaiveDateTime) -> QueryResult<()> {
    let id = uuid::Uuid::now_v7().to_string();
    diesel::insert_into(events::table)
        .values(Row {
            id: &id,
            user_id: event.user_id,
            kind: event.kind.as_str(),
            session_id: event.session_id,
            actor_id: event.actor_id,
            client_ip: event.origin.ip.as_deref(),
            user_agent: event.origin.user_agent.as_deref(),
            created_at: now,
        })
        .execute(conn)
        .map(|_| ())
}

/// A page of a user's events, newest first, starting below the id
/// `before` (ids are UUIDv7: time-ordered, so this is keyset pagination).
pub fn page_for_user(
    conn: &mut Connection,
    user_id: &str,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Event>> {
    let mut query = events::table
        .filter(events::user_id.eq(user_id))
        .order(events::id.desc())
        .limit(limit)
        .select(Event::as_select())
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(events::id.lt(before.to_owned()));
    }
    query.load(conn)
}

/// Deletes up to `batch` events older than `cutoff`; returns how many.
pub fn delete_older_than_batch(
    conn: &mut Connection,
    cutoff: NaiveDateTime,
    batch: i64,
) -> QueryResult<usize> {
    let old: Vec<String> = events::table
        .filter(events::created_at.lt(cutoff))
        .select(events::id)
        .limit(batch)
        .load(conn)?;
    if old.is_empty() {
        return Ok(0);
    }
    diesel::delete(events::table.filter(events::id.eq_any(&old))).execute(conn)
}

/// Records an event for the account with this (normalised) email, if one
/// exists: a failed or throttled login names its account only by email.
/// Returns whether there was such an account.
pub fn record_for_email(
    conn: &mut Connection,
    email: &str,
    kind: EventKind,
    origin: &Origin,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    use crate::db::schema::users;
    let id: Option<String> = users::table
        .filter(users::email.eq(email))
        .select(users::id)
        .first(conn)
        .optional()?;
    match id {
        Some(id) => record(conn, NewEvent::new(kind, &id, origin), now).map(|()| true),
        None => Ok(false),
    }
}
