//! Typed settings, validated once at start-up and passed in; never global.
//!
//! Defaults, and why:
//! - idle timeout 24 h and absolute timeout 30 days: a phone used daily stays
//!   signed in, an abandoned one is signed out by the next day, and nobody
//!   keeps a session longer than OWASP ASVS level 1's 30 days. Level 2
//!   deployments should lower them (e.g. 30 min / 12 h).
//! - touch interval 60 s: at most one write per session per minute, so the
//!   hot path is a single indexed read; an idle deadline is late by at most
//!   a minute in a day.

use std::time::Duration;

use actix_web::http::header::HeaderName;
use chrono::TimeDelta;
use secrecy::SecretString;

use crate::db::{DatabaseUrl, PoolOptions};
use crate::delivery::config::Delivery;
use crate::domain::{PasswordPolicy, ServiceKeys, SessionPolicy};

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_IDLE_TIMEOUT: &str = "86400";
pub const DEFAULT_ABSOLUTE_TIMEOUT: &str = "2592000";
pub const DEFAULT_TOUCH_INTERVAL: &str = "60";
pub const DEFAULT_SESSIONS_PER_USER: u32 = 10;
pub const DEFAULT_BCRYPT_COST: u32 = 12;
pub const DEFAULT_BCRYPT_QUEUE: usize = 64;
/// Seconds a password check may wait for a bcrypt thread before its request
/// is answered 503: a full queue drains in about 7 s at cost 12 on 2 cores.
pub const DEFAULT_BCRYPT_MAX_WAIT: &str = "10";
pub const DEFAULT_PASSWORD_MIN_LENGTH: usize = 12;
/// 0: two connections per HTTP worker (see [`Settings::pool_size`]).
pub const DEFAULT_DB_POOL_SIZE: u32 = 0;
/// Connections per HTTP worker when the pool size is left at 0.
pub const DB_CONNECTIONS_PER_WORKER: u32 = 2;
pub const DEFAULT_DB_ACQUIRE_TIMEOUT: &str = "2";
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024;
pub const DEFAULT_CLIENT_TIMEOUT: &str = "5";
pub const DEFAULT_REAP_INTERVAL: &str = "300";
pub const DEFAULT_REAP_BATCH: i64 = 1_000;
/// ASVS 2.2.1 allows at most 100 failed attempts an hour per account.
pub const DEFAULT_LOGIN_PER_ACCOUNT_PER_HOUR: u32 = 100;
/// Looser than per account: many users may share one address (NAT, office).
pub const DEFAULT_LOGIN_PER_IP_PER_HOUR: u32 = 1_000;
pub const DEFAULT_REGISTER_PER_IP_PER_HOUR: u32 = 100;
/// OWASP's Forgot Password Cheat Sheet: reset codes short-lived.
pub const DEFAULT_RESET_TTL: &str = "30m";
pub const DEFAULT_VERIFY_TTL: &str = "24h";
pub const DEFAULT_EVENT_RETENTION: &str = "90days";
/// Password-recovery and verification mails per address per hour (one may
/// come at once): enough for a user who lost a mail, too few to spam anyone.
pub const DEFAULT_RECOVERY_PER_EMAIL_PER_HOUR: u32 = 5;
pub const DEFAULT_RECOVERY_PER_IP_PER_HOUR: u32 = 100;
/// Ten years: longer is "never" in practice, and past a few thousand years
/// `now + timeout` would leave the range of chrono and of MySQL's DATETIME.
pub const MAX_TIMEOUT_DAYS: i64 = 3_650;

fn max_timeout() -> TimeDelta {
    TimeDelta::days(MAX_TIMEOUT_DAYS)
}

/// Everything `latchkey serve` needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: String,
    pub database_url: DatabaseUrl,
    pub session: SessionPolicy,
    pub sessions_per_user: u32,
    pub password: PasswordPolicy,
    pub hashing: HashingSettings,
    pub pool: PoolOptions,
    /// actix-web worker threads; 0 means one per core.
    pub workers: usize,
    pub max_body_bytes: usize,
    /// How long a client may take to send a request's head (slowloris).
    pub client_timeout: Duration,
    /// Keys that backends present to `POST /auth/introspect`.
    pub introspect_keys: ServiceKeys,
    /// How often the reaper deletes expired sessions; zero disables it.
    pub reap_interval: Duration,
    /// Rows the reaper deletes per statement.
    pub reap_batch: i64,
    /// Serve `/metrics` on this address instead of the API's.
    pub metrics_bind: Option<String>,
    pub throttle: ThrottleSettings,
    pub account: AccountSettings,
    /// How one-time codes reach users: SMTP, a webhook, or not at all.
    pub delivery: Delivery,
}

