//! The `one_time_codes` table: digests of codes, one live code per user and
//! purpose. Using a code is a conditional DELETE: of two concurrent uses of
//! one code, exactly one deletes the row, and only that one proceeds.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;

use crate::db::Connection;
use crate::db::schema::{one_time_codes as codes, users};
use crate::delivery::message::{Message, MessageKind, MessageUser};
use crate::domain::code::fill_link;
use crate::domain::{CodeDigest, OneTimeCode, Purpose};
use crate::store::events::{self, NewEvent};
use crate::store::outbox;

#[derive(Debug, Insertable)]
#[diesel(table_name = codes)]
struct NewCode<'a> {
    code_hash: &'a [u8],
    user_id: &'a str,
    purpose: &'a str,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
}

/// Stores a new code for `user_id`, replacing (and so invalidating) the
/// user's earlier code of the same purpose. Run it inside the transaction
/// that queues the code's message. The user's row is locked first (a no-op
/// write), so two issues for one user queue instead of colliding on the
/// unique key, and on SQLite the transaction starts with the write lock.
pub fn issue(
    conn: &mut Connection,
    user_id: &str,
    purpose: Purpose,
    digest: &CodeDigest,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(users::table.find(user_id))
        .set(users::id.eq(users::id))
        .execute(conn)?;
    diesel::delete(
        codes::table
            .filter(codes::user_id.eq(user_id))
            .filter(codes::purpose.eq(purpose.as_str())),
    )
    .execute(conn)?;
    diesel::insert_into(codes::table)
        .values(NewCode {
            code_hash: digest.as_bytes(),
            user_id,
            purpose: purpose.as_str(),
            created_at: now,
            expires_at,
        })
        .execute(conn)
        .map(|_| ())
}

/// Whose live code of `purpose` this is, if it is one, and whether that
/// account is suspended. A read only: the code is spent by [`spend`].
pub fn owner(
    conn: &mut Connection,
    digest: &CodeDigest,
    purpose: Purpose,
    now: NaiveDateTime,
) -> QueryResult<Option<CodeOwner>> {
    codes::table
        .inner_join(users::table)
        .filter(codes::code_hash.eq(digest.as_bytes()))
        .filter(codes::purpose.eq(purpose.as_str()))
        .filter(codes::expires_at.gt(now))
        .select((codes::user_id, users::disabled_at.is_not_null()))
        .first::<(String, bool)>(conn)
        .optional()
        .map(|found| found.map(|(user_id, disabled)| CodeOwner { user_id, disabled }))
}

/// The user a presented code belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeOwner {
    pub user_id: String,
    pub disabled: bool,
}

/// A code that was just issued, to deliver.
pub struct Issued {
    pub code: OneTimeCode,
    pub expires_at: NaiveDateTime,
    /// The link template filled in with the code, if there is a template.
    pub link: Option<String>,
}

/// How to issue a code of one purpose: how long it works and the link
/// template its message carries.
#[derive(Debug, Clone, Copy)]
pub struct CodeSpec<'a> {
    pub purpose: Purpose,
    pub ttl: TimeDelta,
    pub link_template: Option<&'a str>,
}

/// Issues a code of `spec.purpose` for `user` (replacing the earlier one),
/// records `event`, and, when `queue` is set, queues the message that
/// delivers it: all in one transaction, so a message is never queued for
/// a code that was not stored, nor a code stored without its message.
pub fn issue_and_queue(
    conn: &mut Connection,
    user: &MessageUser,
    spec: CodeSpec<'_>,
    queue: bool,
    event: NewEvent<'_>,
    now: NaiveDateTime,
) -> QueryResult<Issued> {
    use diesel::Connection as _;
    let (code, digest) = OneTimeCode::generate();
    let expires_at = now + spec.ttl;
    let link = spec.link_template.map(|t| fill_link(t, &code));
    crate::db::retry_on_deadlock(|| {
        conn.transaction(|conn| {
            issue(conn, &user.id, spec.purpose, &digest, now, expires_at)?;
            if queue {
                let message = Message {
                    kind: match spec.purpose {
                        Purpose::PasswordReset => MessageKind::PasswordReset,
                        Purpose::EmailVerification => MessageKind::EmailVerification,
                    },
                    user: user.clone(),
                    code: code.expose().to_owned(),
                    link: link.clone(),
                    expires_at: crate::rfc3339::format(expires_at),
                };
                outbox::delete_pending_for_user(conn, &user.id, message.kind.as_str())?;
                outbox::enqueue(conn, &message, expires_at, now)?;
            }
            events::record(conn, event, now)
        })
    })?;
    Ok(Issued {
        code,
        expires_at,
        link,
    })
}

/// Spends a live code of `purpose` belonging to `user_id`. Returns whether
/// this call spent it: false if it was unknown, expired, superseded or
/// already spent (by a concurrent use, say).
pub fn spend(
    conn: &mut Connection,
    digest: &CodeDigest,
    purpose: Purpose,
    user_id: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::delete(
        codes::table
            .find(digest.as_bytes())
            .filter(codes::purpose.eq(purpose.as_str()))
            .filter(codes::user_id.eq(user_id))
            .filter(codes::expires_at.gt(now)),
    )
    .execute(conn)
    .map(|n| n == 1)
}

/// Deletes every code of a user (all purposes): after a suspension.
pub fn delete_for_user(conn: &mut Connection, user_id: &str) -> QueryResult<usize> {
    diesel::delete(codes::table.filter(codes::user_id.eq(user_id))).execute(conn)
}

/// Deletes up to `batch` expired codes (read, then deleted by key, like the
/// sessions reaper) and returns how many.
pub fn delete_expired_batch(
    conn: &mut Connection,
    now: NaiveDateTime,
    batch: i64,
) -> QueryResult<usize> {
    let expired: Vec<Vec<u8>> = codes::table
        .filter(codes::expires_at.le(now))
        .select(codes::code_hash)
        .limit(batch)
        .load(conn)?;
    if expired.is_empty() {
        return Ok(0);
    }
    diesel::delete(
        codes::table
            .filter(codes::code_hash.eq_any(&expired))
            .filter(codes::expires_at.le(now)),
    )
    .execute(conn)
}
