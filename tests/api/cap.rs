//! The per-user session cap (`sessions_per_user`): a login beyond it evicts
//! the least recently used sessions.

use chrono::{SubsecRound as _, TimeDelta};
use serde_json::{Value, json};

use crate::helpers::{Backend, Registered, TestApp, assert_error, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    logging_in_one_more_time_than_the_cap_evicts_the_first_session,
    with_a_cap_of_one_only_the_latest_session_survives,
    a_recently_used_session_is_kept_over_an_older_unused_one,
    expired_sessions_do_not_count_against_the_cap,
    the_cap_is_per_user,
    concurrent_logins_never_exceed_the_cap,
);

/// A registered user whose registration session was logged out.
async fn user_without_sessions(app: &TestApp) -> Registered {
    let user = app.register_user().await;
    assert_eq!(
        app.post_with_token("/auth/logout", &user.token)
            .await
            .status(),
        204
    );
    user
}

async fn logging_in_one_more_time_than_the_cap_evicts_the_first_session(backend: Backend) {
    // Arrange
    let k = 3;
    let app = spawn_app_with(backend, |s| s.sessions_per_user = k).await;
    let user = user_without_sessions(&app).await;
    let mut tokens = Vec::new();
    for _ in 0..k {
        tokens.push(app.login_token(&user.email, &user.password).await);
    }
    assert_eq!(app.session_rows(&user.user_id).await.len(), k as usize);

    // Act
    tokens.push(app.login_token(&user.email, &user.password).await);

    // Assert
    assert_eq!(app.session_rows(&user.user_id).await.len(), k as usize);
    assert_error(app.status(&tokens[0]).await, 401, "invalid_token").await;
    for token in &tokens[1..] {
        assert_eq!(app.status(token).await.status(), 200);
    }
}

async fn with_a_cap_of_one_only_the_latest_session_survives(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| s.sessions_per_user = 1).await;
    let user = app.register_user().await;

    // Act
    let second = app.login_token(&user.email, &user.password).await;
    let third = app.login_token(&user.email, &user.password).await;

    // Assert
    let rows = app.session_rows(&user.user_id).await;
    assert_eq!(rows.len(), 1);
    assert_error(app.status(&user.token).await, 401, "invalid_token").await;
    assert_error(app.status(&second).await, 401, "invalid_token").await;
    let status = app.status(&third).await;
    assert_eq!(status.status(), 200);
    let body: Value = status.json().await.unwrap();
    assert_eq!(body["session"]["id"], rows[0].id.as_str());
}

async fn a_recently_used_session_is_kept_over_an_older_unused_one(backend: Backend) {
    // Arrange: every request slides, so using the first session makes the
    // second the least recently used.
    let app = spawn_app_with(backend, |s| {
        s.sessions_per_user = 2;
        s.session.touch_interval = TimeDelta::zero();
    })
    .await;
    let user = app.register_user().await;
    let second = app.login_token(&user.email, &user.password).await;
    assert_eq!(app.status(&user.token).await.status(), 200);

    // Act
    let third = app.login_token(&user.email, &user.password).await;

    // Assert
    assert_eq!(app.session_rows(&user.user_id).await.len(), 2);
    assert_error(app.status(&second).await, 401, "invalid_token").await;
    assert_eq!(app.status(&user.token).await.status(), 200);
    assert_eq!(app.status(&third).await.status(), 200);
}

async fn expired_sessions_do_not_count_against_the_cap(backend: Backend) {
    // Arrange: the first session is past its absolute timeout although it
    // was used more recently than the second; it, not the second, must go.
    let app = spawn_app_with(backend, |s| s.sessions_per_user = 2).await;
    let user = app.register_user().await;
    let second = app.login_token(&user.email, &user.password).await;
    let now = chrono::Utc::now().naive_utc().trunc_subsecs(6);
    let created = now - app.settings.session.absolute_timeout - TimeDelta::hours(1);
    app.set_session_times(&user.session_id, created, now).await;

    // Act
    let third = app.login_token(&user.email, &user.password).await;

    // Assert
    let rows = app.session_rows(&user.user_id).await;
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.id != user.session_id));
    assert_eq!(app.status(&second).await.status(), 200);
    assert_eq!(app.status(&third).await.status(), 200);
}

async fn the_cap_is_per_user(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| s.sessions_per_user = 1).await;
    let alice = app.register_user().await;
    let bob = app.register_user().await;

    // Act
    let alice_second = app.login_token(&alice.email, &alice.password).await;

    // Assert
    assert_eq!(app.session_rows(&alice.user_id).await.len(), 1);
    assert_eq!(app.status(&alice_second).await.status(), 200);
    assert_eq!(app.session_rows(&bob.user_id).await.len(), 1);
    assert_eq!(app.status(&bob.token).await.status(), 200);
}

async fn concurrent_logins_never_exceed_the_cap(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| s.sessions_per_user = 2).await;
    let user = user_without_sessions(&app).await;

    // Act
    let logins: Vec<_> = (0..6)
        .map(|_| {
            let request = app
                .client
                .post(app.url("/auth/login"))
                .json(&json!({ "email": user.email, "password": user.password }));
            tokio::spawn(async move { request.send().await.unwrap() })
        })
        .collect();
    let mut responses = Vec::new();
    for login in logins {
        responses.push(login.await.unwrap());
    }

    // Assert
    let mut tokens = Vec::new();
    for response in responses {
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        tokens.push(body["token"].as_str().unwrap().to_owned());
    }
    assert_eq!(app.session_rows(&user.user_id).await.len(), 2);
    let mut working = 0;
    for token in &tokens {
        if app.status(token).await.status() == 200 {
            working += 1;
        }
    }
    assert_eq!(working, 2);
}
