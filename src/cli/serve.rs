//! `latchkey serve`'s flags, and how they become [`Settings`].

use std::net::ToSocketAddrs as _;
use std::time::Duration;

use actix_web::http::header::HeaderName;
use clap::Args;

use super::{AccountArgs, HashingArgs, TimeoutArgs};
use crate::db::{DatabaseUrl, PoolOptions};
use crate::domain::{PasswordPolicy, ServiceKeys, SessionPolicy};
use crate::settings::{self, ConfigError, Settings, parse_duration, to_delta};
use crate::throttle::ThrottleSettings;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(
        long,
        env = "LATCHKEY_BIND",
        value_name = "LATCHKEY_BIND",
        default_value = settings::DEFAULT_BIND,
        value_parser = parse_bind
    )]
    pub bind: String,

    #[command(flatten)]
    pub timeouts: TimeoutArgs,

    /// Uses of a session closer together than this write nothing; 0 writes on every request.
    #[arg(
        long,
        env = "LATCHKEY_TOUCH_INTERVAL",
        value_name = "LATCHKEY_TOUCH_INTERVAL",
        default_value = settings::DEFAULT_TOUCH_INTERVAL,
        value_parser = parse_duration
    )]
    pub touch_interval: Duration,

    /// Sessions a user may hold at once; a new login evicts the least recently used.
    #[arg(
        long,
        env = "LATCHKEY_SESSIONS_PER_USER",
        value_name = "LATCHKEY_SESSIONS_PER_USER",
        default_value_t = settings::DEFAULT_SESSIONS_PER_USER,
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub sessions_per_user: u32,

    /// Minimum password length in characters.
    #[arg(
        long,
        env = "LATCHKEY_PASSWORD_MIN_LENGTH",
        value_name = "LATCHKEY_PASSWORD_MIN_LENGTH",
        default_value_t = settings::DEFAULT_PASSWORD_MIN_LENGTH as u16,
        value_parser = clap::value_parser!(u16).range(8..=128)
    )]
    pub password_min_length: u16,

    #[command(flatten)]
    pub hashing: HashingArgs,

    /// Threads that run bcrypt; 0 means one per core.
    #[arg(
        long,
        env = "LATCHKEY_BCRYPT_THREADS",
        value_name = "LATCHKEY_BCRYPT_THREADS",
        default_value_t = 0
    )]
    pub bcrypt_threads: usize,

    /// Password checks allowed to wait for a bcrypt thread; more are refused with 503.
    #[arg(
        long,
        env = "LATCHKEY_BCRYPT_QUEUE",
        value_name = "LATCHKEY_BCRYPT_QUEUE",
        default_value_t = settings::DEFAULT_BCRYPT_QUEUE as u32,
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub bcrypt_queue: u32,

    /// How long a password check may wait for a bcrypt thread; a login
    /// that waited longer gets 503 with Retry-After instead of an answer
    /// its client has likely stopped waiting for.
    #[arg(
        long,
        env = "LATCHKEY_BCRYPT_MAX_WAIT",
        value_name = "LATCHKEY_BCRYPT_MAX_WAIT",
        default_value = settings::DEFAULT_BCRYPT_MAX_WAIT,
        value_parser = parse_duration
    )]
    pub bcrypt_max_wait: Duration,

    /// Database connections in the pool (at most this many queries at
    /// once); 0 means two per HTTP worker.
    #[arg(
        long,
        env = "LATCHKEY_DB_POOL_SIZE",
        value_name = "LATCHKEY_DB_POOL_SIZE",
        default_value_t = settings::DEFAULT_DB_POOL_SIZE,
        value_parser = clap::value_parser!(u32).range(0..=1_000)
    )]
    pub db_pool_size: u32,

    /// How long a request waits for a database connection before answering 503.
    #[arg(
        long,
        env = "LATCHKEY_DB_ACQUIRE_TIMEOUT",
        value_name = "LATCHKEY_DB_ACQUIRE_TIMEOUT",
        default_value = settings::DEFAULT_DB_ACQUIRE_TIMEOUT,
        value_parser = parse_duration
    )]
    pub db_acquire_timeout: Duration,

    /// HTTP worker threads; 0 means one per core.
    #[arg(
        long,
        env = "LATCHKEY_WORKERS",
        value_name = "LATCHKEY_WORKERS",
        default_value_t = 0
    )]
    pub workers: usize,

    /// Largest request body accepted, in bytes.
    #[arg(
        long,
        env = "LATCHKEY_MAX_BODY_BYTES",
        value_name = "LATCHKEY_MAX_BODY_BYTES",
        default_value_t = settings::DEFAULT_MAX_BODY_BYTES as u32,
        value_parser = clap::value_parser!(u32).range(256..=1_048_576)
    )]
    pub max_body_bytes: u32,

    /// How long a client may take to send a request's headers before it
    /// gets 408 and is disconnected (slow-client attacks).
    #[arg(
        long,
        env = "LATCHKEY_CLIENT_TIMEOUT",
        value_name = "LATCHKEY_CLIENT_TIMEOUT",
        default_value = settings::DEFAULT_CLIENT_TIMEOUT,
        value_parser = parse_duration
    )]
    pub client_timeout: Duration,

    /// Comma-separated service keys (32+ characters each) that backends send
    /// as `Authorization: Bearer` to `POST /auth/introspect`; several allow rotation.
    #[arg(
        long,
        env = "LATCHKEY_INTROSPECT_KEYS",
        value_name = "LATCHKEY_INTROSPECT_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub introspect_keys: Vec<String>,

    /// How often expired sessions are deleted in the background; 0 disables.
    #[arg(
        long,
        env = "LATCHKEY_REAP_INTERVAL",
        value_name = "LATCHKEY_REAP_INTERVAL",
        default_value = settings::DEFAULT_REAP_INTERVAL,
        value_parser = parse_duration
    )]
    pub reap_interval: Duration,

    /// Expired sessions deleted per statement by the reaper.
    #[arg(
        long,
        env = "LATCHKEY_REAP_BATCH",
        value_name = "LATCHKEY_REAP_BATCH",
        default_value_t = settings::DEFAULT_REAP_BATCH,
        value_parser = clap::value_parser!(i64).range(1..=100_000)
    )]
    pub reap_batch: i64,

    /// Serve /metrics on this address (e.g. 127.0.0.1:9090) instead of on
    /// the API's, so that it need not be public.
    #[arg(
        long,
        env = "LATCHKEY_METRICS_BIND",
        value_name = "LATCHKEY_METRICS_BIND",
        value_parser = parse_bind
    )]
    pub metrics_bind: Option<String>,

    /// Login attempts allowed per account per hour (a tenth of them at
    /// once); beyond, 429 with Retry-After. 0 disables.
    #[arg(
        long,
        env = "LATCHKEY_LOGIN_LIMIT_PER_ACCOUNT",
        value_name = "LATCHKEY_LOGIN_LIMIT_PER_ACCOUNT",
        default_value_t = settings::DEFAULT_LOGIN_PER_ACCOUNT_PER_HOUR
    )]
    pub login_limit_per_account: u32,

    /// Login attempts allowed per client IP per hour. 0 disables.
    #[arg(
        long,
        env = "LATCHKEY_LOGIN_LIMIT_PER_IP",
        value_name = "LATCHKEY_LOGIN_LIMIT_PER_IP",
        default_value_t = settings::DEFAULT_LOGIN_PER_IP_PER_HOUR
    )]
    pub login_limit_per_ip: u32,

    /// Registrations allowed per client IP per hour. 0 disables.
    #[arg(
        long,
        env = "LATCHKEY_REGISTER_LIMIT_PER_IP",
        value_name = "LATCHKEY_REGISTER_LIMIT_PER_IP",
        default_value_t = settings::DEFAULT_REGISTER_PER_IP_PER_HOUR
    )]
    pub register_limit_per_ip: u32,

    /// Behind a reverse proxy: the header holding the client address (e.g.
    /// X-Forwarded-For; its right-most entry is used). Unset: the TCP peer.
    #[arg(
        long,
        env = "LATCHKEY_TRUSTED_PROXY_HEADER",
        value_name = "LATCHKEY_TRUSTED_PROXY_HEADER",
        value_parser = parse_header_name
    )]
    pub trusted_proxy_header: Option<HeaderName>,

    /// Password-recovery and verification requests allowed per email
    /// address per hour. 0 disables.
    #[arg(
        long,
        env = "LATCHKEY_RECOVERY_LIMIT_PER_EMAIL",
        value_name = "LATCHKEY_RECOVERY_LIMIT_PER_EMAIL",
        default_value_t = settings::DEFAULT_RECOVERY_PER_EMAIL_PER_HOUR
    )]
    pub recovery_limit_per_email: u32,

    /// Password-recovery requests and code uses allowed per client IP per
    /// hour. 0 disables.
    #[arg(
        long,
        env = "LATCHKEY_RECOVERY_LIMIT_PER_IP",
        value_name = "LATCHKEY_RECOVERY_LIMIT_PER_IP",
        default_value_t = settings::DEFAULT_RECOVERY_PER_IP_PER_HOUR
    )]
    pub recovery_limit_per_ip: u32,

    #[command(flatten)]
    pub account: AccountArgs,
}

