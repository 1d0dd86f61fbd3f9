use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::Serialize;

use crate::db::Connection;
use crate::db::schema::users;

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
}

/// What a login needs to check a password.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct Credentials {
    pub id: String,
    pub password_hash: String,
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
    now: NaiveDateTime,
) -> QueryResult<Result<User, AdminChangeRefused>> {
    use diesel::Connection as _;
    conn.transaction(|conn| {
        lock_admins(conn)?;
        let Some(user) = find_by_id(conn, id)? else {
            return Ok(Err(AdminChangeRefused::NotFound));
        };
        if user.admin && !admin && count_admins(conn)? <= 1 {
            return Ok(Err(AdminChangeRefused::LastAdmin));
        }
        diesel::update(users::table.find(id))
            .set((users::admin.eq(admin), users::updated_at.eq(now)))
            .execute(conn)?;
        Ok(Ok(User { admin, ..user }))
    })
}

/// Deletes a user and, by cascade, their sessions; refuses to delete the
/// last admin (same locking as [`set_admin`]). Retried whole if MySQL picks
/// it as a deadlock's victim: the cascade locks the sessions in user_id
/// order (see [`crate::store::sessions::authenticate`]).
pub fn delete(conn: &mut Connection, id: &str) -> QueryResult<Result<User, AdminChangeRefused>> {
    use diesel::Connection as _;
    crate::store::sessions::retry_on_deadlock(|| {
        conn.transaction(|conn| {
            lock_admins(conn)?;
            let Some(user) = find_by_id(conn, id)? else {
                return Ok(Err(AdminChangeRefused::NotFound));
            };
            if user.admin && count_admins(conn)? <= 1 {
                return Ok(Err(AdminChangeRefused::LastAdmin));
            }
            diesel::delete(users::table.find(id)).execute(conn)?;
            Ok(Ok(user))
        })
    })
}

fn lock_admins(conn: &mut Connection) -> QueryResult<usize> {
    diesel::update(users::table.filter(users::admin.eq(true)))
        .set(users::admin.eq(true))
        .execute(conn)
}

fn count_admins(conn: &mut Connection) -> QueryResult<i64> {
    users::table
        .filter(users::admin.eq(true))
        .count()
        .get_result(conn)
}
