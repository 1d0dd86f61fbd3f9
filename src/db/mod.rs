//! Everything that differs between MySQL, PostgreSQL and SQLite lives here.
//! The rest of the code sees one [`Connection`] and one [`Pool`].

mod batch;
mod connection;
mod durability;
mod migrate;
pub mod schema;
mod threads;

use std::fmt;
use std::time::Duration;

use anyhow::Context as _;
use diesel::Connection as _;
use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use diesel::r2d2;

/// The database used when `DATABASE_URL` is unset: a file next to the process.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://latchkey.sqlite3";

/// How long SQLite waits for the write lock before giving up with "busy".
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

pub use batch::Batcher;
pub use connection::DbConnection as Connection;
pub use durability::{LostRace, durably, retry_on_deadlock};
pub use migrate::run_migrations;
pub use threads::DbThreads;

pub type Pool = r2d2::Pool<ConnectionManager>;

/// Runs `$body` with `$c` bound to the backend's own connection
/// (`&mut MysqlConnection`, `&mut PgConnection` or `&mut SqliteConnection`), for the queries of
/// the hot path. Through the [`Connection`] enum, diesel writes out a
/// query's SQL text on every execution to find its prepared statement
/// (6 % of the service's CPU in `bench/run.sh`'s status scenario); on the
/// backend's own connection a query of fixed shape finds it by its type.
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::Connection::Mysql($c) => $body,
            $crate::db::Connection::Postgres($c) => $body,
            $crate::db::Connection::Sqlite($c) => $body,
        }
    };
}
pub(crate) use on_backend;

/// A connection as the pool keeps it: the connection, and whether a query
/// on it failed in a way that means the link to the server is gone (the
/// pool then drops it instead of handing it out again). Derefs to
/// [`Connection`], so `&mut pooled` is accepted wherever one is expected.
pub struct PoolConnection {
    conn: Connection,
    lost: bool,
}

impl PoolConnection {
    /// Marks the connection as unusable: the pool will close it.
    pub fn mark_lost(&mut self) {
        self.lost = true;
    }
}

impl std::ops::Deref for PoolConnection {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl std::ops::DerefMut for PoolConnection {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

/// Whether an error means the database cannot be reached (as opposed to a
/// query that is wrong): these become 503, not 500. libmysqlclient reports
/// them with client error numbers 2002–2013 and diesel passes on only the
/// message, as it does for libpq's; SQLite's "database is locked" means the
/// busy timeout ran out.
pub fn is_unavailable(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match error {
        Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => true,
        Error::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            // libmysqlclient and MariaDB Connector/C word these differently
            // ("MySQL server has gone away" / "Server has gone away").
            let message = info.message().to_ascii_lowercase();
            [
                "has gone away",
                "lost connection",
                "can't connect",
                "connection refused",
                "server shutdown in progress",
                "database is locked",
                // libpq and PostgreSQL
                "server closed the connection",
                "could not connect",
                "terminating connection",
                "the database system is",
                "no connection to the server",
                // A Galera node that is not (yet) part of the primary
                // component: another node can answer.
                "wsrep has not yet prepared node",
            ]
            .iter()
            .any(|needle| message.contains(needle))
        }
        _ => false,
    }
}

pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

/// A database location, with the backend chosen explicitly from the URL
/// scheme. (SQLite accepts any string as a path, so "try MySQL, then SQLite"
/// would silently turn a mistyped MySQL URL into a local file.)
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Mysql(String),
    Postgres(String),
    Sqlite(String),
}

