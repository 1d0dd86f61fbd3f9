//! Settings from the environment, read once at start-up.

use std::fmt;
use std::path::PathBuf;

use anyhow::Context as _;

/// Where to listen, where the books are, and how to reach latchkey.
#[derive(Clone)]
pub struct Config {
    /// `BOOKSTORE_BIND` (default `127.0.0.1:8081`); port 0 picks a free one.
    pub bind: String,
    /// `BOOKSTORE_DATABASE`: the SQLite file (default `bookstore.sqlite3`),
    /// created with its table at start-up.
    pub database: PathBuf,
    /// `LATCHKEY_URL` (default `http://127.0.0.1:8080`).
    pub latchkey_url: String,
    /// `LATCHKEY_SERVICE_KEY`: one of latchkey's `LATCHKEY_INTROSPECT_KEYS`
    /// (required).
    pub service_key: String,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let var = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let service_key = std::env::var("LATCHKEY_SERVICE_KEY")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .context(
                "LATCHKEY_SERVICE_KEY is not set: give one of latchkey's LATCHKEY_INTROSPECT_KEYS",
            )?;
        Ok(Self {
            bind: var("BOOKSTORE_BIND", "127.0.0.1:8081"),
            database: var("BOOKSTORE_DATABASE", "bookstore.sqlite3").into(),
            latchkey_url: var("LATCHKEY_URL", "http://127.0.0.1:8080"),
            service_key,
        })
    }
}

/// Never prints the service key.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("database", &self.database)
            .field("latchkey_url", &self.latchkey_url)
            .field("service_key", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_service_key() {
        let config = Config {
            bind: "127.0.0.1:0".into(),
            database: "books.sqlite3".into(),
            latchkey_url: "http://127.0.0.1:8080".into(),
            service_key: "service-key-0123456789abcdefghijklmnop".into(),
        };

        let shown = format!("{config:?}");

        assert!(!shown.contains("0123456789"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }
}
