//! The optional in-process cache of positive answers.
//!
//! Only live tokens are remembered, each under the SHA-256 digest of the
//! token (the token itself is never kept), until the earlier of the TTL and
//! the token's own `exp`. A refusal is never remembered: a token latchkey
//! did not accept is asked about again next time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest as _, Sha256};

use crate::Identity;

/// How long, and how many, positive answers are remembered.
///
/// A TTL of N seconds means: **a token that is logged out or revoked at
/// latchkey may still be accepted by this process for up to N seconds**.
/// Keep it short (a few seconds absorbs bursts of requests with the same
/// token) and leave the cache off where a logout must take effect at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long a positive answer is reused. Never longer than the token's
    /// own expiry (`exp`).
    pub ttl: Duration,
    /// At most this many answers are kept; when full, the oldest makes room.
    pub max_entries: usize,
}

/// The SHA-256 digest of a token: the only form in which it is kept.
pub(crate) type TokenDigest = [u8; 32];

pub(crate) fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

pub(crate) struct Cache {
    config: CacheConfig,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<TokenDigest, Entry>,
    /// Digests in insertion order, oldest first, each with the generation of
    /// its entry: an item whose entry was removed or replaced since is stale
    /// and skipped.
    order: VecDeque<(TokenDigest, u64)>,
    next_generation: u64,
}

struct Entry {
    identity: Identity,
    until: Instant,
    generation: u64,
}

impl Cache {
    pub(crate) fn new(config: CacheConfig) -> Self {
        Self {
            config,
            state: Mutex::new(State::default()),
        }
    }

    pub(crate) fn config(&self) -> CacheConfig {
        self.config
    }

    /// The remembered identity, if it is still fresh at `now`.
    pub(crate) fn get(&self, key: &TokenDigest, now: Instant) -> Option<Identity> {
        let mut state = self.lock();
        let entry = state.entries.get(key)?;
        if now < entry.until {
            return Some(entry.identity.clone());
        }
        state.entries.remove(key);
        None
    }

