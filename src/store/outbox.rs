//! The `outbox` table: messages waiting for delivery. The request path only
//! writes a row (in the transaction that issues the code it carries); the
//! sender in `crate::delivery` reads, claims, delivers and deletes rows.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::Connection;
use crate::db::schema::outbox;
use crate::delivery::message::Message;

#[derive(Debug, Insertable)]
#[diesel(table_name = outbox)]
struct NewRow<'a> {
    id: &'a str,
    user_id: Option<&'a str>,
    kind: &'a str,
    payload: &'a str,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    attempts: i32,
    next_attempt_at: NaiveDateTime,
}

/// Queues `message` for delivery as soon as possible. It is dropped unsent
/// after `expires_at` (when the code it carries stops working).
pub fn enqueue(
    conn: &mut Connection,
    message: &Message,
    expires_at: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let payload = serde_json::to_string(message)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    let id = uuid::Uuid::now_v7().to_string();
    diesel::insert_into(outbox::table)
        .values(NewRow {
            id: &id,
            user_id: Some(&message.user.id),
            kind: message.kind.as_str(),
            payload: &payload,
            created_at: now,
            expires_at,
            attempts: 0,
            next_attempt_at: now,
        })
        .execute(conn)
        .map(|_| ())
}

/// A queued message as the sender reads it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbox)]
pub struct Row {
    /// Also the webhook's `webhook-id`: the same on every attempt.
    pub id: String,
    pub kind: String,
    /// The [`Message`] as JSON: it carries the code, so never log it.
    pub payload: String,
    pub expires_at: NaiveDateTime,
    /// Attempts started so far (claims), including one that may be running.
    pub attempts: i32,
    /// The value [`claim`] must still find for the claim to succeed.
    pub next_attempt_at: NaiveDateTime,
}

/// Up to `limit` messages whose next attempt is due, the longest waiting first.
pub fn due(conn: &mut Connection, now: NaiveDateTime, limit: i64) -> QueryResult<Vec<Row>> {
    outbox::table
        .filter(outbox::next_attempt_at.le(now))
        // An expired message is never sent (its code is dead), even if it
        // was queued after this pass dropped the expired ones.
        .filter(outbox::expires_at.gt(now))
        .order((outbox::next_attempt_at.asc(), outbox::id.asc()))
        .limit(limit)
        .select(Row::as_select())
        .load(conn)
}

/// Takes a message for one attempt: moves its next attempt to
/// `lease_until` and counts the attempt, but only if no other sender (of
/// this or another latchkey instance) has done so since `seen_next_attempt_at`
/// was read. Whoever's update finds the row unchanged sends it; a sender
/// that dies mid-attempt leaves the row to be retried once the lease ends.
pub fn claim(
    conn: &mut Connection,
    id: &str,
    seen_next_attempt_at: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> QueryResult<bool> {
    let updated = diesel::update(
        outbox::table
            .filter(outbox::id.eq(id))
            .filter(outbox::next_attempt_at.eq(seen_next_attempt_at)),
    )
    .set((
        outbox::next_attempt_at.eq(lease_until),
        outbox::attempts.eq(outbox::attempts + 1),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Forgets a delivered message. Whether it was still there.
pub fn delete(conn: &mut Connection, id: &str) -> QueryResult<bool> {
    Ok(diesel::delete(outbox::table.find(id)).execute(conn)? == 1)
}

/// Sets when a message whose attempt failed is tried again.
pub fn reschedule(conn: &mut Connection, id: &str, at: NaiveDateTime) -> QueryResult<()> {
    diesel::update(outbox::table.find(id))
        .set(outbox::next_attempt_at.eq(at))
        .execute(conn)
        .map(|_| ())
}

/// How many messages wait, due or not.
pub fn depth(conn: &mut Connection) -> QueryResult<i64> {
    outbox::table.count().get_result(conn)
}

/// Drops, unsent, the messages whose code no longer works: delivering them
/// would only confuse. How many were dropped.
///
/// The sender asks every second and there is no index on `expires_at`, so
/// the expired rows are first found by a plain read (which takes no locks
/// on MySQL) and deleted by key only when there are any: a scanning DELETE
/// would lock the whole table against the request path's inserts each time.
pub fn delete_expired(conn: &mut Connection, now: NaiveDateTime) -> QueryResult<usize> {
    const AT_ONCE: i64 = 1_000;
    let expired: Vec<String> = outbox::table
        .filter(outbox::expires_at.le(now))
        .select(outbox::id)
        .limit(AT_ONCE)
        .load(conn)?;
    if expired.is_empty() {
        return Ok(0);
    }
    diesel::delete(
        outbox::table
            .filter(outbox::id.eq_any(&expired))
            .filter(outbox::expires_at.le(now)),
    )
    .execute(conn)
}

/// Drops the user's undelivered messages of `kind`: a new code supersedes
/// the earlier one, and a message carrying a dead code is not worth sending.
pub fn delete_pending_for_user(
    conn: &mut Connection,
    user_id: &str,
    kind: &str,
) -> QueryResult<usize> {
    diesel::delete(
        outbox::table
            .filter(outbox::user_id.eq(user_id))
            .filter(outbox::kind.eq(kind)),
    )
    .execute(conn)
}
