//! latchkey: an opaque-token session service.
//!
//! Start at `routes` (the HTTP API), which leads to `auth` (the session
//! check), `store` (the queries) and `domain` (tokens, passwords, expiry).

pub mod auth;
pub mod cli;
pub mod commands;
pub mod db;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod hashing;
pub mod header_limits;
pub mod metrics;
pub mod reaper;
pub mod refusal_lines;
pub mod rfc3339;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod throttle;
pub mod views;
