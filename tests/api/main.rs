//! Black-box tests over HTTP, each on its own fresh database, run on both
//! MySQL (MariaDB) and SQLite. One binary, so it links once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
mod receivers;

mod account;
mod admin;
mod admission;
mod atomicity;
mod cap;
mod cli;
mod cli_account;
mod cli_admin;
mod delivery;
mod durability;
mod errors;
mod events;
mod expiry;
mod faults;
mod galera;
mod galera_cluster;
mod headers;
mod health;
mod hostile;
mod introspect;
mod login;
mod logout;
mod metrics;
mod observability;
mod openapi;
mod password;
mod proxy;
mod races;
mod reaper;
mod recovery;
mod register;
mod sessions;
mod startup;
mod status;
mod storage;
mod throttle;
mod verify;
