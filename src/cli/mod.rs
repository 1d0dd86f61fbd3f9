//! The command line. Every flag can also be set by the environment variable
//! named in its help; a flag wins over its variable. `serve`'s flags are in
//! [`serve`], the account lifecycle's (codes, delivery) in [`account`].

mod account;
mod serve;

pub use account::AccountArgs;
pub use serve::ServeArgs;

use std::time::Duration;

use chrono::TimeDelta;
use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

use crate::db::{self, DatabaseUrl};
use crate::domain::SessionPolicy;
use crate::settings::{self, HashingSettings, parse_duration, to_delta};

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
    /// Show a user's security events, newest first.
    Events(EventsArgs),
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
    /// Set a new password (read from standard input); ends every session of the user.
    SetPassword(SetPasswordArgs),
    /// Suspend an account: every session ends, logins and codes are refused.
    Disable(EmailArgs),
    /// Restore a suspended account.
    Enable(EmailArgs),
    /// Issue a password reset code and print its link (or the code), for an
    /// operator to pass on out of band; nothing is mailed.
    ResetLink(ResetLinkArgs),
}

#[derive(Debug, Args)]
pub struct SetPasswordArgs {
    #[arg(long)]
    pub email: String,
    #[command(flatten)]
    pub password: NewPasswordArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ResetLinkArgs {
    #[arg(long)]
    pub email: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub account: AccountArgs,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[arg(long)]
    pub email: String,
    /// How many events, newest first.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub limit: i64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
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
    #[command(flatten)]
    pub password: NewPasswordArgs,
}

/// A new password for a command to set: read from standard input, checked
/// against the length rule, hashed as the server would.
#[derive(Debug, Args)]
pub struct NewPasswordArgs {
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
