//! Throttling of password guessing, sign-up floods, recovery mail and code
//! guessing (OWASP ASVS 2.2.1), shared by every instance on the database.
//!
//! Each limit is a token bucket kept as one row of `throttle_buckets`
//! (GCRA: the bucket's "theoretical arrival time"): per account and per
//! client IP for login, per IP for registration, per address and per IP for
//! recovery mail, per IP for code uses. With N instances on one database an
//! attacker gets the configured limit, not N times it. A throttled request
//! is refused with 429 and `Retry-After` after one small read and before
//! any bcrypt run, with the same answer whether or not the account exists
//! (the per-account bucket is keyed by the normalised email, existing or
//! not). Bucket rows are named by a SHA-256 of their key: the table holds
//! no email or address. This module decides; `store::throttle_buckets`
//! reads and writes.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use actix_web::HttpRequest;
use chrono::{NaiveDateTime, TimeDelta};
use governor::{DefaultKeyedRateLimiter, Quota};
use sha2::{Digest as _, Sha256};

pub use crate::settings::ThrottleSettings;

/// One bucket a request takes a token from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// SHA-256 (hex) of the bucket's kind and key.
    pub key: String,
    /// Time for one token to come back.
    interval: TimeDelta,
    /// How far ahead of now the arrival time may run: (burst − 1) intervals.
    tolerance: TimeDelta,
}

impl Bucket {
    /// `per_hour` requests an hour, a tenth of them (at least one) at once;
    /// `None` when the limit is off (0).
    fn new(kind: &str, key: &str, per_hour: u32) -> Option<Self> {
        let per_hour = NonZeroU32::new(per_hour)?;
        let interval = TimeDelta::microseconds(3_600_000_000 / i64::from(per_hour.get()));
        let burst = (per_hour.get() / 10).max(1);
        let digest = Sha256::digest(format!("{kind}:{key}").as_bytes());
        Some(Self {
            key: format!("{digest:x}"),
            interval,
            tolerance: interval * (burst as i32 - 1),
        })
    }

    pub fn interval_std(&self) -> Duration {
        self.interval.to_std().unwrap_or(Duration::from_secs(1))
    }
}

/// GCRA: with the bucket's arrival time `tat` (none: a full bucket), admit
/// a request at `now` and give the new arrival time, or say how long to
/// wait (whole seconds are what Retry-After can say: at least one).
pub fn decide(
    tat: Option<NaiveDateTime>,
    now: NaiveDateTime,
    bucket: &Bucket,
) -> Result<NaiveDateTime, Duration> {
    let base = tat.map_or(now, |tat| tat.max(now));
    let ahead = base - now;
    if ahead > bucket.tolerance {
        let wait = (ahead - bucket.tolerance).to_std().unwrap_or_default();
        return Err(wait.max(Duration::from_secs(1)));
    }
    Ok(base + bucket.interval)
}

pub struct Throttle {
    settings: ThrottleSettings,
    /// At most one `login_throttled` event per account a minute, however
    /// long a guessing run goes on (per process: it only thins the trail).
    throttled_events: DefaultKeyedRateLimiter<String>,
}

impl Throttle {
    pub fn new(settings: &ThrottleSettings) -> Self {
        Self {
            settings: settings.clone(),
            throttled_events: DefaultKeyedRateLimiter::keyed(Quota::per_minute(NonZeroU32::MIN)),
        }
    }

    /// The buckets of a login attempt for `account` (a normalised email, or
    /// the raw string when it is not one): per client IP, per account.
    pub fn login(&self, req: &HttpRequest, account: &str) -> Vec<Bucket> {
        let s = &self.settings;
        self.per_ip(req, "login-ip", s.login_per_ip_per_hour)
            .into_iter()
            .chain(Bucket::new(
                "login-account",
                account,
                s.login_per_account_per_hour,
            ))
            .collect()
    }

    pub fn registration(&self, req: &HttpRequest) -> Vec<Bucket> {
        self.per_ip(req, "register-ip", self.settings.register_per_ip_per_hour)
            .into_iter()
            .collect()
    }

    /// A request that sends a message to `email` (a password recovery, a
    /// verification mail): per client IP, and per address whether or not
    /// it belongs to anyone.
    pub fn recovery(&self, req: &HttpRequest, email: &str) -> Vec<Bucket> {
        let mut buckets = self.code_use(req);
        buckets.extend(Bucket::new(
            "recovery-email",
            email,
            self.settings.recovery_per_email_per_hour,
        ));
        buckets
    }

    /// An attempt to use a one-time code (guessing is throttled per client
    /// IP; the code itself names no account to throttle).
    pub fn code_use(&self, req: &HttpRequest) -> Vec<Bucket> {
        self.per_ip(req, "recovery-ip", self.settings.recovery_per_ip_per_hour)
            .into_iter()
            .collect()
    }

