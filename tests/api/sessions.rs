//! `GET /auth/sessions` and `DELETE /auth/sessions/{id}`.

use chrono::TimeDelta;
use serde_json::Value;

use crate::helpers::{Backend, api_time, assert_error, now_seconds, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    sessions_lists_the_callers_sessions_with_exactly_one_current,
    sessions_does_not_list_expired_sessions,
    sessions_never_shows_other_users_sessions,
    revoking_a_session_returns_204_and_invalidates_its_token,
    revoking_the_current_session_logs_the_caller_out,
    revoking_another_users_session_is_404_and_leaves_it_alone,
    revoking_an_unknown_session_is_404,
    revoking_a_session_by_its_id_in_upper_case_is_404_like_any_unknown_id,
);

async fn list(app: &crate::helpers::TestApp, token: &str) -> Vec<Value> {
    let response = app.get_with_token("/auth/sessions", token).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["sessions"]
        .as_array()
        .expect("a sessions array")
        .clone()
}

async fn sessions_lists_the_callers_sessions_with_exactly_one_current(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let second = app.login_token(&user.email, &user.password).await;
    let third = app.login_token(&user.email, &user.password).await;

    // Act
    let response = app.get_with_token("/auth/sessions", &second).await;

    // Assert
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for token in [&user.token, &second, &third] {
        assert!(!text.contains(token.as_str()), "a token is listed: {text}");
    }
    assert!(!text.contains("token_hash"), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let sessions = body["sessions"].as_array().unwrap();
    let rows = app.session_rows(&user.user_id).await;
    assert_eq!(sessions.len(), 3);
    let mut listed: Vec<&str> = sessions.iter().map(|s| s["id"].as_str().unwrap()).collect();
    let mut stored: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    listed.sort_unstable();
    stored.sort_unstable();
    assert_eq!(listed, stored);
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{body}");
    assert_eq!(
        sessions.iter().filter(|s| s["current"] == false).count(),
        2,
        "{body}"
    );
    // The current one is the caller's: the status endpoint agrees.
    let status: Value = app.status(&second).await.json().await.unwrap();
    assert_eq!(current[0]["id"], status["session"]["id"]);
    for session in sessions {
        let created = api_time(&session["created_at"]);
        let last = api_time(&session["last_updated_at"]);
        let expires = api_time(&session["expires_at"]);
        assert!(created <= last, "{session}");
        assert_eq!(expires, last + app.settings.session.idle_timeout);
    }
}

async fn sessions_does_not_list_expired_sessions(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let second = app.login_token(&user.email, &user.password).await;
    let idle = app.settings.session.idle_timeout;
    let long_ago = now_seconds() - idle - TimeDelta::minutes(5);
    app.set_session_times(&user.session_id, long_ago, long_ago)
        .await;

    // Act
    let sessions = list(&app, &second).await;

    // Assert
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["current"], true);
    assert_ne!(sessions[0]["id"], user.session_id.as_str());
}

async fn sessions_never_shows_other_users_sessions(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let alice = app.register_user().await;
    let bob = app.register_user().await;
    app.login_token(&bob.email, &bob.password).await;

    // Act
    let sessions = list(&app, &alice.token).await;

    // Assert
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["id"], alice.session_id.as_str());
    assert_eq!(sessions[0]["current"], true);
}

async fn revoking_a_session_returns_204_and_invalidates_its_token(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let second = app.login_token(&user.email, &user.password).await;
    assert_eq!(app.status(&user.token).await.status(), 200);

    // Act
    let response = app
        .delete_with_token(&format!("/auth/sessions/{}", user.session_id), &second)
        .await;

    // Assert
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
    let rows = app.session_rows(&user.user_id).await;
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0].id, user.session_id);
    assert_error(app.status(&user.token).await, 401, "invalid_token").await;
    assert_eq!(app.status(&second).await.status(), 200);
    // It is gone from the listing too.
    let sessions = list(&app, &second).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["id"], rows[0].id.as_str());
}

async fn revoking_the_current_session_logs_the_caller_out(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    // Act
    let response = app
        .delete_with_token(&format!("/auth/sessions/{}", user.session_id), &user.token)
        .await;

    // Assert
    assert_eq!(response.status(), 204);
    assert!(app.session_rows(&user.user_id).await.is_empty());
    assert_error(app.status(&user.token).await, 401, "invalid_token").await;
}

async fn revoking_another_users_session_is_404_and_leaves_it_alone(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let alice = app.register_user().await;
    let bob = app.register_user().await;

    // Act
    let response = app
        .delete_with_token(&format!("/auth/sessions/{}", bob.session_id), &alice.token)
        .await;

    // Assert
    let body = assert_error(response, 404, "not_found").await;
    let rows = app.session_rows(&bob.user_id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, bob.session_id);
    assert_eq!(app.status(&bob.token).await.status(), 200);
    assert_eq!(app.session_rows(&alice.user_id).await.len(), 1);
    // Indistinguishable from an unknown id.
    let unknown = app
        .delete_with_token(
            "/auth/sessions/00000000-0000-7000-8000-000000000000",
            &alice.token,
        )
        .await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.json::<Value>().await.unwrap(), body);
}

async fn revoking_an_unknown_session_is_404(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    for id in ["00000000-0000-7000-8000-000000000000", "not-a-session-id"] {
        // Act
        let response = app
            .delete_with_token(&format!("/auth/sessions/{id}"), &user.token)
            .await;

        // Assert
        assert_error(response, 404, "not_found").await;
    }
    assert_eq!(app.session_rows(&user.user_id).await.len(), 1);
    assert_eq!(app.status(&user.token).await.status(), 200);
}

async fn revoking_a_session_by_its_id_in_upper_case_is_404_like_any_unknown_id(backend: Backend) {
    // Arrange: session ids are lower-case UUIDs; an upper-cased one was never
    // issued, so it must be answered like any other unknown id, on both backends.
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let second = app.login_token(&user.email, &user.password).await;
    let upper = user.session_id.to_uppercase();
    assert_ne!(upper, user.session_id);

    // Act
    let response = app
        .delete_with_token(&format!("/auth/sessions/{upper}"), &second)
        .await;

    // Assert
    assert_error(response, 404, "not_found").await;
    assert_eq!(app.session_rows(&user.user_id).await.len(), 2);
    assert_eq!(app.status(&user.token).await.status(), 200);
}