impl DatabaseUrl {
    /// Accepts `mysql://…` (or `mariadb://…`), `postgres://…` (or
    /// `postgresql://…`), `sqlite://PATH`, `sqlite:PATH` and `file:PATH`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.starts_with("mysql://") || raw.starts_with("mariadb://") {
            let rest = raw.split_once("://").map_or("", |(_, rest)| rest);
            return Ok(Self::Mysql(format!("mysql://{rest}")));
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(raw.to_owned()));
        }
        let path = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
            .or_else(|| raw.strip_prefix("file:").map(|_| raw));
        match path {
            Some("") => Err("the SQLite URL names no file".into()),
            Some(path) => Ok(Self::Sqlite(path.to_owned())),
            None => Err(
                "expected a URL starting with mysql://, postgres:// or sqlite:// (for example sqlite://latchkey.sqlite3)"
                    .into(),
            ),
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Mysql(_) => "mysql",
            Self::Postgres(_) => "postgres",
            Self::Sqlite(_) => "sqlite",
        }
    }
}

/// Never prints a MySQL password.
impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mysql(url) => {
                let host = url.rsplit_once('@').map_or(url.as_str(), |(_, host)| host);
                write!(f, "mysql://…@{}", host.trim_start_matches("mysql://"))
            }
            Self::Postgres(url) => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
                let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
                // Query parameters may carry a password too.
                let host = host.split('?').next().unwrap_or(host);
                write!(f, "{scheme}://…@{host}")
            }
            Self::Sqlite(path) => write!(f, "sqlite://{path}"),
        }
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// An r2d2 manager that opens the backend named by the URL and applies the
/// per-connection settings each backend needs.
#[derive(Debug)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

impl ConnectionManager {
    pub fn new(url: DatabaseUrl) -> Self {
        Self { url }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = PoolConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<PoolConnection, r2d2::Error> {
        open(&self.url).map(|conn| PoolConnection { conn, lost: false })
    }

    fn is_valid(&self, conn: &mut PoolConnection) -> Result<(), r2d2::Error> {
        ping(conn).map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut PoolConnection) -> bool {
        use diesel::r2d2::R2D2Connection as _;
        conn.lost
            || match &mut conn.conn {
                Connection::Mysql(c) => c.is_broken(),
                Connection::Postgres(c) => c.is_broken(),
                Connection::Sqlite(c) => c.is_broken(),
            }
    }
}

/// Opens a connection to the backend the URL names, with the per-connection
/// settings that backend needs.
fn open(url: &DatabaseUrl) -> Result<Connection, r2d2::Error> {
    match url {
        DatabaseUrl::Mysql(url) => {
            let mut conn =
                diesel::MysqlConnection::establish(url).map_err(r2d2::Error::ConnectionError)?;
            // On a Galera node, every read first waits until the node has
            // applied what the cluster committed before it: a session
            // logged out through another node is never seen alive here.
            // (An error means a server without Galera: nothing to do.)
            let _ = conn.batch_execute("SET SESSION wsrep_sync_wait = IF(@@global.wsrep_on, 1, 0)");
            Ok(Connection::Mysql(conn))
        }
        DatabaseUrl::Postgres(url) => {
            let mut conn =
                diesel::PgConnection::establish(url).map_err(r2d2::Error::ConnectionError)?;
            // Timestamps are UTC (diesel's TIMESTAMP is without a zone);
            // the session's zone only matters to NOW(), which is not used.
            conn.batch_execute("SET TIME ZONE 'UTC'")
                .map_err(r2d2::Error::QueryError)?;
            // latchkey reads sessions and users by key, and the ones in use
            // sit in the server's cache. With PostgreSQL's default
            // random_page_cost (4, a spinning disk's) its planner joins a
            // batch of 32 or more checks by hashing the whole users table
            // while that table is small (0.85 ms a batch against 0.2 ms by
            // index, with 2,900 users). 1.1 is PostgreSQL's advice for SSDs
            // and cached data; set for latchkey's connections only, and
            // never raised above what the server has.
            conn.batch_execute(
                "SELECT set_config('random_page_cost', \
                 LEAST(current_setting('random_page_cost')::float8, 1.1)::text, false)",
            )
            .map_err(r2d2::Error::QueryError)?;
            Ok(Connection::Postgres(conn))
        }
        DatabaseUrl::Sqlite(path) => {
            let mut conn =
                diesel::SqliteConnection::establish(path).map_err(r2d2::Error::ConnectionError)?;
            // WAL lets readers proceed while one writer commits; the busy
            // timeout makes writers queue instead of failing at once;
            // synchronous = NORMAL does not sync the WAL at each commit
            // (a crash of the host may lose the last ones; revocations are
            // committed through [`durably`], which does); SQLite enforces
            // foreign keys (ON DELETE CASCADE) only when asked.
            conn.batch_execute(&format!(
                "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};
                 PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 PRAGMA foreign_keys = ON;"
            ))
            .map_err(r2d2::Error::QueryError)?;
            Ok(Connection::Sqlite(conn))
        }
    }
}

/// Pool sizing and timeouts, taken from the settings.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_size: u32,
    /// Connections kept open while idle; `None` (the default) keeps all
    /// `max_size` open from start-up on: a fixed-size pool. A pool that grows
    /// on demand opens connections exactly when load arrives (and again
    /// after each quiet spell, as r2d2 closes idle connections above the
    /// minimum after ten minutes), so the first requests of a burst wait for
    /// connection set-up on what may be a saturated machine.
    pub min_idle: Option<u32>,
    pub acquire_timeout: Duration,
}

