//! How a message leaves latchkey: SMTP or a signed webhook, from the
//! outbox, by a background sender. The request path only writes the outbox.
//!
//! `config` says which way out is configured, `message` what is sent,
//! `sender` the loop that drains the outbox through `smtp` or `webhook`.

pub mod config;
pub mod message;
pub mod sender;
pub mod smtp;
pub mod webhook;
