//! The command line. Every flag can also be set by the environment variable
//! named in its help; a flag wins over its variable.

use std::net::ToSocketAddrs as _;
use std::time::Duration;

use actix_web::http::header::HeaderName;
use chrono::TimeDelta;
use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

use crate::db::{self, DatabaseUrl, PoolOptions};
use crate::domain::{PasswordPolicy, ServiceKeys, SessionPolicy};
use crate::settings::{self, ConfigError, HashingSettings, Settings, parse_duration, to_delta};
use crate::throttle::ThrottleSettings;

#[derive(Debug, Parser)]
#[command(name = "latchkey", version, about = "An opaque-token session service")]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Where the data lives: mysql://USER:PASS@HOST:PORT/DB or sqlite://PATH.
    #[arg(
        long,
        env = "DATABASE_URL",
        value_name = "DATABASE_URL",
        default_value = db::DEFAULT_DATABASE_URL,
        value_parser = DatabaseUrl::parse,
        hide_env_values = true,
        global = true
    )]
    pub database_url: DatabaseUrl,

    /// Log format: human-readable lines or one JSON object per line.
    #[arg(
        long,
        env = "LATCHKEY_LOG_FORMAT",
        value_name = "LATCHKEY_LOG_FORMAT",
        default_value = "human",
        global = true
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Option<Command>,

    /// `latchkey` with no subcommand serves, with these flags.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve HTTP (the default).
    Serve(Box<ServeArgs>),
    /// Apply pending migrations and exit.
    Migrate,
    /// Manage users without a running server.
    #[command(subcommand)]
    User(UserCommand),
    /// Inspect and end sessions without a running server.
    #[command(subcommand)]
    Sessions(SessionsCommand),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input.
    Create(UserCreateArgs),
    /// List users with their number of live sessions.
    List(ListArgs),
    /// Delete a user and, with it, every session of the user.
    Delete(EmailArgs),
    /// Grant (or with --revoke, remove) the admin flag.
    SetAdmin(SetAdminArgs),
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List a user's live sessions.
    List(UserSessionsArgs),
    /// End every session of a user.
    Revoke(UserSessionsArgs),
    /// Delete every expired session now and print how many.
    Purge(PurgeArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
}

#[derive(Debug, Args)]
pub struct EmailArgs {
    #[arg(long)]
    pub email: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SetAdminArgs {
    #[arg(long)]
    pub email: String,
    /// Remove the flag instead of granting it.
    #[arg(long)]
    pub revoke: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UserSessionsArgs {
    /// The user's email.
    #[arg(long = "user", value_name = "EMAIL")]
    pub email: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
}

#[derive(Debug, Args)]
pub struct UserCreateArgs {
    #[arg(long)]
    pub email: String,
    /// Give the user the admin flag.
    #[arg(long)]
    pub admin: bool,
    /// Read the password from standard input (the only way: never put a
    /// password on a command line, where `ps` shows it).
    #[arg(long, required = true)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub hashing: HashingArgs,
    /// Minimum password length in characters.
    #[arg(
        long,
        env = "LATCHKEY_PASSWORD_MIN_LENGTH",
        value_name = "LATCHKEY_PASSWORD_MIN_LENGTH",
        default_value_t = settings::DEFAULT_PASSWORD_MIN_LENGTH as u16,
        value_parser = clap::value_parser!(u16).range(8..=128)
    )]
    pub password_min_length: u16,
}

#[derive(Debug, Clone, Args)]
pub struct HashingArgs {
    /// bcrypt work factor (10 is the OWASP minimum; each step doubles the time).
    #[arg(
        long,
        env = "LATCHKEY_BCRYPT_COST",
        value_name = "LATCHKEY_BCRYPT_COST",
        default_value_t = settings::DEFAULT_BCRYPT_COST,
        value_parser = clap::value_parser!(u32).range(10..=31)
    )]
    pub bcrypt_cost: u32,

    /// Secret mixed into every password hash (HMAC-SHA256 key). Changing it
    /// invalidates every stored password.
    #[arg(
        long,
        env = "LATCHKEY_PEPPER",
        value_name = "LATCHKEY_PEPPER",
        hide_env_values = true
    )]
    pub pepper: Option<String>,
}

