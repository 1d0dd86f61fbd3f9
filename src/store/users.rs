use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::Serialize;

use crate::db::Connection;
use crate::db::schema::{authentication_tokens, users};
use crate::store::codes;
use crate::store::events::{self, EventKind, NewEvent, Origin};

/// A user as shown to clients: never the password hash.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub email: String,
    pub admin: bool,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: NaiveDateTime,
    /// Whether the user proved they read mail sent to the address.
    #[serde(rename = "email_verified", serialize_with = "is_set")]
    #[schema(value_type = bool, rename = "email_verified")]
    pub email_verified_at: Option<NaiveDateTime>,
    /// Suspended by an admin (shown in the admin views only).
    #[serde(skip)]
    #[schema(ignore)]
    pub disabled_at: Option<NaiveDateTime>,
}

fn is_set<S: serde::Serializer>(at: &Option<NaiveDateTime>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(at.is_some())
}

impl User {
    pub fn email_verified(&self) -> bool {
        self.email_verified_at.is_some()
    }

    pub fn disabled(&self) -> bool {
        self.disabled_at.is_some()
    }
}

/// What a login needs to check a password.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct Credentials {
    pub id: String,
    pub password_hash: String,
    pub email_verified_at: Option<NaiveDateTime>,
    pub disabled_at: Option<NaiveDateTime>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub admin: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("the email is taken")]
    EmailTaken,
    #[error(transparent)]
    Database(#[from] DieselError),
}

impl crate::db::LostRace for CreateUserError {
    fn lost_race(&self) -> bool {
        matches!(self, Self::Database(e) if e.lost_race())
    }
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Inserts a user; a duplicate email is reported as such, also when two
/// registrations race (the unique index decides).
pub fn insert(conn: &mut Connection, user: &NewUser<'_>) -> Result<(), CreateUserError> {
    match diesel::insert_into(users::table).values(user).execute(conn) {
        Ok(_) => Ok(()),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            Err(CreateUserError::EmailTaken)
        }
        Err(e) => Err(e.into()),
    }
}

pub fn find_by_id(conn: &mut Connection, id: &str) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
}

pub fn find_credentials_by_email(
    conn: &mut Connection,
    email: &str,
) -> QueryResult<Option<Credentials>> {
    users::table
        .filter(users::email.eq(email))
        .select(Credentials::as_select())
        .first(conn)
        .optional()
}

pub fn find_credentials_by_id(conn: &mut Connection, id: &str) -> QueryResult<Option<Credentials>> {
    users::table
        .find(id)
        .select(Credentials::as_select())
        .first(conn)
        .optional()
}

/// Replaces the password hash only if it is still `expected`: a check
/// against a hash read earlier, so two concurrent changes cannot both win.
/// Returns whether the row was updated.
pub fn replace_password_hash(
    conn: &mut Connection,
    id: &str,
    expected: &str,
    new_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        users::table
            .find(id)
            .filter(users::password_hash.eq(expected)),
    )
    .set((users::password_hash.eq(new_hash), users::updated_at.eq(now)))
    .execute(conn)
    .map(|n| n == 1)
}

pub fn find_by_email(conn: &mut Connection, email: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::email.eq(email))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// One page of users in id order (ids are UUIDv7, so this is creation
/// order), starting after the id `after`: keyset pagination, which stays
/// fast and consistent however deep the page.
pub fn list_page(conn: &mut Connection, after: Option<&str>, limit: i64) -> QueryResult<Vec<User>> {
    let mut query = users::table
        .select(User::as_select())
        .order(users::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(users::id.gt(after.to_owned()));
    }
    query.load(conn)
}

/// Why an admin change was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum AdminChangeRefused {
    NotFound,
    /// It would leave the service without any admin.
    LastAdmin,
}

/// Sets or clears a user's admin flag, refusing to remove the last admin.
///
/// The transaction first writes every admin row (a no-op update), which on
/// MySQL locks them and on SQLite takes the write lock: two admins demoting
/// each other at once are serialised, and the second sees one admin left.
pub fn set_admin(
    conn: &mut Connection,
    id: &str,
    admin: bool,
    audit: &Audit<'_>,
    now: NaiveDateTime,
) -> QueryResult<Result<User, AdminChangeRefused>> {
    use diesel::Connection as _;
    crate::db::retry_on_deadlock(|| {
        conn.transaction(|conn| {
            lock_admins(conn)?;
            let Some(user) = find_by_id(conn, id)? else {
                return Ok(Err(AdminChangeRefused::NotFound));
            };
            if user.admin == admin {
                return Ok(Ok(user));
            }
            if user.admin && !user.disabled() && count_admins(conn)? <= 1 {
                return Ok(Err(AdminChangeRefused::LastAdmin));
            }
            diesel::update(users::table.find(id))
                .set((users::admin.eq(admin), users::updated_at.eq(now)))
                .execute(conn)?;
            let kind = if admin {
                EventKind::AdminGranted
            } else {
                EventKind::AdminRevoked
            };
            events::record(conn, audit.event(kind, id), now)?;
            Ok(Ok(User { admin, ..user }))
        })
    })
}