/// Builds the pool without connecting: start-up reports a database that is
/// down through the migration step, and the pool reconnects by itself later.
pub fn build_pool(url: &DatabaseUrl, options: &PoolOptions) -> Pool {
    r2d2::Pool::builder()
        .max_size(options.max_size)
        .min_idle(options.min_idle.map(|n| n.min(options.max_size)))
        .connection_timeout(options.acquire_timeout)
        // A connection that fails its check is replaced, not handed out.
        .test_on_check_out(false)
        .build_unchecked(ConnectionManager::new(url.clone()))
}

/// A round trip to the database, for readiness and connection checks.
pub fn ping(conn: &mut Connection) -> QueryResult<()> {
    diesel::sql_query("SELECT 1").execute(conn).map(|_| ())
}

/// Opens one connection outside any pool (for the CLI).
pub fn connect(url: &DatabaseUrl) -> anyhow::Result<Connection> {
    open(url).with_context(|| format!("failed to connect to {url}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_urls_are_recognised_by_scheme() {
        assert_eq!(
            DatabaseUrl::parse("mysql://root@127.0.0.1:3306/db"),
            Ok(DatabaseUrl::Mysql("mysql://root@127.0.0.1:3306/db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("mariadb://u:p@h/db"),
            Ok(DatabaseUrl::Mysql("mysql://u:p@h/db".into()))
        );
    }

    #[test]
    fn sqlite_urls_name_a_file() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/l.db"),
            Ok(DatabaseUrl::Sqlite("data/l.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:l.db"),
            Ok(DatabaseUrl::Sqlite("l.db".into()))
        );
        assert!(DatabaseUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn postgres_urls_are_recognised_by_scheme() {
        for url in ["postgres://u:p@h:5432/db", "postgresql://u@h/db"] {
            assert_eq!(
                DatabaseUrl::parse(url),
                Ok(DatabaseUrl::Postgres(url.into()))
            );
        }
        let shown = format!(
            "{:?}",
            DatabaseUrl::parse("postgres://app:hunter2@db/l?password=x2").unwrap()
        );
        assert!(
            !shown.contains("hunter2") && !shown.contains("x2"),
            "{shown}"
        );
    }

    #[test]
    fn unknown_schemes_and_bare_paths_are_refused() {
        assert!(DatabaseUrl::parse("redis://localhost/db").is_err());
        assert!(DatabaseUrl::parse("mysql:/oops").is_err());
        assert!(DatabaseUrl::parse("latchkey.db").is_err());
    }

    #[test]
    fn debug_hides_the_mysql_password() {
        let url = DatabaseUrl::parse("mysql://app:hunter2@db:3306/latchkey").unwrap();
        let shown = format!("{url:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("db:3306/latchkey"), "{shown}");
    }
}
