//! The subcommands. Exit codes: 0 done, 1 failed or not found, 2 usage or
//! configuration error. Human-readable output by default, `--json` for
//! scripts.

mod account;
mod output;
mod sessions;
mod users;

use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::{Cli, Command, ServeArgs, SessionsCommand, UserCommand};
use crate::db::{self, DatabaseUrl};
use crate::domain::Email;
use crate::startup::Application;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Bad input or configuration: exit code 2.
    #[error("{0}")]
    Usage(String),
    /// The user (or session) named does not exist: exit code 1.
    #[error("{0}")]
    NotFound(String),
    /// Something that should have worked did not: exit code 1.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl CommandError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Usage(_) => ExitCode::from(2),
            Self::NotFound(_) | Self::Failed(_) => ExitCode::from(1),
        }
    }
}

pub fn run(cli: Cli) -> Result<(), CommandError> {
    let Cli {
        database_url,
        command,
        serve,
        ..
    } = cli;
    match command {
        None => self::serve(database_url, serve),
        Some(Command::Serve(args)) => self::serve(database_url, *args),
        Some(Command::Migrate) => migrate(&database_url),
        Some(Command::User(command)) => {
            let mut conn = connect_migrated(&database_url)?;
            match command {
                UserCommand::Create(args) => users::create(&mut conn, args),
                UserCommand::List(args) => users::list(&mut conn, &args),
                UserCommand::Delete(args) => users::delete(&mut conn, &args),
                UserCommand::SetAdmin(args) => users::set_admin(&mut conn, &args),
                UserCommand::SetPassword(args) => account::set_password(&mut conn, &args),
                UserCommand::Disable(args) => account::set_disabled(&mut conn, &args, true),
                UserCommand::Enable(args) => account::set_disabled(&mut conn, &args, false),
                UserCommand::ResetLink(args) => account::reset_link(&mut conn, &args),
            }
        }
        Some(Command::Events(args)) => {
            let mut conn = connect_migrated(&database_url)?;
            account::list_events(&mut conn, &args)
        }
        Some(Command::Sessions(command)) => {
            let mut conn = connect_migrated(&database_url)?;
            match command {
                SessionsCommand::List(args) => sessions::list(&mut conn, &args),
                SessionsCommand::Revoke(args) => sessions::revoke(&mut conn, &args),
                SessionsCommand::Purge(args) => sessions::purge(&mut conn, &args),
            }
        }
    }
}

fn serve(database_url: DatabaseUrl, args: ServeArgs) -> Result<(), CommandError> {
    let settings = args
        .into_settings(database_url)
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await?;
        app.run_until_stopped().await.context("the server failed")?;
        tracing::info!("latchkey stopped");
        Ok(())
    })
}

fn migrate(database_url: &DatabaseUrl) -> Result<(), CommandError> {
    let mut conn = db::connect(database_url)?;
    let applied = db::run_migrations(&mut conn)?;
    if applied.is_empty() {
        println!("the database is up to date");
    }
    for version in applied {
        println!("applied {version}");
    }
    Ok(())
}

/// Connects and applies pending migrations, so every command works on a new
/// database too.
fn connect_migrated(database_url: &DatabaseUrl) -> Result<db::Connection, CommandError> {
    let mut conn = db::connect(database_url)?;
    db::run_migrations(&mut conn)?;
    Ok(conn)
}

/// The origin the CLI's events record: no address, the CLI as the agent.
fn cli_origin() -> crate::store::events::Origin {
    crate::store::events::Origin::new(None, Some("latchkey cli"))
}

/// Parses an email given on the command line (a usage error if malformed).
fn parse_email(raw: &str) -> Result<Email, CommandError> {
    Email::parse(raw).map_err(|e| CommandError::Usage(format!("--email: {e}")))
}

/// Finds a user by email, or reports exit code 1.
fn find_user(
    conn: &mut db::Connection,
    raw_email: &str,
) -> Result<crate::store::users::User, CommandError> {
    let email = parse_email(raw_email)?;
    crate::store::users::find_by_email(conn, email.as_str())
        .map_err(|e| anyhow::Error::new(e).context("failed to look up the user"))?
        .ok_or_else(|| CommandError::NotFound(format!("no user with the email {email}")))
}
