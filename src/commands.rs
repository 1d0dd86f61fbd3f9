//! The subcommands. Exit codes: 0 done, 1 failed or not found, 2 usage or
//! configuration error.

use std::io::BufRead as _;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::{Cli, Command, ServeArgs, UserCommand, UserCreateArgs};
use crate::db::{self, DatabaseUrl};
use crate::domain::{Email, PasswordPolicy, now};
use crate::hashing::PasswordHasher;
use crate::startup::Application;
use crate::store::users::{self, CreateUserError, NewUser};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Bad input or configuration: exit code 2.
    #[error("{0}")]
    Usage(String),
    /// Something that should have worked did not: exit code 1.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl CommandError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Usage(_) => ExitCode::from(2),
            Self::Failed(_) => ExitCode::from(1),
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
        Some(Command::Serve(args)) => self::serve(database_url, args),
        Some(Command::Migrate) => migrate(&database_url),
        Some(Command::User(UserCommand::Create(args))) => create_user(&database_url, args),
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

fn create_user(database_url: &DatabaseUrl, args: UserCreateArgs) -> Result<(), CommandError> {
    let email =
        Email::parse(&args.email).map_err(|e| CommandError::Usage(format!("--email: {e}")))?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("failed to read the password from standard input")?;
    let raw = line.strip_suffix('\n').unwrap_or(&line);
    let raw = raw.strip_suffix('\r').unwrap_or(raw).to_owned();
    let password = PasswordPolicy {
        min_chars: usize::from(args.password_min_length),
    }
    .check(raw)
    .map_err(|e| CommandError::Usage(format!("password: {e}")))?;

    let hasher =
        PasswordHasher::start(&args.hashing.to_settings(1, 1)).context("failed to start bcrypt")?;
    let password_hash = actix_web::rt::System::new()
        .block_on(hasher.hash(password))
        .context("failed to hash the password")?;

    let mut conn = db::connect(database_url)?;
    db::run_migrations(&mut conn)?;
    let now = now();
    let id = users::new_id();
    let new = NewUser {
        id: &id,
        email: email.as_str(),
        password_hash: &password_hash,
        admin: args.admin,
        created_at: now,
        updated_at: now,
    };
    match users::insert(&mut conn, &new) {
        Ok(()) => {}
        Err(CreateUserError::EmailTaken) => {
            return Err(anyhow::anyhow!("a user with the email {email} already exists").into());
        }
        Err(CreateUserError::Database(e)) => {
            return Err(anyhow::Error::new(e)
                .context("failed to create the user")
                .into());
        }
    }
    println!(
        "created user {id} <{email}>{}",
        if args.admin { " (admin)" } else { "" }
    );
    Ok(())
}
