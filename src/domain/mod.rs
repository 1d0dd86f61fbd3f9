//! Domain types and rules: parsed once at the edge, trusted afterwards.
//! Nothing here knows about HTTP or the database.

pub mod code;
pub mod email;
pub mod expiry;
pub mod password;
pub mod service_key;
pub mod token;

pub use code::{CodeDigest, OneTimeCode, Purpose};
pub use email::Email;
pub use expiry::{SessionPolicy, now};
pub use password::{Password, PasswordPolicy};
pub use service_key::ServiceKeys;
pub use token::{SessionToken, TokenDigest, TokenError};