/// The account lifecycle: one-time codes, verification, the event trail.
#[derive(Debug, Clone)]
pub struct AccountSettings {
    /// How long a password reset code works.
    pub reset_ttl: TimeDelta,
    /// How long an email verification code works.
    pub verify_ttl: TimeDelta,
    /// Link templates with `{code}`, e.g. `https://app.example/reset?code={code}`.
    pub reset_link: Option<String>,
    pub verify_link: Option<String>,
    /// Refuse logins (403 `email_unverified`) until the email is verified.
    pub require_verified_email: bool,
    /// Security events older than this are deleted by the reaper.
    pub event_retention: TimeDelta,
}

impl AccountSettings {
    pub fn with_defaults() -> Self {
        let delta = |s: &str| to_delta(parse_duration(s).expect("the default durations are valid"));
        Self {
            reset_ttl: delta(DEFAULT_RESET_TTL),
            verify_ttl: delta(DEFAULT_VERIFY_TTL),
            reset_link: None,
            verify_link: None,
            require_verified_email: false,
            event_retention: delta(DEFAULT_EVENT_RETENTION),
        }
    }
}

/// A link template must carry the code.
pub fn parse_link_template(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if !raw.contains("{code}") {
        return Err("must contain {code}, e.g. https://app.example/reset?code={code}".into());
    }
    if !(raw.starts_with("https://") || raw.starts_with("http://") || raw.contains("://")) {
        return Err("must be a URL, e.g. https://app.example/reset?code={code}".into());
    }
    Ok(raw.to_owned())
}

/// Attempts per hour, each limit 0 to disable it.
#[derive(Debug, Clone, Default)]
pub struct ThrottleSettings {
    pub login_per_account_per_hour: u32,
    pub login_per_ip_per_hour: u32,
    pub register_per_ip_per_hour: u32,
    /// Password-recovery and verification requests per email address.
    pub recovery_per_email_per_hour: u32,
    /// Password-recovery requests and one-time code uses per client IP.
    pub recovery_per_ip_per_hour: u32,
    /// Take the client IP from this header (the right-most address, the one
    /// the trusted proxy appended) instead of the TCP peer. Only set this
    /// behind a proxy that always writes it.
    pub trusted_proxy_header: Option<HeaderName>,
}

/// How passwords are hashed: shared by the server and the CLI.
#[derive(Debug, Clone)]
pub struct HashingSettings {
    pub bcrypt_cost: u32,
    pub pepper: Option<SecretString>,
    /// Threads of the bcrypt pool; 0 means one per core.
    pub threads: usize,
    /// Requests allowed to wait for a bcrypt thread before new ones are refused.
    pub queue: usize,
    /// How long a queued request may wait for a bcrypt thread; one that
    /// waited longer is refused (503) instead of being checked.
    pub max_wait: Duration,
}

/// A setting that is out of range, named by its environment variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

