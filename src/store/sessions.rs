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
use crate::db::{Connection, on_backend, retry_on_deadlock};
use crate::domain::{SessionPolicy, TokenDigest};
use crate::store::events::{self, EventKind, NewEvent, Origin};
use crate::store::users::User;

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

/// The most token checks answered by one query (see [`authenticate`]).
pub const MAX_CHECKS_PER_QUERY: usize = 64;

/// One token check: the digest presented, and whether it counts as activity.
pub struct Check {
    pub digest: TokenDigest,
    pub touch: Touch,
}

/// The hot path: finds the live session for each token of a batch, with its
/// user, and slides them. One indexed read for the whole batch; plus one
/// write sliding every session whose last bump is older than the touch
/// interval. The write is conditional on the rows still existing and on
/// moving time forward, so it can neither resurrect a logged-out session
/// nor go back in time. It locks rows by primary key only, in key order, as
/// every other multi-row write here does; the exception is a `DELETE …
/// WHERE user_id = ?` (logout-all, or a user's deletion cascading), which
/// locks a user's sessions in user_id-index order and so can deadlock with a
/// batch sliding two of that user's sessions. Both sides retry: the batch's
/// requests never fail for it. Returns one answer per check, in order.
pub fn authenticate(
    conn: &mut Connection,
    checks: &[Check],
    policy: &SessionPolicy,
    now: NaiveDateTime,
) -> QueryResult<Vec<Option<(Session, User)>>> {
    let digests: Vec<&[u8]> = checks.iter().map(|c| c.digest.as_bytes()).collect();
    let rows: Vec<(Vec<u8>, Session, User)> = on_backend!(conn, |c| {
        let query = tokens::table.inner_join(users::table).select((
            tokens::token_hash,
            Session::as_select(),
            User::as_select(),
        ));
        match digests.as_slice() {
            // A batch of one (an idle service): a statement diesel finds by
            // its type, without writing out its SQL to look it up.
            [digest] => query.filter(tokens::token_hash.eq(*digest)).load(c),
            _ => query.filter(token_hash_in(&digests)).load(c),
        }
    })?;
    let mut answers: Vec<Option<(Session, User)>> = vec![None; checks.len()];
    for (hash, session, user) in rows {
        // The same token may be checked twice in one batch.
        let mut matching = (0..checks.len()).filter(|&i| digests[i] == hash.as_slice());
        if let Some(first) = matching.next() {
            for i in matching {
                answers[i] = Some((session.clone(), user.clone()));
            }
            answers[first] = Some((session, user));
        }
    }
    let mut stale: Vec<&[u8]> = Vec::new();
    for ((check, answer), &digest) in checks.iter().zip(&mut answers).zip(&digests) {
        let Some((session, _)) = answer else { continue };
        if !policy.is_live(session.created_at, session.last_updated_at, now) {
            delete_if_expired(conn, &session.id, policy, now)?;
            *answer = None;
        } else if check.touch == Touch::IfStale && policy.needs_touch(session.last_updated_at, now)
        {
            if !stale.contains(&digest) {
                stale.push(digest);
            }
            session.last_updated_at = now;
        }
    }
    if !stale.is_empty() {
        retry_on_deadlock(|| on_backend!(conn, |c| slide(&stale, now).execute(c)))?;
    }
    Ok(answers)
}

/// `IN` lists are padded to the next power of two (repeating the last
/// value), so that a connection prepares at most one statement per size
/// class instead of one per batch size.
fn padded<'a, T: ?Sized>(values: &[&'a T]) -> Vec<&'a T> {
    let mut padded = values.to_vec();
    if let Some(&last) = values.last() {
        padded.resize(values.len().next_power_of_two(), last);
    }
    padded
}

/// `authentication_tokens.token_hash IN (?, …)`. diesel's `eq_any` marks its
/// statement as never to be cached (its SQL varies with the list's length),
/// so every batch would be prepared, run and closed: three round trips.
/// This one is cached, keyed by its SQL, one statement per padded size.
pub struct TokenHashIn<'a>(Vec<&'a [u8]>);

fn token_hash_in<'a>(digests: &[&'a [u8]]) -> TokenHashIn<'a> {
    TokenHashIn(padded(digests))
}

impl diesel::expression::Expression for TokenHashIn<'_> {
    type SqlType = diesel::sql_types::Bool;
}