    fn per_ip(&self, req: &HttpRequest, kind: &str, per_hour: u32) -> Option<Bucket> {
        let ip = self.client_ip(req)?;
        Bucket::new(kind, &ip.to_string(), per_hour)
    }

    /// Whether a throttled login of `account` should be recorded as a
    /// security event now (once a minute per account).
    pub fn should_record_throttled(&self, account: &str) -> bool {
        self.throttled_events.check_key(&account.to_owned()).is_ok()
    }

    /// Forgets the event limiter's full buckets, so memory follows the
    /// number of recently throttled accounts.
    pub fn forget_idle(&self) {
        self.throttled_events.retain_recent();
        self.throttled_events.shrink_to_fit();
    }

    /// The client's address: the TCP peer, or with a trusted proxy header
    /// configured, the address that proxy wrote. Never a header a client
    /// could set itself.
    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        if let Some(header) = &self.settings.trusted_proxy_header {
            let forwarded = req
                .headers()
                .get(header)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|ip| ip.trim().parse().ok());
            if forwarded.is_some() {
                return forwarded;
            }
        }
        req.peer_addr().map(|addr| addr.ip())
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderName;
    use actix_web::test::TestRequest;

    use super::*;

    fn at(seconds: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_800_000_000 + seconds, 0)
            .unwrap()
            .naive_utc()
    }

    /// Runs `n` requests at `now` against one bucket, as the store would.
    fn run(
        bucket: &Bucket,
        tat: &mut Option<NaiveDateTime>,
        now: NaiveDateTime,
        n: usize,
    ) -> Vec<bool> {
        (0..n)
            .map(|_| match decide(*tat, now, bucket) {
                Ok(next) => {
                    *tat = Some(next);
                    true
                }
                Err(_) => false,
            })
            .collect()
    }

    #[test]
    fn a_bucket_admits_its_burst_then_one_per_interval() {
        // 100 an hour: a burst of 10, then one every 36 s.
        let bucket = Bucket::new("login-account", "alice@example.com", 100).unwrap();
        let mut tat = None;
        let admitted = run(&bucket, &mut tat, at(0), 11);
        assert_eq!(admitted.iter().filter(|a| **a).count(), 10);
        let Err(wait) = decide(tat, at(0), &bucket) else {
            panic!("the 11th attempt was admitted")
        };
        assert!(
            wait >= Duration::from_secs(1) && wait <= Duration::from_secs(36),
            "{wait:?}"
        );
        assert_eq!(run(&bucket, &mut tat, at(35), 1), [false]);
        assert_eq!(run(&bucket, &mut tat, at(36), 2), [true, false]);
        // After an idle hour the bucket is full again.
        assert_eq!(
            run(&bucket, &mut tat, at(3_700), 11)
                .iter()
                .filter(|a| **a)
                .count(),
            10
        );
    }

    #[test]
    fn a_limit_of_ten_an_hour_is_one_at_a_time() {
        let bucket = Bucket::new("recovery-email", "a@example.com", 10).unwrap();
        let mut tat = None;
        assert_eq!(run(&bucket, &mut tat, at(0), 2), [true, false]);
        let Err(wait) = decide(tat, at(0), &bucket) else {
            panic!()
        };
        assert_eq!(wait, Duration::from_secs(360));
    }

    #[test]
    fn zero_disables_a_limit_and_keys_are_digests() {
        assert!(Bucket::new("login-ip", "10.0.0.1", 0).is_none());
        let bucket = Bucket::new("login-account", "alice@example.com", 10).unwrap();
        assert_eq!(bucket.key.len(), 64);
        assert!(!bucket.key.contains("alice"));
        assert_ne!(
            bucket,
            Bucket::new("login-ip", "alice@example.com", 10).unwrap()
        );
    }

    #[test]
    fn the_trusted_proxy_header_names_the_client() {
        let settings = ThrottleSettings {
            login_per_ip_per_hour: 10,
            trusted_proxy_header: Some(HeaderName::from_static("x-forwarded-for")),
            ..ThrottleSettings::default()
        };
        let throttle = Throttle::new(&settings);
        let via_proxy = |client: &str| {
            TestRequest::default()
                .peer_addr("127.0.0.1:40000".parse().unwrap())
                .insert_header(("x-forwarded-for", format!("203.0.113.9, {client}")))
                .to_http_request()
        };
        let a = throttle.login(&via_proxy("198.51.100.1"), "a@example.com");
        let b = throttle.login(&via_proxy("198.51.100.2"), "a@example.com");
        assert_eq!(a.len(), 1, "only the per-IP limit is on");
        assert_ne!(a, b, "each forwarded client has its own bucket");
        assert_eq!(
            throttle.client_ip(&via_proxy("198.51.100.1")),
            Some("198.51.100.1".parse().unwrap())
        );
    }
}
