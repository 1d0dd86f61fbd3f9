//! The `authentication_tokens` table: one row per session.
//!
//! Locking, for both backends: a transaction that writes begins with a
//! write. On MySQL that takes the row lock it needs before anything is read;
//! on SQLite it takes the database's write lock up front, so a transaction
//! never has to upgrade a read snapshot (which fails with SQLITE_BUSY rather
//! than waiting). Single statements run in autocommit.

use chrono::NaiveDateTime;
use diesel::Connection as _;
use diesel::prelude::*;

use crate::db::schema::{authentication_tokens as tokens, users};
use crate::db::{Connection, durably, retry_on_deadlock};
use crate::domain::{SessionPolicy, TokenDigest};
use crate::store::events::{self, EventKind, NewEvent, Origin};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tokens)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub created_at: NaiveDateTime,
    pub last_updated_at: NaiveDateTime,
    pub user_agent: Option<String>,
    pub label: Option<String>,
    pub client_ip: Option<String>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = tokens)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub token_hash: &'a [u8],
    pub created_at: NaiveDateTime,
    pub last_updated_at: NaiveDateTime,
    pub user_agent: Option<&'a str>,
    pub label: Option<&'a str>,
    pub client_ip: Option<&'a str>,
}

impl<'a> NewSession<'a> {
    pub fn new(
        id: &'a str,
        user_id: &'a str,
        digest: &'a TokenDigest,
        client: &'a ClientInfo,
        now: NaiveDateTime,
    ) -> Self {
        Self {
            id,
            user_id,
            token_hash: digest.as_bytes(),
            created_at: now,
            last_updated_at: now,
            user_agent: client.origin.user_agent.as_deref(),
            label: client.label.as_deref(),
            client_ip: client.origin.ip.as_deref(),
        }
    }
}

/// Where the client logged in from, and the label it chose.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub origin: Origin,
    pub label: Option<String>,
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Why a login could not open its session.
#[derive(Debug, PartialEq, Eq)]
pub enum OpenRefused {
    /// The password changed (or the user was deleted or suspended) after it
    /// was checked.
    CredentialsChanged,
}

/// Opens a session for a user whose password was just verified against
/// `verified_hash`, evicting the least recently used sessions beyond `cap`,
/// and records the login.
///
/// The first statement locks the user (and records the login, and stores an
/// upgraded hash if there is one). It only matches while the hash is the one
/// that was verified, so a login racing a password change cannot create a
/// session with the old password after the change committed. Concurrent
/// logins of one user queue on that lock, so the cap holds exactly.
#[allow(clippy::too_many_arguments)]
pub fn open_for_login(
    conn: &mut Connection,
    new: &NewSession<'_>,
    origin: &Origin,
    verified_hash: &str,
    upgraded_hash: Option<&str>,
    cap: u32,
    policy: &SessionPolicy,
    now: NaiveDateTime,
) -> QueryResult<Result<usize, OpenRefused>> {
    retry_on_deadlock(|| {
        conn.transaction(|conn| {
            let locked = diesel::update(
                users::table
                    .find(new.user_id)
                    .filter(users::password_hash.eq(verified_hash))
                    .filter(users::disabled_at.is_null()),
            )
            .set((
                users::last_login_at.eq(now),
                users::password_hash.eq(upgraded_hash.unwrap_or(verified_hash)),
            ))
            .execute(conn)?;
            if locked == 0 {
                return Ok(Err(OpenRefused::CredentialsChanged));
            }
            let evicted = make_room(conn, new.user_id, cap, policy, now)?;
            insert(conn, new)?;
            events::record(
                conn,
                NewEvent::new(EventKind::LoginSucceeded, new.user_id, origin).session(new.id),
                now,
            )?;
            Ok(Ok(evicted))
        })
    })
}

/// Inserts a session row. Used inside the transactions that create one.
pub fn insert(conn: &mut Connection, new: &NewSession<'_>) -> QueryResult<()> {
    diesel::insert_into(tokens::table)
        .values(new)
        .execute(conn)
        .map(|_| ())
}

/// Deletes the user's expired sessions, then the least recently used live
/// ones until one more fits under the cap. Returns how many live ones it evicted.
///
/// The sessions are read, then deleted by token digest, the primary key. A
/// `DELETE … WHERE
/// user_id = ?` would take gap locks on the user_id index in MySQL, and two
/// first logins of users whose ids are neighbours would each wait to insert
/// into the gap the other holds: a deadlock (seen under load in bench/).
fn make_room(
    conn: &mut Connection,
    user_id: &str,
    cap: u32,
    policy: &SessionPolicy,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let newest_first: Vec<(Vec<u8>, NaiveDateTime, NaiveDateTime)> = tokens::table
        .filter(tokens::user_id.eq(user_id))
        .order((tokens::last_updated_at.desc(), tokens::id.desc()))
        .select((
            tokens::token_hash,
            tokens::created_at,
            tokens::last_updated_at,
        ))
        .load(conn)?;
    let (live, expired): (Vec<_>, Vec<_>) = newest_first
        .into_iter()
        .partition(|(_, created, last)| policy.is_live(*created, *last, now));
    let keep = (cap as usize).saturating_sub(1);
    let evicted = live.len().saturating_sub(keep);
    let doomed: Vec<Vec<u8>> = expired
        .into_iter()
        .chain(live.into_iter().skip(keep))
        .map(|(digest, _, _)| digest)
        .collect();
    delete_by_digests(conn, &doomed)?;
    Ok(evicted)
}

