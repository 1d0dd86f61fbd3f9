use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::Serialize;

use crate::db::Connection;
use crate::db::schema::users;

/// A user as shown to clients: never the password hash.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub email: String,
    pub admin: bool,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
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
