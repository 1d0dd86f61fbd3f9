//! Session tokens: `lk_` + base64url(32 random bytes ‖ 4-byte checksum).
//!
//! The prefix lets secret scanners recognise a leaked token; the checksum
//! lets a mistyped or forged token be refused without touching the database.
//! Only the SHA-256 digest of a token is ever stored or compared.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

pub const TOKEN_PREFIX: &str = "lk_";
const SECRET_BYTES: usize = 32;
const CHECKSUM_BYTES: usize = 4;
const PAYLOAD_BYTES: usize = SECRET_BYTES + CHECKSUM_BYTES;
/// 36 bytes encode to exactly 48 base64 characters, with no padding bits.
const ENCODED_PAYLOAD_CHARS: usize = PAYLOAD_BYTES / 3 * 4;
pub const TOKEN_LENGTH: usize = TOKEN_PREFIX.len() + ENCODED_PAYLOAD_CHARS;

/// A freshly issued token. It is shown to its owner once and then dropped.
pub struct SessionToken(SecretString);

/// The SHA-256 digest of a token: what the database stores and looks up.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a latchkey token")]
    Malformed,
    #[error("the token's checksum does not match")]
    BadChecksum,
}

impl SessionToken {
    /// Draws 256 bits from the operating system's CSPRNG.
    pub fn generate() -> (Self, TokenDigest) {
        use rand::TryRng as _;
        let mut secret = [0u8; SECRET_BYTES];
        rand::rngs::SysRng
            .try_fill_bytes(&mut secret)
            .expect("the operating system's random number generator failed");
        let mut payload = [0u8; PAYLOAD_BYTES];
        payload[..SECRET_BYTES].copy_from_slice(&secret);
        payload[SECRET_BYTES..].copy_from_slice(&checksum(&secret));
        let mut token = String::with_capacity(TOKEN_LENGTH);
        token.push_str(TOKEN_PREFIX);
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let digest = TokenDigest::of(&token);
        (Self(SecretString::from(token)), digest)
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken([redacted])")
    }
}

impl TokenDigest {
    /// Checks a presented token's shape and checksum, then digests it.
    /// Allocation-free: this runs on every authenticated request.
    pub fn of_presented(token: &str) -> Result<Self, TokenError> {
        let encoded = token
            .strip_prefix(TOKEN_PREFIX)
            .filter(|rest| rest.len() == ENCODED_PAYLOAD_CHARS)
            .ok_or(TokenError::Malformed)?;
        let mut payload = [0u8; PAYLOAD_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(encoded, &mut payload) {
            Ok(PAYLOAD_BYTES) => {}
            _ => return Err(TokenError::Malformed),
        }
        let (secret, presented_checksum) = payload.split_at(SECRET_BYTES);
        if !bool::from(checksum(secret).ct_eq(presented_checksum)) {
            return Err(TokenError::BadChecksum);
        }
        Ok(Self::of(token))
    }

    fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Digests never appear in logs either.
impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenDigest([redacted])")
    }
}

fn checksum(secret: &[u8]) -> [u8; CHECKSUM_BYTES] {
    let digest = Sha256::new_with_prefix(b"latchkey-token-checksum")
        .chain_update(secret)
        .finalize();
    let mut out = [0u8; CHECKSUM_BYTES];
    out.copy_from_slice(&digest[..CHECKSUM_BYTES]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_prefix_and_length() {
        let (token, _) = SessionToken::generate();
        assert!(token.expose().starts_with("lk_"));
        assert_eq!(token.expose().len(), TOKEN_LENGTH);
        assert!(
            token.expose()[3..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn generated_tokens_are_distinct() {
        let (a, _) = SessionToken::generate();
        let (b, _) = SessionToken::generate();
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn a_generated_token_parses_to_its_digest() {
        let (token, digest) = SessionToken::generate();
        assert_eq!(TokenDigest::of_presented(token.expose()), Ok(digest));
    }

    #[test]
    fn the_digest_is_sha256_of_the_token() {
        let (token, digest) = SessionToken::generate();
        let expected: [u8; 32] = Sha256::digest(token.expose().as_bytes()).into();
        assert_eq!(digest.as_bytes(), expected);
    }

    #[test]
    fn a_single_changed_character_fails_the_checksum() {
        let (token, _) = SessionToken::generate();
        let mut chars: Vec<char> = token.expose().chars().collect();
        let i = 10;
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(
            TokenDigest::of_presented(&typo),
            Err(TokenError::BadChecksum)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        let (token, _) = SessionToken::generate();
        let valid = token.expose();
        for bad in [
            "",
            "lk_",
            "Bearer",
            "lk_short",
            &valid[3..],                        // no prefix
            &format!("LK_{}", &valid[3..]),     // wrong prefix case
            &format!("{valid}A"),               // too long
            &valid[..valid.len() - 1],          // too short
            &format!("lk_{}", "!".repeat(48)),  // not base64url
            &format!("lk_{}", "+".repeat(48)),  // standard, not url-safe, alphabet
            &format!("lk_{}é", "A".repeat(46)), // non-ASCII
        ] {
            assert_eq!(
                TokenDigest::of_presented(bad),
                Err(TokenError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn debug_never_shows_secrets() {
        let (token, digest) = SessionToken::generate();
        assert_eq!(format!("{token:?}"), "SessionToken([redacted])");
        assert_eq!(format!("{digest:?}"), "TokenDigest([redacted])");
    }
}
