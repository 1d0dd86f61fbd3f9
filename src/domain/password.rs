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
    #[error(
        "the password is too easy to guess (a common password, or made of common passwords, repeats or sequences)"
    )]
    Common,
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
        if is_common(&raw) {
            return Err(InvalidPassword::Common);
        }
        Ok(Password(SecretString::from(raw)))
    }
}

/// Whether the password is one an attacker tries first: zxcvbn (with the
/// list of common passwords it ships) estimates under a million guesses —
/// a listed password like `password1234`, or one built of listed passwords,
/// keyboard walks, repeats or sequences (OWASP ASVS 2.1.7). Nothing else is
/// imposed: a long passphrase of ordinary words passes.
fn is_common(raw: &str) -> bool {
    zxcvbn::zxcvbn(raw, &[]).score() <= zxcvbn::Score::One
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

    /// `len` characters with no pattern zxcvbn would call easy.
    fn varied(len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ALPHABET[(state >> 33) as usize % ALPHABET.len()] as char
            })
            .collect()
    }

    #[test]
    fn passwords_between_the_bounds_are_accepted() {
        assert!(POLICY.check("correct horse".into()).is_ok());
        assert!(POLICY.check(varied(MAX_PASSWORD_CHARS)).is_ok());
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
    fn common_passwords_are_refused() {
        for common in [
            "password1234",
            "Password1234",
            "qwertyuiop123",
            "1234567890123",
            "aaaaaaaaaaaa",
            "trustno1trustno1",
        ] {
            assert_eq!(
                POLICY.check(common.into()).unwrap_err(),
                InvalidPassword::Common,
                "{common}"
            );
        }
    }

    #[test]
    fn passphrases_of_common_words_are_accepted() {
        for fine in [
            "correct horse battery staple",
            "a long admin passphrase",
            "Tr0ub4dor&3xyz",
        ] {
            assert!(POLICY.check(fine.into()).is_ok(), "{fine}");
        }
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // 12 characters, 36 bytes.
        assert!(POLICY.check("東京大阪名古屋札幌福岡神".into()).is_ok());
        assert!(POLICY.check("東京大阪名古屋札幌福岡".into()).is_err());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let password = Password::candidate("hunter2hunter2".into());
        assert!(!format!("{password:?}").contains("hunter2"));
    }
}
