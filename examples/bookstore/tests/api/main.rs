//! The bookstore in front of a real latchkey (on MariaDB, PostgreSQL and SQLite),
//! both in this process, over HTTP.

// latchkey-client's test harness, so that both crates start latchkey the
// same way; this suite does not use all of it.
#[allow(dead_code)]
#[path = "../../../../client/tests/api/harness.rs"]
mod harness;

mod app;

mod books;
