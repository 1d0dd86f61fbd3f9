//! The hot path: a batch of token checks answered by one read of
//! `authentication_tokens` (joined to `users`) and at most one sliding
//! write, with the statements written out so that each connection keeps
//! them prepared.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{authentication_tokens as tokens, users};
use crate::db::{Connection, on_backend, retry_on_deadlock};
use crate::domain::{SessionPolicy, TokenDigest};
use crate::store::sessions::Session;
use crate::store::users::User;

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
        retry_on_deadlock(|| match conn {
            Connection::Mysql(c) => slide(&stale, now).execute(c),
            Connection::Postgres(c) => slide(&stale, now).locking_in_key_order().execute(c),
            Connection::Sqlite(c) => slide(&stale, now).execute(c),
        })?;
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
    /// PostgreSQL locks rows in the order its plan visits them: an index
    /// scan in key order, a bitmap scan in the table's order, and which
    /// one it picks varies with the list's length. Two slides of different
    /// lengths could then lock two rows in opposite orders and deadlock
    /// (found after `deadlock_timeout`, a second: `status-touch0-postgres`
    /// had a p99 of 1.8 s once the planner mixed the two). There the rows
    /// are locked first, by a `SELECT … ORDER BY token_hash FOR UPDATE`,
    /// so every slide takes its locks in key order. (InnoDB reads an `IN`
    /// list on the primary key in key order; SQLite has one writer.)
    lock_in_key_order: bool,
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
        if self.lock_in_key_order {
            out.push_sql(" WHERE token_hash IN (SELECT token_hash FROM authentication_tokens");
        }
        out.push_sql(" WHERE token_hash IN (");
        for (i, digest) in self.digests.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_bind_param::<Binary, [u8]>(*digest)?;
        }
        out.push_sql(") AND last_updated_at < ");
        out.push_bind_param::<Timestamp, _>(&self.at)?;
        if self.lock_in_key_order {
            out.push_sql(" ORDER BY token_hash FOR UPDATE)");
        }
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
        lock_in_key_order: false,
    }
}

impl SlideStatement<'_> {
    /// Locks the rows in key order before updating them (PostgreSQL; see
    /// the field).
    pub fn locking_in_key_order(self) -> Self {
        Self {
            lock_in_key_order: true,
            ..self
        }
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
