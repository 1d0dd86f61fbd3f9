//! What latchkey sends: the event a webhook receives as its body, and what
//! a mail is written from. Kept in the outbox as JSON until delivered.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a message is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageKind {
    #[serde(rename = "password_reset.requested")]
    PasswordReset,
    #[serde(rename = "email_verification.requested")]
    EmailVerification,
}

impl MessageKind {
    /// The event type, as in the webhook body and the outbox's `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "password_reset.requested",
            Self::EmailVerification => "email_verification.requested",
        }
    }
}

/// The recipient.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageUser {
    pub id: String,
    pub email: String,
}

/// A message carrying a one-time code. Its `Debug` never shows the code or
/// the link (which carries the code).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    #[serde(rename = "type")]
    pub kind: MessageKind,
    pub user: MessageUser,
    pub code: String,
    /// The link template filled in with the code, when one is configured.
    pub link: Option<String>,
    /// RFC 3339, UTC: when the code stops working.
    pub expires_at: String,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("kind", &self.kind)
            .field("user_id", &self.user.id)
            .field("code", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_code_or_the_link() {
        let message = Message {
            kind: MessageKind::PasswordReset,
            user: MessageUser {
                id: "u1".into(),
                email: "a@example.com".into(),
            },
            code: "SECRETCODE".into(),
            link: Some("https://app.example/reset?code=SECRETCODE".into()),
            expires_at: "2026-12-04T12:00:00Z".into(),
        };
        let shown = format!("{message:?}");
        assert!(!shown.contains("SECRETCODE"), "{shown}");
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(json["type"], "password_reset.requested");
        assert_eq!(json["code"], "SECRETCODE");
    }
}
