//! `latchkey user set-password | disable | enable | reset-link` and
//! `latchkey events`: the account lifecycle for operators.

use std::io::BufRead as _;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;

use super::output::{print_json, print_table};
use super::{CommandError, cli_origin, find_user};
use crate::cli::{EmailArgs, EventsArgs, NewPasswordArgs, ResetLinkArgs, SetPasswordArgs};
use crate::db::Connection;
use crate::delivery::message::MessageUser;
use crate::domain::{Password, PasswordPolicy, Purpose, now};
use crate::hashing::PasswordHasher;
use crate::store::codes::{self, CodeSpec};
use crate::store::events::{self, EventKind, NewEvent};
use crate::store::users::{self, AdminChangeRefused, Audit};
use crate::views::UserSummary;

/// Reads the new password from standard input, checks it and hashes it.
pub fn new_password_hash(args: &NewPasswordArgs) -> Result<String, CommandError> {
    let password = read_password(args.password_min_length)?;
    hash_password(&args.hashing, password)
}

/// Reads one line from standard input as a password, checked against the policy.
fn read_password(min_chars: u16) -> Result<Password, CommandError> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("failed to read the password from standard input")?;
    let raw = line.strip_suffix('\n').unwrap_or(&line);
    let raw = raw.strip_suffix('\r').unwrap_or(raw).to_owned();
    PasswordPolicy {
        min_chars: usize::from(min_chars),
    }
    .check(raw)
    .map_err(|e| CommandError::Usage(format!("password: {e}")))
}

/// bcrypt on one thread of its own, outside any server.
fn hash_password(
    hashing: &crate::cli::HashingArgs,
    password: Password,
) -> Result<String, CommandError> {
    let hasher = PasswordHasher::start(&hashing.to_settings(1, 1, Duration::MAX), None)
        .context("failed to start bcrypt")?;
    Ok(actix_web::rt::System::new()
        .block_on(hasher.hash(password))
        .context("failed to hash the password")?)
}

pub fn set_password(conn: &mut Connection, args: &SetPasswordArgs) -> Result<(), CommandError> {
    let user = find_user(conn, &args.email)?;
    let hash = new_password_hash(&args.password)?;
    let origin = cli_origin();
    let ended = {
        use diesel::Connection as _;
        crate::db::durably(conn, |conn| {
            crate::db::retry_on_deadlock(|| {
                conn.transaction(|conn| {
                    let event = NewEvent::new(EventKind::PasswordChanged, &user.id, &origin);
                    users::set_password(conn, &user.id, &hash, event, now())
                })
            })
        })
        .context("failed to set the password")?
    };
    if args.json {
        return print_json(&json!({ "user_id": user.id, "revoked": ended }));
    }
    println!(
        "set a new password for {} <{}>; ended {ended} sessions",
        user.id, user.email
    );
    Ok(())
}

pub fn set_disabled(
    conn: &mut Connection,
    args: &EmailArgs,
    disabled: bool,
) -> Result<(), CommandError> {
    let user = find_user(conn, &args.email)?;
    let origin = cli_origin();
    let audit = Audit {
        actor_id: None,
        origin: &origin,
    };
    let (user, ended) = users::set_disabled(conn, &user.id, disabled, &audit, now())
        .context("failed to change the account")?
        .map_err(|refused| match refused {
            AdminChangeRefused::NotFound => {
                CommandError::NotFound(format!("no user with the email {}", args.email))
            }
            AdminChangeRefused::LastAdmin => CommandError::Failed(anyhow::anyhow!(
                "{} is the last admin; promote another user first",
                user.email
            )),
        })?;
    if args.json {
        let sessions = crate::store::sessions::count_all_for_user(conn, &user.id)
            .context("failed to count sessions")?;
        return print_json(&UserSummary::new(user, sessions));
    }
    if disabled {
        println!(
            "{} <{}> is suspended; ended {ended} sessions",
            user.id, user.email
        );
    } else {
        println!("{} <{}> is restored", user.id, user.email);
    }
    Ok(())
}

pub fn reset_link(conn: &mut Connection, args: &ResetLinkArgs) -> Result<(), CommandError> {
    let user = find_user(conn, &args.email)?;
    let account = args.account.to_settings();
    let origin = cli_origin();
    let recipient = MessageUser {
        id: user.id.clone(),
        email: user.email.clone(),
    };
    let spec = CodeSpec {
        purpose: Purpose::PasswordReset,
        ttl: account.reset_ttl,
        link_template: account.reset_link.as_deref(),
    };
    let event = NewEvent::new(EventKind::PasswordResetRequested, &user.id, &origin);
    let issued = codes::issue_and_queue(conn, &recipient, spec, false, event, now())
        .context("failed to issue a reset code")?;
    let expires_at = crate::rfc3339::format(issued.expires_at);
    if args.json {
        return print_json(&json!({
            "user_id": user.id,
            "code": issued.code.expose(),
            "link": issued.link,
            "expires_at": expires_at,
        }));
    }
    // Printed on standard output only, for the operator to pass on; the
    // log never sees it.
    match &issued.link {
        Some(link) => println!("{link}"),
        None => println!("{}", issued.code.expose()),
    }
    eprintln!(
        "reset code for {} <{}>, valid until {expires_at}",
        user.id, user.email
    );
    Ok(())
}

pub fn list_events(conn: &mut Connection, args: &EventsArgs) -> Result<(), CommandError> {
    let user = find_user(conn, &args.email)?;
    let page = events::page_for_user(conn, &user.id, None, args.limit)
        .context("failed to read the events")?;
    if args.json {
        return print_json(&page);
    }
    let rows = page
        .into_iter()
        .map(|e| {
            vec![
                crate::rfc3339::format(e.created_at),
                e.kind,
                e.client_ip.unwrap_or_default(),
                e.actor_id.map(|a| format!("by {a}")).unwrap_or_default(),
                e.user_agent.unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&["TIME", "EVENT", "IP", "ADMIN", "USER AGENT"], rows);
    Ok(())
}