/// Deletes sessions by token digest, the primary key (row locks
/// only, never gap locks, taken in key order like the sliding bump's).
fn delete_by_digests(conn: &mut Connection, digests: &[Vec<u8>]) -> QueryResult<usize> {
    if digests.is_empty() {
        return Ok(0);
    }
    diesel::delete(tokens::table.filter(tokens::token_hash.eq_any(digests))).execute(conn)
}

/// The user's live sessions, most recently used first.
pub fn list_live_for_user(
    conn: &mut Connection,
    user_id: &str,
    policy: &SessionPolicy,
    now: NaiveDateTime,
) -> QueryResult<Vec<Session>> {
    tokens::table
        .filter(tokens::user_id.eq(user_id))
        .filter(tokens::last_updated_at.gt(policy.idle_cutoff(now)))
        .filter(tokens::created_at.gt(policy.absolute_cutoff(now)))
        .order((tokens::last_updated_at.desc(), tokens::id.desc()))
        .select(Session::as_select())
        .load(conn)
}

/// Deletes one session, only if it belongs to `user_id`, and records
/// `event` (a logout or a revocation) if it did. Returns whether it did.
pub fn delete_for_user(
    conn: &mut Connection,
    user_id: &str,
    session_id: &str,
    event: NewEvent<'_>,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    durably(conn, |conn| {
        retry_on_deadlock(|| {
            conn.transaction(|conn| {
                let deleted = diesel::delete(
                    tokens::table
                        .find(session_id)
                        .filter(tokens::user_id.eq(user_id)),
                )
                .execute(conn)?;
                if deleted == 1 {
                    events::record(conn, event, now)?;
                }
                Ok(deleted == 1)
            })
        })
    })
}

/// Deletes every session of a user and records `event`. Returns how many
/// there were. Retried if MySQL picks it as a deadlock's victim (see
/// [`authenticate`]).
pub fn delete_all_for_user(
    conn: &mut Connection,
    user_id: &str,
    event: NewEvent<'_>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    durably(conn, |conn| {
        retry_on_deadlock(|| {
            conn.transaction(|conn| {
                let deleted = diesel::delete(tokens::table.filter(tokens::user_id.eq(user_id)))
                    .execute(conn)?;
                events::record(conn, event, now)?;
                Ok(deleted)
            })
        })
    })
}

/// Deletes every session of a user but one, by primary key (see
/// [`make_room`] for why, inside a transaction, not by user_id).
pub fn delete_all_for_user_except(
    conn: &mut Connection,
    user_id: &str,
    keep: &str,
) -> QueryResult<usize> {
    let others: Vec<Vec<u8>> = tokens::table
        .filter(tokens::user_id.eq(user_id))
        .filter(tokens::id.ne(keep))
        .select(tokens::token_hash)
        .load(conn)?;
    delete_by_digests(conn, &others)
}

/// How many live sessions each of the given users has (users with none are
/// absent from the map).
pub fn count_live_by_user(
    conn: &mut Connection,
    user_ids: &[String],
    policy: &SessionPolicy,
    now: NaiveDateTime,
) -> QueryResult<std::collections::HashMap<String, i64>> {
    let rows: Vec<(String, i64)> = tokens::table
        .filter(tokens::user_id.eq_any(user_ids))
        .filter(tokens::last_updated_at.gt(policy.idle_cutoff(now)))
        .filter(tokens::created_at.gt(policy.absolute_cutoff(now)))
        .group_by(tokens::user_id)
        .select((tokens::user_id, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

/// How many live sessions one user has.
pub fn count_live_for_user(
    conn: &mut Connection,
    user_id: &str,
    policy: &SessionPolicy,
    now: NaiveDateTime,
) -> QueryResult<i64> {
    let counts = count_live_by_user(conn, &[user_id.to_owned()], policy, now)?;
    Ok(counts.get(user_id).copied().unwrap_or(0))
}

/// Deletes up to `batch` expired sessions and returns how many it deleted.
/// The expired rows are read, then deleted by token digest (the primary
/// key). Bounded so that a backlog of a million rows never holds locks
/// for long; safe to run from several instances at once (a row deleted
/// twice is simply not found the second time).
pub fn delete_expired_batch(
    conn: &mut Connection,
    policy: &SessionPolicy,
    now: NaiveDateTime,
    batch: i64,
) -> QueryResult<usize> {
    let expired: Vec<Vec<u8>> = tokens::table
        .filter(
            tokens::last_updated_at
                .le(policy.idle_cutoff(now))
                .or(tokens::created_at.le(policy.absolute_cutoff(now))),
        )
        .select(tokens::token_hash)
        .limit(batch)
        .load(conn)?;
    if expired.is_empty() {
        return Ok(0);
    }
    diesel::delete(
        tokens::table
            .filter(tokens::token_hash.eq_any(&expired))
            .filter(
                tokens::last_updated_at
                    .le(policy.idle_cutoff(now))
                    .or(tokens::created_at.le(policy.absolute_cutoff(now))),
            ),
    )
    .execute(conn)
}

/// How many sessions a user has, live or not.
pub fn count_all_for_user(conn: &mut Connection, user_id: &str) -> QueryResult<i64> {
    tokens::table
        .filter(tokens::user_id.eq(user_id))
        .count()
        .get_result(conn)
}
