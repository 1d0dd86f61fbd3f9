//! A client for latchkey's token introspection, for the services that sit
//! behind it: given the bearer token a request carries, who is it?
//!
//! ```no_run
//! use latchkey_client::Client;
//!
//! # async fn check(token: &str) -> Result<(), latchkey_client::Error> {
//! let latchkey = Client::new("http://127.0.0.1:8080", "one-of-LATCHKEY_INTROSPECT_KEYS")?;
//! match latchkey.introspect(token).await? {
//!     Some(user) => println!("{} ({}), admin: {}", user.email, user.user_id, user.admin),
//!     None => println!("not a live token: answer 401"),
//! }
//! # Ok(()) }
//! ```
//!
//! Each question is one `POST /auth/introspect` (RFC 7662) with the service
//! key as `Authorization: Bearer <key>`. A token that is not live (unknown,
//! malformed, expired, logged out, revoked) is `Ok(None)`. An `Err` means
//! latchkey's answer could not be had ([`Error::Unavailable`]: down, slow,
//! overloaded; [`Error::Unauthorized`]: the service key was refused; …): the
//! request must then be refused, never let through.
//!
//! # Cache
//!
//! [`ClientBuilder::cache`] turns on an in-process cache of **positive**
//! answers (off by default):
//!
//! ```no_run
//! use std::time::Duration;
//! use latchkey_client::{CacheConfig, Client};
//!
//! # fn build() -> Result<(), latchkey_client::Error> {
//! let latchkey = Client::builder("http://127.0.0.1:8080", "the-service-key")
//!     .timeout(Duration::from_secs(2))
//!     .cache(CacheConfig { ttl: Duration::from_secs(5), max_entries: 10_000 })
//!     .build()?;
//! # Ok(()) }
//! ```
//!
//! **A TTL of N seconds means that a token logged out or revoked at latchkey
//! may still be accepted by this service for up to N seconds.** An answer is
//! kept for the TTL, and never past the token's own expiry (`exp`).
//! Refusals are never cached: a token latchkey refused is asked about again
//! every time. Entries are keyed by the SHA-256 digest of the token; the
//! token itself is not kept. When `max_entries` answers are held, the oldest
//! makes room. Answers served from the cache do not slide the session at
//! latchkey (only questions that reach it do, with `touch`), so keep the TTL
//! far below latchkey's idle timeout.
//!
//! # Features
//!
//! - `actix` (off by default): the actix-web extractors `LatchkeyUser` and
//!   `LatchkeyAdmin`, which answer 401/403/503 as JSON for the handler.

mod cache;
mod client;
mod error;
mod identity;

#[cfg(feature = "actix")]
mod actix;

#[cfg(feature = "actix")]
pub use actix::{LatchkeyAdmin, LatchkeyUser, Rejection};
pub use cache::CacheConfig;
#[cfg(feature = "actix")]
pub use client::DEFAULT_REALM;
pub use client::{Client, ClientBuilder, DEFAULT_TIMEOUT};
pub use error::{Error, Unavailable};
pub use identity::Identity;
