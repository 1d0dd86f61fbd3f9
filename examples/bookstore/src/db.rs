//! The SQLite database: a pool, the embedded migrations and the schema.

use std::path::Path;

use anyhow::Context as _;
use diesel::connection::SimpleConnection as _;
use diesel::r2d2::{self, ConnectionManager, CustomizeConnection};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness as _, embed_migrations};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub type Pool = r2d2::Pool<ConnectionManager<SqliteConnection>>;

pub mod schema {
    diesel::table! {
        books (id) {
            id -> Text,
            title -> Text,
            author -> Text,
            year -> Nullable<Integer>,
            created_by -> Text,
        }
    }
}

/// A pool on the SQLite file (created if missing). Nothing is opened yet.
pub fn build_pool(path: &Path) -> Pool {
    let manager = ConnectionManager::new(path.to_string_lossy());
    r2d2::Pool::builder()
        .max_size(4)
        .connection_customizer(Box::new(Pragmas))
        .build_unchecked(manager)
}

/// Applies the pending migrations; blocking.
pub fn run_migrations(pool: &Pool) -> anyhow::Result<()> {
    let mut conn = pool.get().context("failed to open the database")?;
    conn.run_pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("failed to migrate the database: {e}"))?;
    Ok(())
}

/// WAL lets readers go on while one writer commits; the busy timeout makes
/// concurrent writers queue instead of failing at once.
#[derive(Debug)]
struct Pragmas;

impl CustomizeConnection<SqliteConnection, r2d2::Error> for Pragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), r2d2::Error> {
        conn.batch_execute(
            "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
        )
        .map_err(r2d2::Error::QueryError)
    }
}
