//! One-time codes: password reset and email verification.
//!
//! A code is 32 bytes from the operating system's CSPRNG, base64url-encoded
//! (43 characters, safe in a link). It is shown once (in the message that
//! delivers it) and only its SHA-256 digest is stored, bound to one user
//! and one [`Purpose`]. A code of the wrong shape is refused without a
//! database query; every other failure (unknown, expired, spent,
//! superseded, other purpose) looks the same to the caller.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};

const CODE_BYTES: usize = 32;
/// 32 bytes in base64url without padding.
pub const CODE_LENGTH: usize = 43;

/// What a code may be used for. A code of one purpose never works for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    PasswordReset,
    EmailVerification,
}

impl Purpose {
    /// As stored in `one_time_codes.purpose`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "password_reset",
            Self::EmailVerification => "email_verification",
        }
    }
}

/// A freshly issued code, to be delivered once and dropped.
pub struct OneTimeCode(SecretString);

/// The SHA-256 digest of a code: what the database stores and looks up.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeDigest([u8; 32]);

/// The presented string is not shaped like a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the code is not valid")]
pub struct MalformedCode;

impl OneTimeCode {
    /// Draws 256 bits from the operating system's CSPRNG.
    pub fn generate() -> (Self, CodeDigest) {
        use rand::TryRng as _;
        let mut secret = [0u8; CODE_BYTES];
        rand::rngs::SysRng
            .try_fill_bytes(&mut secret)
            .expect("the operating system's random number generator failed");
        let code = URL_SAFE_NO_PAD.encode(secret);
        let digest = CodeDigest::of(&code);
        (Self(SecretString::from(code)), digest)
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for OneTimeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OneTimeCode([redacted])")
    }
}

impl CodeDigest {
    /// Checks a presented code's shape (surrounding whitespace, as pasted
    /// from a mail, is ignored), then digests it.
    pub fn of_presented(code: &str) -> Result<Self, MalformedCode> {
        let code = code.trim();
        let mut decoded = [0u8; CODE_BYTES + 3];
        match URL_SAFE_NO_PAD.decode_slice(code, &mut decoded) {
            Ok(CODE_BYTES) if code.len() == CODE_LENGTH => Ok(Self::of(code)),
            _ => Err(MalformedCode),
        }
    }

    fn of(code: &str) -> Self {
        Self(Sha256::digest(code.as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for CodeDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeDigest([redacted])")
    }
}

/// Fills `{code}` in a link template (the code is base64url: nothing to escape).
pub fn fill_link(template: &str, code: &OneTimeCode) -> String {
    template.replace("{code}", code.expose())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_code_is_accepted_and_digests_the_same() {
        let (code, digest) = OneTimeCode::generate();
        assert_eq!(code.expose().len(), CODE_LENGTH);
        assert_eq!(CodeDigest::of_presented(code.expose()), Ok(digest.clone()));
        let pasted = format!("  {}\n", code.expose());
        assert_eq!(CodeDigest::of_presented(&pasted), Ok(digest));
    }

    #[test]
    fn codes_differ() {
        let (a, _) = OneTimeCode::generate();
        let (b, _) = OneTimeCode::generate();
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn malformed_codes_are_refused() {
        let (code, _) = OneTimeCode::generate();
        let too_long = format!("{}A", code.expose());
        for bad in [
            "",
            "abc",
            &code.expose()[1..],
            &too_long,
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
            "lk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert_eq!(CodeDigest::of_presented(bad), Err(MalformedCode), "{bad}");
        }
    }

    #[test]
    fn debug_and_links() {
        let (code, digest) = OneTimeCode::generate();
        assert!(!format!("{code:?}{digest:?}").contains(code.expose()));
        let link = fill_link("https://app.example/reset?code={code}", &code);
        assert_eq!(
            link,
            format!("https://app.example/reset?code={}", code.expose())
        );
    }
}
