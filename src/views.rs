//! The JSON shapes shared by the HTTP API and the CLI's `--json` output.

use chrono::NaiveDateTime;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::SessionPolicy;
use crate::store::sessions::Session;
use crate::store::users::User;

/// A session as its owner sees it.
#[derive(Serialize, ToSchema)]
pub struct SessionJson {
    pub id: String,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    created_at: NaiveDateTime,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    last_updated_at: NaiveDateTime,
    /// When the session ends if it is not used again.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    expires_at: NaiveDateTime,
    /// Whether this is the session making the request.
    current: bool,
    user_agent: Option<String>,
    label: Option<String>,
    /// The address the session was opened from.
    client_ip: Option<String>,
}

impl SessionJson {
    pub fn new(session: &Session, policy: &SessionPolicy, current_id: Option<&str>) -> Self {
        Self {
            id: session.id.clone(),
            created_at: session.created_at,
            last_updated_at: session.last_updated_at,
            expires_at: policy.expires_at(session.created_at, session.last_updated_at),
            current: current_id == Some(session.id.as_str()),
            user_agent: session.user_agent.clone(),
            label: session.label.clone(),
            client_ip: session.client_ip.clone(),
        }
    }
}

/// A list of sessions, most recently used first.
#[derive(Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionJson>,
}

/// A user as an admin sees it: never the password hash.
#[derive(Serialize, ToSchema)]
pub struct UserSummary {
    #[serde(flatten)]
    pub user: User,
    /// Suspended: no session, no login, no code works.
    pub disabled: bool,
    pub active_sessions: i64,
}

impl UserSummary {
    pub fn new(user: User, active_sessions: i64) -> Self {
        Self {
            disabled: user.disabled(),
            user,
            active_sessions,
        }
    }
}
