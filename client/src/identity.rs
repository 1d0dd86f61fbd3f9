//! Who a live token belongs to, read from latchkey's RFC 7662 answer.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::Error;

/// The user behind a live token, as latchkey answered for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// latchkey's user id (the answer's `sub`).
    pub user_id: String,
    /// The user's email address.
    pub email: String,
    /// Whether the user has latchkey's admin flag.
    pub admin: bool,
    /// The id of the session the token opened; stable for the token's life,
    /// unlike the token it never needs hiding.
    pub session_id: String,
    /// When the session ends unless it is used again (`exp`). It slides
    /// forward as the token is used, up to the session's absolute limit.
    pub expires_at: DateTime<Utc>,
    /// When the session was created, at log-in or registration (`iat`).
    pub issued_at: DateTime<Utc>,
}

/// latchkey's answer, in RFC 7662's words: `{"active": false}` for any token
/// that is not a live session, or every claim below for one that is.
#[derive(Deserialize)]
struct Answer {
    active: bool,
    sub: Option<String>,
    email: Option<String>,
    admin: Option<bool>,
    exp: Option<i64>,
    iat: Option<i64>,
    session_id: Option<String>,
}

/// Reads a 200 answer's body. An active answer must carry every claim: a
/// half-answer is malformed, never a half-identity.
pub(crate) fn from_answer(body: &[u8]) -> Result<Option<Identity>, Error> {
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|e| Error::Malformed(format!("not an introspection answer: {e}")))?;
    if !answer.active {
        return Ok(None);
    }
    let missing = |claim: &str| Error::Malformed(format!("an active answer without \"{claim}\""));
    Ok(Some(Identity {
        user_id: answer.sub.ok_or_else(|| missing("sub"))?,
        email: answer.email.ok_or_else(|| missing("email"))?,
        admin: answer.admin.ok_or_else(|| missing("admin"))?,
        session_id: answer.session_id.ok_or_else(|| missing("session_id"))?,
        expires_at: unix_time(answer.exp.ok_or_else(|| missing("exp"))?, "exp")?,
        issued_at: unix_time(answer.iat.ok_or_else(|| missing("iat"))?, "iat")?,
    }))
}

fn unix_time(seconds: i64, claim: &str) -> Result<DateTime<Utc>, Error> {
    DateTime::from_timestamp(seconds, 0)
        .ok_or_else(|| Error::Malformed(format!("\"{claim}\" is out of range: {seconds}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACTIVE: &str = r#"{"active": true, "sub": "0190-user", "email": "a@example.com",
        "admin": true, "exp": 1795526834, "iat": 1795440434, "session_id": "0190-session",
        "token_type": "Bearer"}"#;

    #[test]
    fn an_active_answer_becomes_an_identity_with_every_claim() {
        let identity = from_answer(ACTIVE.as_bytes()).unwrap().unwrap();

        assert_eq!(
            identity,
            Identity {
                user_id: "0190-user".into(),
                email: "a@example.com".into(),
                admin: true,
                session_id: "0190-session".into(),
                expires_at: DateTime::from_timestamp(1_795_526_834, 0).unwrap(),
                issued_at: DateTime::from_timestamp(1_795_440_434, 0).unwrap(),
            }
        );
    }

    #[test]
    fn an_inactive_answer_is_no_identity() {
        assert_eq!(from_answer(br#"{"active": false}"#).unwrap(), None);
    }

    #[test]
    fn an_active_answer_missing_a_claim_is_malformed() {
        for claim in ["sub", "email", "admin", "exp", "iat", "session_id"] {
            let mut answer: serde_json::Value = serde_json::from_str(ACTIVE).unwrap();
            answer.as_object_mut().unwrap().remove(claim);
            let body = serde_json::to_vec(&answer).unwrap();

            let error = from_answer(&body).unwrap_err();

            assert!(
                matches!(&error, Error::Malformed(m) if m.contains(claim)),
                "{claim}: {error}"
            );
        }
    }

    #[test]
    fn a_body_that_is_not_an_answer_is_malformed() {
        for body in [&b"<html>502 Bad Gateway</html>"[..], b"{}", b"", b"[true]"] {
            assert!(
                matches!(from_answer(body), Err(Error::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn an_expiry_beyond_the_calendar_is_malformed() {
        let body = ACTIVE.replace("1795526834", &i64::MAX.to_string());

        assert!(matches!(
            from_answer(body.as_bytes()),
            Err(Error::Malformed(m)) if m.contains("exp")
        ));
    }
}
