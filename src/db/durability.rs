//! Writes that must not fail for a lost race, nor come undone after a
//! crash: the deadlock (and certification-conflict) retry, and durable
//! commits on SQLite.

use std::time::Duration;

use diesel::connection::SimpleConnection as _;

use super::Connection;

/// An error that may mean the transaction lost a race the database settled
/// by rolling it back whole, so that running it again is safe.
pub trait LostRace {
    fn lost_race(&self) -> bool;
}

impl LostRace for diesel::result::Error {
    /// A deadlock's victim (MySQL error 1213, reported by diesel as a
    /// serialization failure; also how Galera reports a certification
    /// conflict with a write committed on another node), PostgreSQL's
    /// 40P01, which diesel does not name, and MySQL's 1213 when it comes
    /// from COMMIT (Galera's certification conflict), which diesel reports
    /// without a kind.
    fn lost_race(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
            Error::DatabaseError(DatabaseErrorKind::Unknown, info) => {
                info.message().starts_with("deadlock detected")
                    || info.message().starts_with("Deadlock found")
            }
            _ => false,
        }
    }
}

/// Runs a write transaction again when the database chose it as the victim
/// of a deadlock or a certification conflict (see [`LostRace`]): it was
/// rolled back whole, so a retry is safe. Later attempts wait a little (a
/// few milliseconds, growing, with jitter; up to 16 attempts), so that
/// transactions racing for one row across Galera nodes stop colliding.
/// Works for any error that can tell (`diesel`'s, and the API's, which
/// keeps the database error it came from).
pub fn retry_on_deadlock<T, E: LostRace>(
    mut attempt: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    const ATTEMPTS: u32 = 16;
    for n in 1..ATTEMPTS {
        match attempt() {
            Err(e) if e.lost_race() => {}
            done => return done,
        }
        if n > 1 {
            // 2-6 ms after the second loss, growing to 15-45 ms: about half
            // a second in all before the last attempt.
            use rand::RngExt as _;
            let base = n.min(15);
            let jitter = rand::rng().random_range(0..=base * 2);
            std::thread::sleep(Duration::from_millis(u64::from(base + jitter)));
        }
    }
    attempt()
}

/// Runs `work` (a transaction, or single statements) so that what it
/// commits is on disk when it returns, even if the database's host then
/// crashes: for the answers that must not come undone (logouts,
/// revocations, password changes, suspensions, deletions). On SQLite the
/// connection syncs its WAL at each commit while `work` runs
/// (`synchronous = FULL`; the rest of the time NORMAL, which costs a write
/// on every check about a fifth of its speed with
/// `LATCHKEY_TOUCH_INTERVAL=0`); MySQL and PostgreSQL commit durably with
/// their default settings (see the README). Never call it inside a
/// transaction: SQLite cannot change the setting there.
pub fn durably<T, E>(
    conn: &mut Connection,
    work: impl FnOnce(&mut Connection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    let sqlite = matches!(conn, Connection::Sqlite(_));
    if sqlite {
        conn.batch_execute("PRAGMA synchronous = FULL")?;
    }
    let result = work(conn);
    if sqlite {
        // Left at FULL, the connection is only slower, never less safe.
        let _ = conn.batch_execute("PRAGMA synchronous = NORMAL");
    }
    result
}

#[cfg(test)]
mod tests {
    use diesel::prelude::{QueryableByName, RunQueryDsl};

    use super::*;
    use crate::db::{DatabaseUrl, connect};

    #[test]
    fn sqlite_syncs_every_commit_only_inside_durably() {
        #[derive(QueryableByName)]
        struct Synchronous {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            synchronous: i32,
        }
        fn level(conn: &mut Connection) -> i32 {
            diesel::sql_query("PRAGMA synchronous")
                .get_result::<Synchronous>(conn)
                .expect("the pragma answers")
                .synchronous
        }
        let dir = tempfile::tempdir().expect("a temp dir");
        let url = DatabaseUrl::Sqlite(dir.path().join("d.sqlite3").display().to_string());
        let mut conn = connect(&url).expect("a connection");
        // 1 = NORMAL, 2 = FULL.
        assert_eq!(level(&mut conn), 1);
        let inside = durably(&mut conn, |conn| {
            Ok::<_, diesel::result::Error>(level(conn))
        });
        assert_eq!(inside, Ok(2));
        assert_eq!(level(&mut conn), 1, "back to NORMAL afterwards");
    }
}
