//! When a session ends, and when an authorized request must write.

use chrono::{NaiveDateTime, SubsecRound as _, TimeDelta, Utc};

/// The current time in UTC, truncated to microseconds: the precision both
/// MySQL's DATETIME(6) and our SQLite text timestamps keep, so a value
/// computed here compares equal to the value read back.
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

/// The timeouts that govern every session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session ends this long after its last use…
    pub idle_timeout: TimeDelta,
    /// …and this long after it was created, however active it is.
    pub absolute_timeout: TimeDelta,
    /// Uses closer together than this do not write a new `last_updated_at`.
    pub touch_interval: TimeDelta,
}

impl SessionPolicy {
    /// The moment the session ends if it is not used again.
    pub fn expires_at(
        &self,
        created_at: NaiveDateTime,
        last_updated_at: NaiveDateTime,
    ) -> NaiveDateTime {
        // Saturating: settings validation keeps timeouts far inside chrono's
        // range, but a bad row must not be able to panic a request.
        let after = |at: NaiveDateTime, by: TimeDelta| {
            at.checked_add_signed(by).unwrap_or(NaiveDateTime::MAX)
        };
        after(last_updated_at, self.idle_timeout).min(after(created_at, self.absolute_timeout))
    }

    pub fn is_live(
        &self,
        created_at: NaiveDateTime,
        last_updated_at: NaiveDateTime,
        now: NaiveDateTime,
    ) -> bool {
        now < self.expires_at(created_at, last_updated_at)
    }

    /// Whether a use at `now` should write `last_updated_at`. With a zero
    /// interval every use writes.
    pub fn needs_touch(&self, last_updated_at: NaiveDateTime, now: NaiveDateTime) -> bool {
        now - last_updated_at >= self.touch_interval && now > last_updated_at
    }

    /// Sessions last used at or before this instant are idle-expired.
    pub fn idle_cutoff(&self, now: NaiveDateTime) -> NaiveDateTime {
        before(now, self.idle_timeout)
    }

    /// Sessions created at or before this instant are past their absolute limit.
    pub fn absolute_cutoff(&self, now: NaiveDateTime) -> NaiveDateTime {
        before(now, self.absolute_timeout)
    }
}

fn before(at: NaiveDateTime, by: TimeDelta) -> NaiveDateTime {
    at.checked_sub_signed(by).unwrap_or(NaiveDateTime::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(idle: i64, absolute: i64, touch: i64) -> SessionPolicy {
        SessionPolicy {
            idle_timeout: TimeDelta::seconds(idle),
            absolute_timeout: TimeDelta::seconds(absolute),
            touch_interval: TimeDelta::seconds(touch),
        }
    }

    fn t(seconds: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_800_000_000 + seconds, 0)
            .unwrap()
            .naive_utc()
    }

    #[test]
    fn expiry_is_the_earlier_of_idle_and_absolute() {
        let p = policy(100, 1_000, 0);
        assert_eq!(p.expires_at(t(0), t(50)), t(150));
        assert_eq!(p.expires_at(t(0), t(950)), t(1_000));
    }

    #[test]
    fn a_session_is_live_strictly_before_its_expiry() {
        let p = policy(100, 1_000, 0);
        assert!(p.is_live(t(0), t(0), t(99)));
        assert!(!p.is_live(t(0), t(0), t(100)));
    }

    #[test]
    fn activity_slides_the_idle_deadline() {
        let p = policy(100, 1_000, 0);
        assert!(!p.is_live(t(0), t(0), t(150)));
        assert!(p.is_live(t(0), t(90), t(150)));
    }

    #[test]
    fn activity_never_extends_past_the_absolute_limit() {
        let p = policy(100, 1_000, 0);
        assert!(!p.is_live(t(0), t(999), t(1_000)));
    }

    #[test]
    fn touches_are_coalesced_within_the_interval() {
        let p = policy(100, 1_000, 60);
        assert!(!p.needs_touch(t(0), t(59)));
        assert!(p.needs_touch(t(0), t(60)));
    }

    #[test]
    fn a_zero_interval_touches_on_every_later_use() {
        let p = policy(100, 1_000, 0);
        assert!(p.needs_touch(t(0), t(1)));
        // Never move last_updated_at backwards or write the same value again.
        assert!(!p.needs_touch(t(5), t(5)));
        assert!(!p.needs_touch(t(5), t(4)));
    }

    #[test]
    fn huge_timeouts_saturate_instead_of_panicking() {
        let p = SessionPolicy {
            idle_timeout: TimeDelta::MAX,
            absolute_timeout: TimeDelta::MAX,
            touch_interval: TimeDelta::zero(),
        };
        assert_eq!(p.expires_at(t(0), t(0)), NaiveDateTime::MAX);
        assert_eq!(p.idle_cutoff(t(0)), NaiveDateTime::MIN);
        assert!(p.is_live(t(0), t(0), t(1)));
    }

    #[test]
    fn now_has_microsecond_precision() {
        use chrono::Timelike as _;
        assert_eq!(now().nanosecond() % 1_000, 0);
    }
}
