//! How many 503 answers get an access line: a quota, so that an overload
//! does not also flood the log.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// Access lines of 503 answers logged per second at most.
pub const REFUSAL_LINES_PER_SECOND: u32 = 10;
/// How often a count of the 503 answers left unlogged is logged by itself.
pub const UNLOGGED_REPORT_EVERY: Duration = Duration::from_secs(10);

/// The quota of access lines for 503 answers. Under overload (a login flood
/// that keeps the bcrypt queue full, an unreachable database) every request
/// may be refused, and a line per refusal is what makes the log grow by
/// megabytes a second: bench/run.sh's login flood wrote 26.6 MiB in 17 s, and
/// the lines cost 11-17 µs of the 86-104 µs of CPU a refusal took. Beyond
/// [`REFUSAL_LINES_PER_SECOND`] a refusal is counted instead of logged, and
/// the next refusal line logged gives that count as `unlogged` (or, within
/// [`UNLOGGED_REPORT_EVERY`], a line of its own, message `503 answers not
/// logged`). `latchkey_http_requests_total` still counts every request.
pub struct RefusalLines<C: Clock = DefaultClock> {
    quota: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
    unlogged: AtomicU64,
}

impl RefusalLines {
    pub fn new() -> Self {
        Self::with_clock(DefaultClock::default())
    }
}

impl Default for RefusalLines {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Clock> RefusalLines<C> {
    fn with_clock(clock: C) -> Self {
        let per_second = NonZeroU32::new(REFUSAL_LINES_PER_SECOND).expect("a positive quota");
        Self {
            quota: RateLimiter::direct_with_clock(Quota::per_second(per_second), clock),
            unlogged: AtomicU64::new(0),
        }
    }

    /// Takes the count of refusals left unlogged so far.
    pub fn take_unlogged(&self) -> u64 {
        self.unlogged.swap(0, Ordering::Relaxed)
    }

    /// For one refusal: `Some(refusals left unlogged since the last line)`
    /// when its line is to be logged, `None` when it is only counted.
    pub fn admit(&self) -> Option<u64> {
        if self.quota.check().is_ok() {
            Some(self.take_unlogged())
        } else {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_lines_beyond_the_quota_are_counted_in_the_next_line() {
        let clock = governor::clock::FakeRelativeClock::default();
        let lines = RefusalLines::with_clock(clock.clone());
        for _ in 0..REFUSAL_LINES_PER_SECOND {
            assert_eq!(lines.admit(), Some(0));
        }
        for _ in 0..25 {
            assert_eq!(lines.admit(), None);
        }
        clock.advance(Duration::from_secs(1));
        assert_eq!(lines.admit(), Some(25), "the first line after the gap");
        assert_eq!(lines.admit(), Some(0), "the count is given once");
        // 8 lines of this second's 10 are left: 5 more refusals go unlogged,
        // and whoever takes the count gets them, once.
        for _ in 0..REFUSAL_LINES_PER_SECOND + 3 {
            lines.admit();
        }
        assert_eq!(lines.take_unlogged(), 5);
        assert_eq!(lines.take_unlogged(), 0);
    }
}
