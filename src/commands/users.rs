//! `latchkey user ...`

use anyhow::Context as _;

use super::output::{print_json, print_table};
use super::{CommandError, find_user, parse_email};
use crate::cli::{EmailArgs, ListArgs, SetAdminArgs, UserCreateArgs};
use crate::db::Connection;
use crate::domain::now;
use crate::store::events::{self, EventKind, NewEvent};
use crate::store::sessions;
use crate::store::users::{self, AdminChangeRefused, Audit, CreateUserError, NewUser};
use crate::views::UserSummary;

/// Users listed per query; the listing walks the whole table in pages.
const PAGE: i64 = 500;

pub fn create(conn: &mut Connection, args: UserCreateArgs) -> Result<(), CommandError> {
    let email = parse_email(&args.email)?;
    let password_hash = super::account::new_password_hash(&args.password)?;

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
    let origin = super::cli_origin();
    let created = {
        use diesel::Connection as _;
        crate::db::retry_on_deadlock(|| {
            conn.transaction(|conn| {
                users::insert(conn, &new)?;
                let event = NewEvent::new(EventKind::Registered, &id, &origin);
                events::record(conn, event, now).map_err(CreateUserError::Database)
            })
        })
    };
    match created {
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

pub fn list(conn: &mut Connection, args: &ListArgs) -> Result<(), CommandError> {
    let policy = args.timeouts.policy();
    let mut summaries = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page =
            users::list_page(conn, after.as_deref(), PAGE).context("failed to list users")?;
        let ids: Vec<String> = page.iter().map(|u| u.id.clone()).collect();
        let counts = sessions::count_live_by_user(conn, &ids, &policy, now())
            .context("failed to count sessions")?;
        after = page.last().map(|u| u.id.clone());
        let full = page.len() as i64 == PAGE;
        summaries.extend(page.into_iter().map(|user| {
            let active = counts.get(&user.id).copied().unwrap_or(0);
            UserSummary::new(user, active)
        }));
        if !full {
            break;
        }
    }
    if args.json {
        return print_json(&summaries);
    }
    let rows = summaries
        .iter()
        .map(|s| {
            vec![
                s.user.id.clone(),
                s.user.email.clone(),
                if s.user.admin { "yes" } else { "no" }.to_owned(),
                crate::rfc3339::format(s.user.created_at),
                s.active_sessions.to_string(),
            ]
        })
        .collect();
    print_table(&["ID", "EMAIL", "ADMIN", "CREATED", "SESSIONS"], rows);
    Ok(())
}

pub fn delete(conn: &mut Connection, args: &EmailArgs) -> Result<(), CommandError> {
    let user = find_user(conn, &args.email)?;
    let origin = super::cli_origin();
    let audit = Audit {
        actor_id: None,
        origin: &origin,
    };
    let deleted =
        users::delete(conn, &user.id, &audit, now()).context("failed to delete the user")?;
    let user = deleted.map_err(|reason| refused(reason, &user.email))?;
    if args.json {
        return print_json(&user);
    }
    println!(
        "deleted user {} <{}> and their sessions",
        user.id, user.email
    );
    Ok(())
}

pub fn set_admin(conn: &mut Connection, args: &SetAdminArgs) -> Result<(), CommandError> {
    let user = find_user(conn, &args.email)?;
    let origin = super::cli_origin();
    let audit = Audit {
        actor_id: None,
        origin: &origin,
    };
    let changed = users::set_admin(conn, &user.id, !args.revoke, &audit, now())
        .context("failed to change the admin flag")?;
    let user = changed.map_err(|reason| refused(reason, &user.email))?;
    if args.json {
        return print_json(&user);
    }
    let state = if user.admin {
        "is now an admin"
    } else {
        "is no longer an admin"
    };
    println!("{} <{}> {state}", user.id, user.email);
    Ok(())
}

fn refused(reason: AdminChangeRefused, email: &str) -> CommandError {
    match reason {
        AdminChangeRefused::NotFound => {
            CommandError::NotFound(format!("no user with the email {email}"))
        }
        AdminChangeRefused::LastAdmin => CommandError::Failed(anyhow::anyhow!(
            "{email} is the last admin; promote another user first"
        )),
    }
}
