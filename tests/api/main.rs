//! Black-box tests over HTTP, each on its own fresh database, run on both
//! MySQL (MariaDB) and SQLite. One binary, so it links once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod cap;
mod cli;
mod errors;
mod expiry;
mod health;
mod login;
mod logout;
mod password;
mod register;
mod sessions;
mod status;
mod storage;