    /// Remembers a positive answer received at `now` (monotonic) / `wall`
    /// (the clock `exp` is read against), unless the token is already
    /// expired by the clock.
    pub(crate) fn insert(
        &self,
        key: TokenDigest,
        identity: Identity,
        now: Instant,
        wall: SystemTime,
    ) {
        let left = SystemTime::from(identity.expires_at)
            .duration_since(wall)
            .unwrap_or(Duration::ZERO);
        let fresh_for = left.min(self.config.ttl);
        let mut state = self.lock();
        if fresh_for.is_zero() {
            state.entries.remove(&key);
            return;
        }
        state.entries.remove(&key);
        while state.entries.len() >= self.config.max_entries {
            if !state.evict_oldest() {
                break;
            }
        }
        let generation = state.next_generation;
        state.next_generation += 1;
        state.entries.insert(
            key,
            Entry {
                identity,
                until: now + fresh_for,
                generation,
            },
        );
        state.order.push_back((key, generation));
        // Items of entries removed on expiry pile up in `order`; drop them
        // before it grows past twice the bound.
        if state.order.len() > 2 * self.config.max_entries {
            let State { entries, order, .. } = &mut *state;
            order.retain(|(key, generation)| {
                entries
                    .get(key)
                    .is_some_and(|e| e.generation == *generation)
            });
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something ever did, the
        // map is still consistent (each step leaves it so).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Removes the oldest live entry; false when there is none.
    fn evict_oldest(&mut self) -> bool {
        while let Some((key, generation)) = self.order.pop_front() {
            if self
                .entries
                .get(&key)
                .is_some_and(|e| e.generation == generation)
            {
                self.entries.remove(&key);
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn identity(user: &str, expires_in: Duration, wall: SystemTime) -> Identity {
        let expires_at = DateTime::from(wall + expires_in);
        Identity {
            user_id: user.into(),
            email: format!("{user}@example.com"),
            admin: false,
            session_id: format!("{user}-session"),
            expires_at,
            issued_at: expires_at,
        }
    }

    fn cache(ttl: Duration, max_entries: usize) -> Cache {
        Cache::new(CacheConfig { ttl, max_entries })
    }

    #[test]
    fn the_key_is_the_sha256_of_the_token_not_the_token() {
        let key = digest("lk_secret");

        assert_eq!(key, <[u8; 32]>::from(Sha256::digest(b"lk_secret")));
        assert_ne!(&key[..9], b"lk_secret");
    }

    #[test]
    fn an_answer_is_reused_until_the_ttl_and_not_after() {
        let cache = cache(Duration::from_secs(5), 10);
        let (now, wall) = (Instant::now(), SystemTime::now());
        let alice = identity("alice", HOUR, wall);
        cache.insert(digest("a"), alice.clone(), now, wall);

        assert_eq!(cache.get(&digest("a"), now), Some(alice.clone()));
        assert_eq!(
            cache.get(&digest("a"), now + Duration::from_millis(4999)),
            Some(alice)
        );
        assert_eq!(cache.get(&digest("a"), now + Duration::from_secs(5)), None);
        assert_eq!(cache.len(), 0, "the expired entry is dropped when met");
    }

    #[test]
    fn an_answer_never_outlives_the_tokens_own_expiry() {
        let cache = cache(HOUR, 10);
        let (now, wall) = (Instant::now(), SystemTime::now());
        cache.insert(
            digest("a"),
            identity("alice", Duration::from_secs(2), wall),
            now,
            wall,
        );

        assert!(
            cache
                .get(&digest("a"), now + Duration::from_secs(1))
                .is_some()
        );
        assert_eq!(cache.get(&digest("a"), now + Duration::from_secs(2)), None);
    }

    #[test]
    fn a_token_already_expired_by_the_clock_is_not_remembered() {
        let cache = cache(HOUR, 10);
        let (now, wall) = (Instant::now(), SystemTime::now());
        let expired = identity("alice", Duration::ZERO, wall - Duration::from_secs(1));

        cache.insert(digest("a"), expired, now, wall);

        assert_eq!(cache.get(&digest("a"), now), None);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn when_full_the_oldest_answer_makes_room() {
        let cache = cache(HOUR, 2);
        let (now, wall) = (Instant::now(), SystemTime::now());
        for user in ["a", "b", "c"] {
            cache.insert(digest(user), identity(user, HOUR, wall), now, wall);
        }

        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&digest("a"), now), None);
        assert!(cache.get(&digest("b"), now).is_some());
        assert!(cache.get(&digest("c"), now).is_some());
    }

    #[test]
    fn an_answer_asked_again_replaces_the_old_one_without_growing_the_cache() {
        let cache = cache(HOUR, 2);
        let (now, wall) = (Instant::now(), SystemTime::now());
        cache.insert(digest("a"), identity("a", HOUR, wall), now, wall);
        cache.insert(digest("b"), identity("b", HOUR, wall), now, wall);
        let admin = Identity {
            admin: true,
            ..identity("a", HOUR, wall)
        };

        cache.insert(digest("a"), admin.clone(), now, wall);
        cache.insert(digest("c"), identity("c", HOUR, wall), now, wall);

        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&digest("a"), now), Some(admin));
        assert_eq!(cache.get(&digest("b"), now), None, "b was the oldest");
    }

    #[test]
    fn the_insertion_order_stays_bounded_while_entries_expire() {
        let cache = cache(Duration::from_secs(1), 4);
        let wall = SystemTime::now();
        let start = Instant::now();
        for round in 0..1000u64 {
            let now = start + Duration::from_secs(round * 2);
            cache.insert(digest("a"), identity("a", HOUR, wall), now, wall);
            assert!(
                cache
                    .get(&digest("a"), now + Duration::from_secs(1))
                    .is_none()
            );
        }

        assert!(cache.lock().order.len() <= 8);
    }
}
