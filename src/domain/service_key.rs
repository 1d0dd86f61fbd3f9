//! Static keys that backends present to call introspection.

use std::fmt;

use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConstantTimeEq as _};

/// Shorter keys could be guessed; 32 characters of base64 is 192 bits.
pub const MIN_SERVICE_KEY_CHARS: usize = 32;

/// The accepted keys, kept only as SHA-256 digests. Several may be valid at
/// once so that a key can be rotated without downtime.
#[derive(Clone, Default)]
pub struct ServiceKeys(Vec<[u8; 32]>);

impl ServiceKeys {
    pub fn parse(keys: &[String]) -> Result<Self, String> {
        let mut digests = Vec::with_capacity(keys.len());
        for key in keys.iter().map(|k| k.trim()).filter(|k| !k.is_empty()) {
            if key.chars().count() < MIN_SERVICE_KEY_CHARS {
                return Err(format!(
                    "every key must be at least {MIN_SERVICE_KEY_CHARS} characters long"
                ));
            }
            digests.push(Sha256::digest(key.as_bytes()).into());
        }
        Ok(Self(digests))
    }

    /// Compares the presented key with every accepted key in constant time,
    /// without stopping at the first match.
    pub fn accepts(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut matched = Choice::from(0);
        for key in &self.0 {
            matched |= key.ct_eq(&digest);
        }
        bool::from(matched)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for ServiceKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceKeys({} keys)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "service-key-aaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "service-key-bbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn every_configured_key_is_accepted_and_nothing_else() {
        let keys = ServiceKeys::parse(&[A.into(), B.into()]).unwrap();
        assert!(keys.accepts(A));
        assert!(keys.accepts(B));
        assert!(!keys.accepts("service-key-cccccccccccccccccccccccccccc"));
        assert!(!keys.accepts(""));
    }

    #[test]
    fn no_keys_accept_nothing() {
        let keys = ServiceKeys::parse(&[]).unwrap();
        assert!(keys.is_empty());
        assert!(!keys.accepts(""));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(ServiceKeys::parse(&["short".into()]).is_err());
    }

    #[test]
    fn debug_shows_only_the_count() {
        let keys = ServiceKeys::parse(&[A.into()]).unwrap();
        assert_eq!(format!("{keys:?}"), "ServiceKeys(1 keys)");
    }
}