impl<QS> diesel::expression::AppearsOnTable<QS> for TokenHashIn<'_> where
    tokens::token_hash: diesel::expression::AppearsOnTable<QS>
{
}

impl diesel::expression::ValidGrouping<()> for TokenHashIn<'_> {
    type IsAggregate = diesel::expression::is_aggregate::No;
}

impl<DB> diesel::query_builder::QueryFragment<DB> for TokenHashIn<'_>
where
    DB: diesel::backend::Backend + diesel::sql_types::HasSqlType<diesel::sql_types::Binary>,
    [u8]: diesel::serialize::ToSql<diesel::sql_types::Binary, DB>,
    tokens::token_hash: diesel::query_builder::QueryFragment<DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        tokens::token_hash.walk_ast(out.reborrow())?;
        out.push_sql(" IN (");
        for (i, digest) in self.0.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_bind_param::<diesel::sql_types::Binary, [u8]>(*digest)?;
        }
        out.push_sql(")");
        Ok(())
    }
}

impl diesel::query_builder::QueryId for TokenHashIn<'_> {
    type QueryId = ();
    // The SQL depends on the list's length: cached by its text.
    const HAS_STATIC_QUERY_ID: bool = false;
}

/// The sliding bump: `UPDATE authentication_tokens SET last_updated_at = ?
/// WHERE token_hash IN (?, …) AND last_updated_at < ?`, by the primary key
/// (see the migrations `cluster_sessions_by_token_hash`), written
/// out as a statement diesel keeps prepared on each connection (one per
/// padded size of the list). diesel never caches an UPDATE built with its
/// DSL (a changeset's SQL may vary with its values), so every bump was
/// prepared, run and closed: `bench/run.sh` counted one PREPARE per request
/// in status-touch0.
pub struct SlideStatement<'a> {
    digests: Vec<&'a [u8]>,
    at: NaiveDateTime,
}

impl<DB> diesel::query_builder::QueryFragment<DB> for SlideStatement<'_>
where
    DB: diesel::backend::Backend
        + diesel::sql_types::HasSqlType<diesel::sql_types::Timestamp>
        + diesel::sql_types::HasSqlType<diesel::sql_types::Binary>,
    NaiveDateTime: diesel::serialize::ToSql<diesel::sql_types::Timestamp, DB>,
    [u8]: diesel::serialize::ToSql<diesel::sql_types::Binary, DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{Binary, Timestamp};
        out.push_sql("UPDATE authentication_tokens SET last_updated_at = ");
        out.push_bind_param::<Timestamp, _>(&self.at)?;
        out.push_sql(" WHERE token_hash IN (");
        for (i, digest) in self.digests.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_bind_param::<Binary, [u8]>(*digest)?;
        }
        out.push_sql(") AND last_updated_at < ");
        out.push_bind_param::<Timestamp, _>(&self.at)?;
        Ok(())
    }
}

impl diesel::query_builder::QueryId for SlideStatement<'_> {
    type QueryId = ();
    // The SQL depends on the list's length: cached by its text.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<C> RunQueryDsl<C> for SlideStatement<'_> {}

/// Slides the sessions of token digests `digests` to `at`, except those
/// gone or already later.
pub fn slide<'a>(digests: &[&'a [u8]], at: NaiveDateTime) -> SlideStatement<'a> {
    SlideStatement {
        digests: padded(digests),
        at,
    }
}

/// Whether a successful check counts as activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touch {
    /// Slide the session (writing at most once per touch interval).
    IfStale,
    /// Look only: introspection with `"touch": false`.
    Never,
}

/// Deletes a session that has expired; a live one is left alone even if a
/// caller's clock disagrees.
fn delete_if_expired(
    conn: &mut Connection,
    id: &str,
    policy: &SessionPolicy,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::delete(
        tokens::table.find(id).filter(
            tokens::last_updated_at
                .le(policy.idle_cutoff(now))
                .or(tokens::created_at.le(policy.absolute_cutoff(now))),
        ),
    )
    .execute(conn)
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
    retry_on_deadlock(|| {
        conn.transaction(|conn| {
            let deleted =
                diesel::delete(tokens::table.filter(tokens::user_id.eq(user_id))).execute(conn)?;
            events::record(conn, event, now)?;
            Ok(deleted)
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
