//! Queries, named for what they do. Each takes `&mut Connection` and runs
//! on a blocking thread (see `run` in `crate::db_run`).

pub mod codes;
pub mod events;
pub mod outbox;
pub mod sessions;
pub mod throttle_buckets;
pub mod token_check;
pub mod users;
