//! latchkey-client against a real latchkey, on MariaDB, PostgreSQL and SQLite.

mod harness;

mod cache;
#[cfg(feature = "actix")]
mod extractor;
mod introspect;
