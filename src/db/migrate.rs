//! Applying the schema's migrations, once, even when several instances of a
//! deployment start together on an empty database (as an orchestrator
//! starts the replicas of a new deployment): without care, two of them
//! both see a migration pending, one creates a table and the other fails
//! to start with "table already exists".

use std::time::Duration;

use anyhow::Context as _;
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness as _, embed_migrations};

use super::Connection;

const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/mysql");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// The name of the advisory lock that instances take while they migrate
/// (MySQL's `GET_LOCK`; PostgreSQL's `pg_advisory_lock` takes a number:
/// the first eight bytes of "latchkey").
const LOCK_NAME: &str = "latchkey_migrations";
const PG_LOCK_KEY: i64 = 0x6c61_7463_686b_6579;

/// How long an instance waits for another one's migrations.
const LOCK_WAIT_SECONDS: u32 = 120;

/// Attempts when migrating fails without a lock to serialise the
/// instances (a Galera cluster refuses `GET_LOCK`; SQLite has none), or
/// with one: a losing instance finds the work done on its next attempt.
const ATTEMPTS: u32 = 20;

/// Applies the pending migrations of the connection's backend and returns
/// the versions it applied (none when another instance applied them).
pub fn run_migrations(conn: &mut Connection) -> anyhow::Result<Vec<String>> {
    let locked = lock(conn)?;
    let result = apply_with_retries(conn);
    if locked {
        unlock(conn);
    }
    result
}

/// Takes the migration lock where the backend has one, waiting for an
/// instance that holds it. Returns whether it took one.
fn lock(conn: &mut Connection) -> anyhow::Result<bool> {
    #[derive(QueryableByName)]
    struct Taken {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        taken: i64,
    }
    match conn {
        Connection::Postgres(c) => {
            diesel::sql_query(format!("SELECT pg_advisory_lock({PG_LOCK_KEY})"))
                .execute(c)
                .context("failed to take the migration lock")?;
            Ok(true)
        }
        Connection::Mysql(c) => {
            let taken = diesel::sql_query(format!(
                "SELECT CAST(COALESCE(GET_LOCK('{LOCK_NAME}', {LOCK_WAIT_SECONDS}), 0) AS SIGNED) AS taken"
            ))
            .get_result::<Taken>(c);
            match taken {
                Ok(Taken { taken: 1 }) => Ok(true),
                Ok(_) => anyhow::bail!(
                    "another instance has been applying the migrations for {LOCK_WAIT_SECONDS} s"
                ),
                // A Galera node refuses GET_LOCK ("not supported in
                // cluster"): the retries below serialise the instances.
                Err(_) => Ok(false),
            }
        }
        Connection::Sqlite(_) => Ok(false),
    }
}

fn unlock(conn: &mut Connection) {
    let statement = match conn {
        Connection::Postgres(_) => format!("SELECT pg_advisory_unlock({PG_LOCK_KEY})"),
        Connection::Mysql(_) => format!("SELECT RELEASE_LOCK('{LOCK_NAME}')"),
        Connection::Sqlite(_) => return,
    };
    // Closing the connection releases it too.
    if let Err(e) = diesel::sql_query(statement).execute(conn) {
        tracing::warn!(error = %e, "failed to release the migration lock");
    }
}

/// Each migration runs in a transaction, or (MySQL's DDL) fails at its
/// first statement when another instance ran that statement first: what
/// failed was not applied, and the next attempt finds what the other
/// instance applied and goes on from there.
fn apply_with_retries(conn: &mut Connection) -> anyhow::Result<Vec<String>> {
    let mut attempt = 1;
    loop {
        match apply(conn) {
            Ok(applied) => return Ok(applied),
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(
                    attempt,
                    error = %format!("{e:#}"),
                    "applying the migrations failed; another instance may be applying them, trying again"
                );
                use rand::RngExt as _;
                let wait = 100 + rand::rng().random_range(0..=200);
                std::thread::sleep(Duration::from_millis(wait));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

fn apply(conn: &mut Connection) -> anyhow::Result<Vec<String>> {
    let applied = match conn {
        Connection::Mysql(c) => c.run_pending_migrations(MYSQL_MIGRATIONS),
        Connection::Postgres(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS),
        Connection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS),
    }
    .map_err(|e| anyhow::anyhow!(e))
    .context("failed to apply the database migrations")?;
    Ok(applied.into_iter().map(|v| v.to_string()).collect())
}
