//! The background reaper that deletes expired sessions in batches.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::TimeDelta;
use diesel::prelude::*;
use latchkey::db::schema::authentication_tokens;

use crate::helpers::{
    Backend, TestApp, eventually, metric, now_seconds, spawn_app_on, spawn_app_with,
};
use crate::on_both_backends;

on_both_backends!(
    the_reaper_deletes_idle_and_absolute_expired_sessions_and_keeps_live_ones,
    one_batch_deletes_at_most_the_batch_size,
    with_a_zero_interval_nothing_is_reaped,
    two_instances_reaping_one_database_delete_every_expired_row_and_no_live_one,
);

/// Polling bound for the reaper's work: generous, never an assertion on speed.
const PATIENCE: Duration = Duration::from_secs(10);

async fn session_ids(app: &TestApp) -> BTreeSet<String> {
    app.with_db(|conn| {
        authentication_tokens::table
            .select(authentication_tokens::id)
            .load::<String>(conn)
            .expect("session ids")
    })
    .await
    .into_iter()
    .collect()
}

/// Makes `ids` idle-expired (first `idle` of them) or absolute-expired (the rest).
async fn expire(app: &TestApp, ids: &[String], idle: usize) {
    let policy = app.settings.session;
    for (n, id) in ids.iter().enumerate() {
        if n < idle {
            let past = now_seconds() - policy.idle_timeout - TimeDelta::minutes(5);
            app.set_session_times(id, past, past).await;
        } else {
            let past = now_seconds() - policy.absolute_timeout - TimeDelta::minutes(5);
            app.set_session_times(id, past, now_seconds()).await;
        }
    }
}

async fn reaped_total(app: &TestApp) -> Option<f64> {
    metric(
        &app.metrics_text().await,
        "latchkey_sessions_reaped_total",
        &[],
    )
}

async fn the_reaper_deletes_idle_and_absolute_expired_sessions_and_keeps_live_ones(
    backend: Backend,
) {
    // Arrange: 5 expired sessions (3 idle, 2 absolute), more than two
    // batches of 2, and 3 live ones.
    let app = spawn_app_with(backend, |s| {
        s.reap_interval = Duration::from_millis(150);
        s.reap_batch = 2;
    })
    .await;
    assert_eq!(reaped_total(&app).await, Some(0.0));
    let alice = app.register_user().await;
    let bob = app.register_user().await;
    let mut doomed = Vec::new();
    for user in [&alice.user_id, &alice.user_id, &alice.user_id, &bob.user_id] {
        doomed.push(app.insert_session(user).await.0);
    }
    doomed.push(bob.session_id.clone());
    let (kept, kept_token) = app.insert_session(&bob.user_id).await;
    let live: BTreeSet<String> = [alice.session_id.clone(), kept].into_iter().collect();
    assert_eq!(session_ids(&app).await.len(), 7);

    // Act
    expire(&app, &doomed, 3).await;

    // Assert
    let reaped = eventually(PATIENCE, || async { session_ids(&app).await == live }).await;
    assert!(
        reaped,
        "expired sessions were not reaped: {:?} remain, expected {live:?}",
        session_ids(&app).await
    );
    assert!(
        eventually(PATIENCE, || async { reaped_total(&app).await == Some(5.0) }).await,
        "latchkey_sessions_reaped_total is {:?}, expected 5",
        reaped_total(&app).await
    );
    assert_eq!(app.status(&alice.token).await.status(), 200);
    assert_eq!(app.status(&kept_token).await.status(), 200);
    assert_eq!(app.count_users().await, 2);
}

async fn one_batch_deletes_at_most_the_batch_size(backend: Backend) {
    // Arrange: the reaper is off; 5 expired sessions and 1 live one.
    let app = spawn_app_with(backend, |s| s.reap_interval = Duration::ZERO).await;
    let user = app.register_user().await;
    let mut expired = Vec::new();
    for _ in 0..5 {
        expired.push(app.insert_session(&user.user_id).await.0);
    }
    expire(&app, &expired, 3).await;
    let policy = app.settings.session;
    let delete_batch = || {
        app.with_db(move |conn| {
            latchkey::store::sessions::delete_expired_batch(
                conn,
                &policy,
                latchkey::domain::now(),
                2,
            )
            .expect("delete_expired_batch")
        })
    };

    // Act + Assert: 2, 2, 1, then nothing; the live session stays.
    assert_eq!(delete_batch().await, 2);
    assert_eq!(app.count_sessions().await, 4);
    assert_eq!(delete_batch().await, 2);
    assert_eq!(app.count_sessions().await, 2);
    assert_eq!(delete_batch().await, 1);
    assert_eq!(delete_batch().await, 0);
    let remaining: Vec<String> = session_ids(&app).await.into_iter().collect();
    assert_eq!(remaining, std::slice::from_ref(&user.session_id));
    assert_eq!(app.status(&user.token).await.status(), 200);
}

async fn with_a_zero_interval_nothing_is_reaped(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| {
        s.reap_interval = Duration::ZERO;
        s.reap_batch = 2;
    })
    .await;
    let user = app.register_user().await;
    let mut expired = Vec::new();
    for _ in 0..3 {
        expired.push(app.insert_session(&user.user_id).await.0);
    }
    expire(&app, &expired, 2).await;
    let before = session_ids(&app).await;
    assert_eq!(before.len(), 4);

    // Act: give a reaper, were one running, ample time (its would-be
    // interval in the other test is 150 ms).
    let reaped = eventually(Duration::from_secs(1), || async {
        session_ids(&app).await.len() < 4
    })
    .await;

    // Assert
    assert!(!reaped, "sessions were reaped with the reaper disabled");
    assert_eq!(session_ids(&app).await, before);
    assert_eq!(reaped_total(&app).await, Some(0.0));
}

async fn two_instances_reaping_one_database_delete_every_expired_row_and_no_live_one(
    backend: Backend,
) {
    // Arrange: two latchkeys on one database, both reaping in small batches.
    let reaping = |s: &mut latchkey::settings::Settings| {
        s.reap_interval = Duration::from_millis(100);
        s.reap_batch = 3;
    };
    let first = spawn_app_with(backend, |s| {
        reaping(s);
        s.reap_interval = Duration::ZERO; // armed below, once the rows exist
    })
    .await;
    let user = first.insert_user("shared@example.com").await;
    let mut ids = Vec::new();
    for _ in 0..24 {
        ids.push(first.insert_session(&user).await.0);
    }
    let (expired, live) = ids.split_at(20);
    expire(&first, expired, 10).await;

    // Act: two more instances on the same database, both reaping.
    let second = spawn_app_on(first.settings.database_url.clone(), reaping).await;
    let third = spawn_app_on(first.settings.database_url.clone(), reaping).await;

    // Assert: every expired row goes, every live one stays, and the
    // instances count 20 reaped rows between them (none twice).
    let live: BTreeSet<String> = live.iter().cloned().collect();
    assert!(
        eventually(PATIENCE, || async { session_ids(&first).await == live }).await,
        "expired rows were left or live ones deleted"
    );
    let reaped =
        reaped_total(&second).await.unwrap_or(0.0) + reaped_total(&third).await.unwrap_or(0.0);
    assert_eq!(reaped, 20.0);
}
