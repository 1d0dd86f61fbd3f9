//! `latchkey sessions ...`

use anyhow::Context as _;
use serde_json::json;

use super::output::{print_json, print_table};
use super::{CommandError, find_user};
use crate::cli::{PurgeArgs, UserSessionsArgs};
use crate::db::Connection;
use crate::domain::now;
use crate::store::events::{EventKind, NewEvent};
use crate::store::sessions;
use crate::views::SessionJson;

/// Rows deleted per statement, as the background reaper does.
const PURGE_BATCH: i64 = 1_000;

pub fn list(conn: &mut Connection, args: &UserSessionsArgs) -> Result<(), CommandError> {
    let user = find_user(conn, &args.email)?;
    let policy = args.timeouts.policy();
    let rows = sessions::list_live_for_user(conn, &user.id, &policy, now())
        .context("failed to list sessions")?;
    if args.json {
        let views: Vec<SessionJson> = rows
            .iter()
            .map(|s| SessionJson::new(s, &policy, None))
            .collect();
        return print_json(&views);
    }
    let table = rows
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                crate::rfc3339::format(s.created_at),
                crate::rfc3339::format(s.last_updated_at),
                crate::rfc3339::format(policy.expires_at(s.created_at, s.last_updated_at)),
                s.label
                    .clone()
                    .or_else(|| s.user_agent.clone())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&["ID", "CREATED", "LAST USED", "EXPIRES", "CLIENT"], table);
    Ok(())
}

pub fn revoke(conn: &mut Connection, args: &UserSessionsArgs) -> Result<(), CommandError> {
    let user = find_user(conn, &args.email)?;
    let origin = super::cli_origin();
    let event = NewEvent::new(EventKind::LogoutAll, &user.id, &origin);
    let revoked = sessions::delete_all_for_user(conn, &user.id, event, now())
        .context("failed to revoke sessions")?;
    if args.json {
        return print_json(&json!({ "user_id": user.id, "revoked": revoked }));
    }
    println!("revoked {revoked} sessions of {} <{}>", user.id, user.email);
    Ok(())
}

pub fn purge(conn: &mut Connection, args: &PurgeArgs) -> Result<(), CommandError> {
    let policy = args.timeouts.policy();
    let mut deleted = 0;
    loop {
        let batch = sessions::delete_expired_batch(conn, &policy, now(), PURGE_BATCH)
            .context("failed to delete expired sessions")?;
        deleted += batch;
        if (batch as i64) < PURGE_BATCH {
            break;
        }
    }
    if args.json {
        return print_json(&json!({ "deleted": deleted }));
    }
    println!("deleted {deleted} expired sessions");
    Ok(())
}
