//! Kept in a module of its own: the derive's generated code imports this
//! module's names with a glob, and must not meet one called `Connection`.

/// One connection type for both backends, re-exported as `db::Connection`.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Mysql(diesel::MysqlConnection),
    Postgres(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}