impl Settings {
    /// The documented defaults, on the given database.
    pub fn with_defaults(database_url: DatabaseUrl) -> Self {
        let seconds = |s: &str| parse_duration(s).expect("the default durations are valid");
        Self {
            bind: DEFAULT_BIND.to_owned(),
            database_url,
            session: SessionPolicy {
                idle_timeout: to_delta(seconds(DEFAULT_IDLE_TIMEOUT)),
                absolute_timeout: to_delta(seconds(DEFAULT_ABSOLUTE_TIMEOUT)),
                touch_interval: to_delta(seconds(DEFAULT_TOUCH_INTERVAL)),
            },
            sessions_per_user: DEFAULT_SESSIONS_PER_USER,
            password: PasswordPolicy {
                min_chars: DEFAULT_PASSWORD_MIN_LENGTH,
            },
            hashing: HashingSettings {
                bcrypt_cost: DEFAULT_BCRYPT_COST,
                pepper: None,
                threads: 0,
                queue: DEFAULT_BCRYPT_QUEUE,
                max_wait: seconds(DEFAULT_BCRYPT_MAX_WAIT),
            },
            pool: PoolOptions {
                max_size: DEFAULT_DB_POOL_SIZE,
                min_idle: None,
                acquire_timeout: seconds(DEFAULT_DB_ACQUIRE_TIMEOUT),
            },
            workers: 0,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            client_timeout: seconds(DEFAULT_CLIENT_TIMEOUT),
            introspect_keys: ServiceKeys::default(),
            reap_interval: seconds(DEFAULT_REAP_INTERVAL),
            reap_batch: DEFAULT_REAP_BATCH,
            metrics_bind: None,
            throttle: ThrottleSettings {
                login_per_account_per_hour: DEFAULT_LOGIN_PER_ACCOUNT_PER_HOUR,
                login_per_ip_per_hour: DEFAULT_LOGIN_PER_IP_PER_HOUR,
                register_per_ip_per_hour: DEFAULT_REGISTER_PER_IP_PER_HOUR,
                recovery_per_email_per_hour: DEFAULT_RECOVERY_PER_EMAIL_PER_HOUR,
                recovery_per_ip_per_hour: DEFAULT_RECOVERY_PER_IP_PER_HOUR,
                trusted_proxy_header: None,
            },
            account: AccountSettings::with_defaults(),
            delivery: Delivery::None,
        }
    }

    /// HTTP workers: as configured, or one per core.
    pub fn workers(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }

    /// Pooled database connections: as configured, or two per HTTP worker.
    /// Every query holds one for its round trip, so this is also how many
    /// queries run at once. Token checks are batched ([`crate::db::Batcher`]),
    /// and fewer threads draining them make larger batches: in
    /// `bench/run.sh` on 2 cores, 4 connections answered 15-20 % more checks
    /// than 8 (status 44-47k against 38-40k/s, status-touch0 24k against
    /// 20k/s, p99 4.1-4.5 against 6.3-7.1 ms), and 2 more still, but 2 would
    /// leave one connection for everything else while the reaper holds the
    /// other. A distant database, whose round trips are long, may want more.
    pub fn pool_size(&self) -> u32 {
        match self.pool.max_size {
            0 => u32::try_from(self.workers())
                .unwrap_or(u32::MAX)
                .saturating_mul(DB_CONNECTIONS_PER_WORKER),
            n => n,
        }
    }

    /// Rules that involve more than one setting, and bounds that keep every
    /// expiry computation inside the calendar both databases can store.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.session;
        for (variable, value) in [
            ("LATCHKEY_IDLE_TIMEOUT", s.idle_timeout),
            ("LATCHKEY_ABSOLUTE_TIMEOUT", s.absolute_timeout),
            ("LATCHKEY_TOUCH_INTERVAL", s.touch_interval),
        ] {
            if value > max_timeout() {
                return Err(ConfigError {
                    variable,
                    reason: format!("must be at most {MAX_TIMEOUT_DAYS} days"),
                });
            }
        }
        if s.idle_timeout <= TimeDelta::zero() {
            return Err(ConfigError {
                variable: "LATCHKEY_IDLE_TIMEOUT",
                reason: "must be longer than zero".into(),
            });
        }
        if s.absolute_timeout < s.idle_timeout {
            return Err(ConfigError {
                variable: "LATCHKEY_ABSOLUTE_TIMEOUT",
                reason: "must be at least LATCHKEY_IDLE_TIMEOUT".into(),
            });
        }
        // actix-web checks the deadline against a clock it refreshes every
        // half second, so shorter timeouts would cut off honest clients.
        if self.client_timeout < Duration::from_secs(1) {
            return Err(ConfigError {
                variable: "LATCHKEY_CLIENT_TIMEOUT",
                reason: "must be at least one second".into(),
            });
        }
        // Shorter would refuse logins that wait behind a single bcrypt run
        // (about 0.25 s at cost 12), and zero would refuse every queued one.
        if self.hashing.max_wait < Duration::from_secs(1) {
            return Err(ConfigError {
                variable: "LATCHKEY_BCRYPT_MAX_WAIT",
                reason: "must be at least one second".into(),
            });
        }
        // A session used more often than the touch interval would otherwise
        // never be bumped and would idle out while in use.
        for (variable, value) in [
            ("LATCHKEY_RESET_TTL", self.account.reset_ttl),
            ("LATCHKEY_VERIFY_TTL", self.account.verify_ttl),
            ("LATCHKEY_EVENT_RETENTION", self.account.event_retention),
        ] {
            if value <= TimeDelta::zero() || value > max_timeout() {
                return Err(ConfigError {
                    variable,
                    reason: format!("must be longer than zero and at most {MAX_TIMEOUT_DAYS} days"),
                });
            }
        }
        if s.touch_interval >= s.idle_timeout {
            return Err(ConfigError {
                variable: "LATCHKEY_TOUCH_INTERVAL",
                reason: "must be shorter than LATCHKEY_IDLE_TIMEOUT".into(),
            });
        }
        Ok(())
    }
}

