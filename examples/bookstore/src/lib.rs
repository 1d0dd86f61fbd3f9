//! bookstore: an example service behind latchkey. The books API of the usual
//! JWT tutorial (`/books`), where every route asks latchkey whether the
//! bearer token is live, through `latchkey-client`'s actix extractors.
//!
//! `startup` wires it; `routes` names each handler, which names the query in
//! `books`; `config` reads the environment; `error` is the one mapping of
//! errors to HTTP.

pub mod books;
pub mod config;
pub mod db;
pub mod error;
pub mod routes;
pub mod startup;

pub use config::Config;
pub use startup::build;
