use std::fmt;

use secrecy::{ExposeSecret as _, SecretString};

/// The longest password accepted. Passwords are pre-hashed before bcrypt,
/// so the limit is about request sizes, not bcrypt's 72-byte truncation.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// A password as typed by the user. It never prints its content.
pub struct Password(SecretString);

/// The rules a new password must satisfy (OWASP ASVS 4.0.3 2.1.1 and 2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub min_chars: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPassword {
    #[error("the password must be at least {0} characters long")]
    TooShort(usize),
    #[error("the password must be at most {MAX_PASSWORD_CHARS} characters long")]
    TooLong,
}

impl PasswordPolicy {
    /// Checks a password that is about to be stored. Length counts Unicode
    /// characters, not bytes, and nothing is trimmed or normalised: spaces
    /// and every printable character are allowed (ASVS 2.1.4).
    pub fn check(&self, raw: String) -> Result<Password, InvalidPassword> {
        let chars = raw.chars().count();
        if chars < self.min_chars {
            return Err(InvalidPassword::TooShort(self.min_chars));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(InvalidPassword::TooLong);
        }
        Ok(Password(SecretString::from(raw)))
    }
}

impl Password {
    /// A password offered to log in: not checked against the policy, since
    /// the policy may have changed since it was set. Over-long candidates are
    /// still verified (they simply never match) so their timing is the same.
    pub fn candidate(raw: String) -> Self {
        Self(SecretString::from(raw))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: PasswordPolicy = PasswordPolicy { min_chars: 12 };

    #[test]
    fn passwords_between_the_bounds_are_accepted() {
        assert!(POLICY.check("correct horse".into()).is_ok());
        assert!(POLICY.check("x".repeat(MAX_PASSWORD_CHARS)).is_ok());
    }

    #[test]
    fn short_and_long_passwords_are_refused() {
        assert_eq!(
            POLICY.check("short".into()).unwrap_err(),
            InvalidPassword::TooShort(12)
        );
        assert_eq!(
            POLICY
                .check("x".repeat(MAX_PASSWORD_CHARS + 1))
                .unwrap_err(),
            InvalidPassword::TooLong
        );
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // 12 characters, 36 bytes.
        assert!(POLICY.check("日本語日本語日本語日本語".into()).is_ok());
        assert!(POLICY.check("日本語日本語日本語日本".into()).is_err());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let password = Password::candidate("hunter2hunter2".into());
        assert!(!format!("{password:?}").contains("hunter2"));
    }
}