/// Integer seconds (`3600`) or a humantime duration (`1h`, `30m`, `7days`).
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    if let Ok(seconds) = raw.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(raw)
        .map_err(|e| format!("expected integer seconds or a duration like 30m or 24h ({e})"))
}

/// Durations beyond chrono's range (hundreds of millions of years) are capped.
pub fn to_delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Settings {
        Settings::with_defaults(DatabaseUrl::Sqlite("x.db".into()))
    }

    #[test]
    fn the_pool_follows_the_workers_unless_sized() {
        let mut settings = defaults();
        assert_eq!(settings.pool.min_idle, None, "a fixed-size pool");
        settings.workers = 3;
        assert_eq!(settings.pool_size(), 6);
        settings.pool.max_size = 5;
        assert_eq!(settings.pool_size(), 5);
        settings.workers = 0;
        settings.pool.max_size = 0;
        assert!(settings.pool_size() >= DB_CONNECTIONS_PER_WORKER);
        assert_eq!(settings.pool_size() % DB_CONNECTIONS_PER_WORKER, 0);
    }

    #[test]
    fn the_bcrypt_wait_bound_is_at_least_a_second() {
        let mut settings = defaults();
        assert!(settings.validate().is_ok());
        settings.hashing.max_wait = Duration::from_millis(999);
        let err = settings.validate().unwrap_err();
        assert_eq!(err.variable, "LATCHKEY_BCRYPT_MAX_WAIT");
        settings.hashing.max_wait = Duration::from_secs(1);
        assert!(settings.validate().is_ok());
    }

    #[test]
    fn durations_accept_integer_seconds_and_units() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1_800)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("-5").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn the_defaults_are_valid() {
        let settings = defaults();
        settings.validate().unwrap();
        assert_eq!(settings.session.idle_timeout, TimeDelta::hours(24));
        assert_eq!(settings.session.absolute_timeout, TimeDelta::days(30));
        assert_eq!(settings.session.touch_interval, TimeDelta::seconds(60));
        assert_eq!(settings.hashing.bcrypt_cost, 12);
        assert_eq!(settings.bind, "127.0.0.1:8080");
    }

    #[test]
    fn a_touch_interval_as_long_as_the_idle_timeout_is_refused() {
        let mut settings = defaults();
        settings.session.touch_interval = settings.session.idle_timeout;
        assert_eq!(
            settings.validate().unwrap_err().variable,
            "LATCHKEY_TOUCH_INTERVAL"
        );
    }

    #[test]
    fn an_absolute_timeout_below_the_idle_timeout_is_refused() {
        let mut settings = defaults();
        settings.session.absolute_timeout = TimeDelta::seconds(10);
        assert_eq!(
            settings.validate().unwrap_err().variable,
            "LATCHKEY_ABSOLUTE_TIMEOUT"
        );
    }

    #[test]
    fn timeouts_beyond_ten_years_are_refused() {
        let mut settings = defaults();
        settings.session.absolute_timeout = to_delta(Duration::from_secs(u64::MAX));
        assert_eq!(
            settings.validate().unwrap_err().variable,
            "LATCHKEY_ABSOLUTE_TIMEOUT"
        );
        let mut settings = defaults();
        settings.session.idle_timeout = TimeDelta::days(MAX_TIMEOUT_DAYS + 1);
        settings.session.absolute_timeout = settings.session.idle_timeout;
        assert_eq!(
            settings.validate().unwrap_err().variable,
            "LATCHKEY_IDLE_TIMEOUT"
        );
    }

    #[test]
    fn a_zero_idle_timeout_is_refused() {
        let mut settings = defaults();
        settings.session.idle_timeout = TimeDelta::zero();
        settings.session.touch_interval = TimeDelta::zero();
        assert_eq!(
            settings.validate().unwrap_err().variable,
            "LATCHKEY_IDLE_TIMEOUT"
        );
    }
}