/// The session timeouts: the server needs them, and so do the CLI commands
/// that tell live sessions from expired ones.
#[derive(Debug, Clone, Args)]
pub struct TimeoutArgs {
    /// A session ends after this long without use (seconds, or 30m, 24h, ...).
    #[arg(
        long,
        env = "LATCHKEY_IDLE_TIMEOUT",
        value_name = "LATCHKEY_IDLE_TIMEOUT",
        default_value = settings::DEFAULT_IDLE_TIMEOUT,
        value_parser = parse_duration
    )]
    pub idle_timeout: Duration,

    /// A session ends this long after login, however active.
    #[arg(
        long,
        env = "LATCHKEY_ABSOLUTE_TIMEOUT",
        value_name = "LATCHKEY_ABSOLUTE_TIMEOUT",
        default_value = settings::DEFAULT_ABSOLUTE_TIMEOUT,
        value_parser = parse_duration
    )]
    pub absolute_timeout: Duration,
}

impl TimeoutArgs {
    /// The session policy for commands that never touch a session.
    pub fn policy(&self) -> SessionPolicy {
        SessionPolicy {
            idle_timeout: to_delta(self.idle_timeout),
            absolute_timeout: to_delta(self.absolute_timeout),
            touch_interval: TimeDelta::zero(),
        }
    }
}

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
}

impl ServeArgs {
    fn introspect_keys(&self) -> Result<ServiceKeys, ConfigError> {
        ServiceKeys::parse(&self.introspect_keys).map_err(|reason| ConfigError {
            variable: "LATCHKEY_INTROSPECT_KEYS",
            reason,
        })
    }
}

impl HashingArgs {
    pub fn to_settings(&self, threads: usize, queue: usize, max_wait: Duration) -> HashingSettings {
        HashingSettings {
            bcrypt_cost: self.bcrypt_cost,
            pepper: self.pepper.clone().map(SecretString::from),
            threads,
            queue,
            max_wait,
        }
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
                trusted_proxy_header: self.trusted_proxy_header,
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("latchkey").chain(args.iter().copied()))
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_flags_work_with_and_without_the_subcommand() {
        let cli = parse(&["--idle-timeout", "30m"]).unwrap();
        assert_eq!(cli.serve.timeouts.idle_timeout, Duration::from_secs(1_800));
        let cli = parse(&["serve", "--idle-timeout", "45"]).unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(args.timeouts.idle_timeout, Duration::from_secs(45));
    }

    #[test]
    fn the_bcrypt_wait_bound_is_a_duration_defaulting_to_ten_seconds() {
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.serve.bcrypt_max_wait, Duration::from_secs(10));
        let cli = parse(&["--bcrypt-max-wait", "1500ms"]).unwrap();
        assert_eq!(cli.serve.bcrypt_max_wait, Duration::from_millis(1500));
        assert!(parse(&["--bcrypt-max-wait", "soon"]).is_err());
    }

    #[test]
    fn bcrypt_costs_below_ten_are_refused() {
        let err = parse(&["--bcrypt-cost", "9"]).unwrap_err();
        assert!(err.to_string().contains("LATCHKEY_BCRYPT_COST"), "{err}");
        assert!(parse(&["--bcrypt-cost", "10"]).is_ok());
        assert!(parse(&["--bcrypt-cost", "31"]).is_ok());
        assert!(parse(&["--bcrypt-cost", "32"]).is_err());
    }

    #[test]
    fn a_bad_duration_names_its_variable() {
        let err = parse(&["--touch-interval", "sometimes"]).unwrap_err();
        assert!(err.to_string().contains("LATCHKEY_TOUCH_INTERVAL"), "{err}");
    }

    #[test]
    fn user_create_requires_password_stdin() {
        assert!(parse(&["user", "create", "--email", "a@example.com"]).is_err());
        assert!(
            parse(&[
                "user",
                "create",
                "--email",
                "a@example.com",
                "--password-stdin"
            ])
            .is_ok()
        );
    }
}