impl ServeArgs {
    fn introspect_keys(&self) -> Result<ServiceKeys, ConfigError> {
        ServiceKeys::parse(&self.introspect_keys).map_err(|reason| ConfigError {
            variable: "LATCHKEY_INTROSPECT_KEYS",
            reason,
        })
    }
}

impl ServeArgs {
    pub fn into_settings(self, database_url: DatabaseUrl) -> Result<Settings, ConfigError> {
        let introspect_keys = self.introspect_keys()?;
        let settings = Settings {
            bind: self.bind,
            database_url,
            session: SessionPolicy {
                touch_interval: to_delta(self.touch_interval),
                ..self.timeouts.policy()
            },
            sessions_per_user: self.sessions_per_user,
            password: PasswordPolicy {
                min_chars: usize::from(self.password_min_length),
            },
            hashing: self.hashing.to_settings(
                self.bcrypt_threads,
                self.bcrypt_queue as usize,
                self.bcrypt_max_wait,
            ),
            pool: PoolOptions {
                max_size: self.db_pool_size,
                min_idle: None,
                acquire_timeout: self.db_acquire_timeout,
            },
            workers: self.workers,
            max_body_bytes: self.max_body_bytes as usize,
            client_timeout: self.client_timeout,
            introspect_keys,
            reap_interval: self.reap_interval,
            reap_batch: self.reap_batch,
            metrics_bind: self.metrics_bind,
            throttle: ThrottleSettings {
                login_per_account_per_hour: self.login_limit_per_account,
                login_per_ip_per_hour: self.login_limit_per_ip,
                register_per_ip_per_hour: self.register_limit_per_ip,
                recovery_per_email_per_hour: self.recovery_limit_per_email,
                recovery_per_ip_per_hour: self.recovery_limit_per_ip,
                trusted_proxy_header: self.trusted_proxy_header,
            },
            delivery: self.account.delivery()?,
            account: self.account.to_settings(),
        };
        settings.validate()?;
        Ok(settings)
    }
}

fn parse_header_name(raw: &str) -> Result<HeaderName, String> {
    HeaderName::try_from(raw.trim())
        .map_err(|_| "expected an HTTP header name, e.g. X-Forwarded-For".into())
}

fn parse_bind(raw: &str) -> Result<String, String> {
    let resolves = raw
        .to_socket_addrs()
        .is_ok_and(|mut addrs| addrs.next().is_some());
    if resolves {
        Ok(raw.to_owned())
    } else {
        Err("expected HOST:PORT, for example 127.0.0.1:8080".into())
    }
}
