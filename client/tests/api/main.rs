//! latchkey-client against a real latchkey, on MariaDB and on SQLite.

mod harness;

mod cache;
#[cfg(feature = "actix")]
mod extractor;
mod introspect;