/// Who did an admin action (an admin's id, or nobody for the CLI) and from
/// where, for the event it records.
#[derive(Debug, Clone, Copy)]
pub struct Audit<'a> {
    pub actor_id: Option<&'a str>,
    pub origin: &'a Origin,
}

impl<'a> Audit<'a> {
    pub fn event(&self, kind: EventKind, user_id: &'a str) -> NewEvent<'a> {
        NewEvent {
            actor_id: self.actor_id,
            ..NewEvent::new(kind, user_id, self.origin)
        }
    }
}

/// Suspends (`disabled`) or restores an account. Suspension ends every
/// session and spends every code of the user at once, in the same
/// transaction; the last enabled admin cannot be suspended. Returns the
/// user and how many sessions ended.
pub fn set_disabled(
    conn: &mut Connection,
    id: &str,
    disabled: bool,
    audit: &Audit<'_>,
    now: NaiveDateTime,
) -> QueryResult<Result<(User, usize), AdminChangeRefused>> {
    use diesel::Connection as _;
    crate::db::durably(conn, |conn| {
        crate::db::retry_on_deadlock(|| {
            conn.transaction(|conn| {
                lock_admins(conn)?;
                let Some(user) = find_by_id(conn, id)? else {
                    return Ok(Err(AdminChangeRefused::NotFound));
                };
                if user.disabled() == disabled {
                    return Ok(Ok((user, 0)));
                }
                if disabled && user.admin && count_admins(conn)? <= 1 {
                    return Ok(Err(AdminChangeRefused::LastAdmin));
                }
                let disabled_at = disabled.then_some(now);
                diesel::update(users::table.find(id))
                    .set((
                        users::disabled_at.eq(disabled_at),
                        users::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                let mut ended = 0;
                if disabled {
                    ended = diesel::delete(
                        authentication_tokens::table.filter(authentication_tokens::user_id.eq(id)),
                    )
                    .execute(conn)?;
                    codes::delete_for_user(conn, id)?;
                }
                let kind = if disabled {
                    EventKind::AccountDisabled
                } else {
                    EventKind::AccountEnabled
                };
                events::record(conn, audit.event(kind, id), now)?;
                Ok(Ok((
                    User {
                        disabled_at,
                        ..user
                    },
                    ended,
                )))
            })
        })
    })
}

/// Sets a new password hash whatever the old one was (a reset, or an
/// operator's `latchkey user set-password`), ends every session of the
/// user and records the event. Returns how many sessions ended.
pub fn set_password(
    conn: &mut Connection,
    id: &str,
    new_hash: &str,
    event: NewEvent<'_>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((users::password_hash.eq(new_hash), users::updated_at.eq(now)))
        .execute(conn)?;
    let ended =
        diesel::delete(authentication_tokens::table.filter(authentication_tokens::user_id.eq(id)))
            .execute(conn)?;
    events::record(conn, event, now)?;
    Ok(ended)
}

/// Marks the user's email as verified (if it was not yet). Returns whether
/// it changed.
pub fn mark_email_verified(
    conn: &mut Connection,
    id: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        users::table
            .find(id)
            .filter(users::email_verified_at.is_null()),
    )
    .set(users::email_verified_at.eq(now))
    .execute(conn)
    .map(|n| n == 1)
}

/// Deletes a user and, by cascade, everything of theirs: sessions, codes,
/// queued messages and events (their id as the actor of other users'
/// events is cleared). Refuses to delete the last admin (same locking as
/// [`set_admin`]). Records `account_deleted` with no user id: nothing
/// that names the user is left. Retried whole if MySQL picks it as a
/// deadlock's victim: the cascade locks the sessions in user_id order (see
/// `store::token_check::authenticate`).
pub fn delete(
    conn: &mut Connection,
    id: &str,
    audit: &Audit<'_>,
    now: NaiveDateTime,
) -> QueryResult<Result<User, AdminChangeRefused>> {
    use diesel::Connection as _;
    crate::db::durably(conn, |conn| {
        crate::db::retry_on_deadlock(|| {
            conn.transaction(|conn| {
                lock_admins(conn)?;
                let Some(user) = find_by_id(conn, id)? else {
                    return Ok(Err(AdminChangeRefused::NotFound));
                };
                if user.admin && !user.disabled() && count_admins(conn)? <= 1 {
                    return Ok(Err(AdminChangeRefused::LastAdmin));
                }
                diesel::delete(users::table.find(id)).execute(conn)?;
                let actor = audit.actor_id.filter(|actor| *actor != id);
                events::record(
                    conn,
                    NewEvent {
                        kind: EventKind::AccountDeleted,
                        user_id: None,
                        session_id: None,
                        actor_id: actor,
                        origin: audit.origin,
                    },
                    now,
                )?;
                Ok(Ok(user))
            })
        })
    })
}

fn lock_admins(conn: &mut Connection) -> QueryResult<usize> {
    diesel::update(users::table.filter(users::admin.eq(true)))
        .set(users::admin.eq(true))
        .execute(conn)
}

/// Admins who can act: a suspended admin does not count.
fn count_admins(conn: &mut Connection) -> QueryResult<i64> {
    users::table
        .filter(users::admin.eq(true))
        .filter(users::disabled_at.is_null())
        .count()
        .get_result(conn)
}
