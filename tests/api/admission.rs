//! Requests are admitted to the database no faster than the pool has
//! connections, and a request that cannot get one within the acquire timeout
//! is answered 503 instead of waiting without bound. The pool is opened
//! whole at start-up, so load never waits for connections to be made.

use std::sync::mpsc;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::helpers::{Backend, TestApp, assert_error, metric, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    a_request_that_waits_too_long_for_a_connection_gets_503_and_the_held_one_completes,
    the_whole_pool_is_opened_at_start_up_and_kept_open,
);

/// Holds a write lock on the session row (MariaDB) or the database (SQLite)
/// from the test's own connection until `release` is signalled.
fn hold_session_lock(
    app: &TestApp,
    backend: Backend,
    session_id: String,
) -> (
    mpsc::Receiver<()>,
    mpsc::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let (locked_tx, locked_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let pool = app.pool.clone();
    let holder = std::thread::spawn(move || {
        let mut conn = pool.get().expect("a test connection");
        let conn: &mut latchkey::db::Connection = &mut conn;
        match backend {
            Backend::Mysql => {
                conn.transaction(|c| {
                    diesel::sql_query(
                        "SELECT id FROM authentication_tokens WHERE id = ? FOR UPDATE",
                    )
                    .bind::<Text, _>(&session_id)
                    .execute(c)?;
                    locked_tx.send(()).expect("the test listens");
                    release_rx.recv().expect("the test releases the lock");
                    diesel::QueryResult::Ok(())
                })
                .expect("the locking transaction");
            }
            Backend::Postgres => {
                conn.transaction(|c| {
                    diesel::sql_query(
                        "SELECT id FROM authentication_tokens WHERE id = $1 FOR UPDATE",
                    )
                    .bind::<Text, _>(&session_id)
                    .execute(c)?;
                    locked_tx.send(()).expect("the test listens");
                    release_rx.recv().expect("the test releases the lock");
                    diesel::QueryResult::Ok(())
                })
                .expect("the locking transaction");
            }
            Backend::Sqlite => {
                diesel::sql_query("BEGIN IMMEDIATE")
                    .execute(conn)
                    .expect("write lock taken");
                locked_tx.send(()).expect("the test listens");
                release_rx.recv().expect("the test releases the lock");
                diesel::sql_query("COMMIT")
                    .execute(conn)
                    .expect("write lock released");
            }
        }
    });
    (locked_rx, release_tx, holder)
}

async fn a_request_that_waits_too_long_for_a_connection_gets_503_and_the_held_one_completes(
    backend: Backend,
) {
    // Arrange: one connection, a short acquire timeout, and a write on every
    // check, so that a check stuck on a lock keeps the only connection.
    let app = spawn_app_with(backend, |s| {
        s.pool.max_size = 1;
        s.pool.min_idle = Some(1);
        s.pool.acquire_timeout = Duration::from_millis(300);
        s.session.touch_interval = chrono::TimeDelta::zero();
    })
    .await;
    let user = app.register_user().await;
    let (locked, release, holder) = hold_session_lock(&app, backend, user.session_id.clone());
    tokio::task::spawn_blocking(move || locked.recv().expect("the lock is taken"))
        .await
        .unwrap();

    // Act: the first check takes the connection and waits on the lock; the
    // second cannot be admitted.
    let first = {
        let client = app.client.clone();
        let url = format!("{}/auth/status", app.address);
        let token = user.token.clone();
        tokio::spawn(async move { client.get(url).bearer_auth(token).send().await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    // (A generous bound turns "waits until the lock goes" into a failure
    // rather than a hung test; the lock is released only afterwards.)
    let second = tokio::time::timeout(Duration::from_secs(30), app.status(&user.token))
        .await
        .expect("the second check was answered while the lock was still held");

    // Assert: a JSON 503 with Retry-After, not a hang until the lock goes.
    assert_eq!(
        second
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert_error(second, 503, "service_unavailable").await;
    // Once the lock goes, the held request completes and the session is intact.
    release.send(()).expect("the holder listens");
    tokio::task::spawn_blocking(move || holder.join().expect("the holder finished"))
        .await
        .unwrap();
    let first = first.await.unwrap().expect("the first check was answered");
    assert_eq!(first.status(), 200);
    assert_eq!(app.status(&user.token).await.status(), 200);
    let rows = app.session_rows(&user.user_id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, user.session_id);
}

/// The pool's connections by state, from `/metrics`: (idle, in use).
async fn pool_connections(app: &TestApp) -> (f64, f64) {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let value = |state| {
        metric(&text, "latchkey_db_pool_connections", &[("state", state)])
            .unwrap_or_else(|| panic!("no pool gauge for {state} in:\n{text}"))
    };
    (value("idle"), value("in_use"))
}

async fn the_whole_pool_is_opened_at_start_up_and_kept_open(backend: Backend) {
    // Arrange: the default (no minimum of idle connections: a fixed-size
    // pool), with more connections than start-up itself needs.
    let app = spawn_app_with(backend, |s| {
        s.pool.max_size = 5;
        s.pool.min_idle = None;
    })
    .await;

    // Act: no request touches the database; the pool fills in the background.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut connections = pool_connections(&app).await;
    while connections.0 + connections.1 < 5.0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        connections = pool_connections(&app).await;
    }

    // Assert: every connection is open and idle, and the service answers.
    assert_eq!(connections, (5.0, 0.0));
    let user = app.register_user().await;
    assert_eq!(app.status(&user.token).await.status(), 200);
    let (idle, in_use) = pool_connections(&app).await;
    assert_eq!(idle + in_use, 5.0);
}
