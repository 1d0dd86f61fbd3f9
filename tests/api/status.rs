//! `GET /auth/status` and the Bearer token check every protected route uses.

use serde_json::Value;

use crate::helpers::{Backend, api_time, assert_error, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    status_returns_the_user_and_the_current_session,
    status_without_an_authorization_header_is_401_missing_token,
    status_with_a_non_bearer_scheme_is_401_invalid_request,
    status_with_a_garbage_authorization_header_is_401_invalid_request,
    status_with_a_token_changed_in_one_character_is_refused,
    status_with_a_well_shaped_but_unknown_token_is_refused,
    status_with_a_logged_out_token_is_refused,
    every_protected_route_requires_a_token,
);

fn www_authenticate(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("www-authenticate")
        .expect("a WWW-Authenticate header")
        .to_str()
        .unwrap()
        .to_owned()
}

/// Asserts a 401 `invalid_token` whose challenge carries `error="invalid_token"`.
async fn assert_invalid_token(response: reqwest::Response) {
    let challenge = www_authenticate(&response);
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains("realm=\"latchkey\""), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert_error(response, 401, "invalid_token").await;
}

async fn status_returns_the_user_and_the_current_session(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    // Act
    let response = app.status(&user.token).await;

    // Assert
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains("password_hash"), "{text}");
    assert!(!text.contains("token_hash"), "{text}");
    assert!(!text.contains(&user.token), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["user"]["id"], user.user_id.as_str());
    assert_eq!(body["user"]["email"], user.email.as_str());
    assert_eq!(body["user"]["admin"], false);
    api_time(&body["user"]["created_at"]);
    let session = &body["session"];
    assert_eq!(session["id"], user.session_id.as_str());
    assert_eq!(session["current"], true);
    let rows = app.session_rows(&user.user_id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(api_time(&session["created_at"]), rows[0].created_at);
    assert_eq!(
        api_time(&session["last_updated_at"]),
        rows[0].last_updated_at
    );
    assert_eq!(
        api_time(&session["expires_at"]),
        rows[0].last_updated_at + app.settings.session.idle_timeout
    );
}

async fn status_without_an_authorization_header_is_401_missing_token(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.register_user().await;

    // Act
    let response = app
        .client
        .get(app.url("/auth/status"))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(www_authenticate(&response), "Bearer realm=\"latchkey\"");
    assert_error(response, 401, "missing_token").await;
}

async fn status_with_a_non_bearer_scheme_is_401_invalid_request(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    // Act: the right credentials, in the wrong scheme.
    let response = app
        .client
        .get(app.url("/auth/status"))
        .basic_auth(&user.email, Some(&user.password))
        .send()
        .await
        .unwrap();

    // Assert
    let challenge = www_authenticate(&response);
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains("error=\"invalid_request\""),
        "{challenge}"
    );
    assert_error(response, 401, "invalid_token").await;
}

async fn status_with_a_garbage_authorization_header_is_401_invalid_request(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    for header in [
        "garbage".to_owned(),
        "Bearer".to_owned(),
        // (A bare token of the right shape is accepted: see verify.rs.)
        format!("{}x", user.token),
        format!("Token {}", user.token),
    ] {
        // Act
        let response = app
            .client
            .get(app.url("/auth/status"))
            .header("Authorization", &header)
            .send()
            .await
            .unwrap();

        // Assert
        let challenge = www_authenticate(&response);
        assert!(
            challenge.contains("error=\"invalid_request\""),
            "{header:?}: {challenge}"
        );
        assert_error(response, 401, "invalid_token").await;
    }
}

async fn status_with_a_token_changed_in_one_character_is_refused(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    assert_eq!(user.token.len(), 51);

    // One position in the secret, one in the middle, one in the checksum.
    for position in [3, 25, 50] {
        let mut chars: Vec<char> = user.token.chars().collect();
        chars[position] = if chars[position] == 'A' { 'B' } else { 'A' };
        let typo: String = chars.into_iter().collect();

        // Act
        let response = app.status(&typo).await;

        // Assert
        assert_invalid_token(response).await;
    }
    // The real token still works, and the session was not touched.
    assert_eq!(app.status(&user.token).await.status(), 200);
    assert_eq!(app.session_rows(&user.user_id).await.len(), 1);
}

async fn status_with_a_well_shaped_but_unknown_token_is_refused(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.register_user().await;

    for token in [
        format!("lk_{}", "A".repeat(48)),
        format!("lk_{}", "a".repeat(47)),
        "not-a-token".to_owned(),
    ] {
        // Act
        let response = app.status(&token).await;

        // Assert
        assert_invalid_token(response).await;
    }
}

async fn status_with_a_logged_out_token_is_refused(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    assert_eq!(
        app.post_with_token("/auth/logout", &user.token)
            .await
            .status(),
        204
    );

    // Act
    let response = app.status(&user.token).await;

    // Assert
    assert_invalid_token(response).await;
}

async fn every_protected_route_requires_a_token(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let requests = [
        app.client.get(app.url("/auth/status")),
        app.client.post(app.url("/auth/logout")),
        app.client.post(app.url("/auth/logout-all")),
        app.client.get(app.url("/auth/sessions")),
        app.client
            .delete(app.url(&format!("/auth/sessions/{}", user.session_id))),
        app.client
            .put(app.url("/auth/password"))
            .json(&serde_json::json!({
                "current_password": user.password,
                "new_password": "a brand new password",
            })),
    ];

    for request in requests {
        // Act
        let response = request.send().await.unwrap();

        // Assert
        let path = response.url().path().to_owned();
        assert_eq!(
            www_authenticate(&response),
            "Bearer realm=\"latchkey\"",
            "{path}"
        );
        assert_error(response, 401, "missing_token").await;
    }
    // Nothing happened to the session or the password.
    assert_eq!(app.session_rows(&user.user_id).await.len(), 1);
    assert_eq!(app.status(&user.token).await.status(), 200);
    assert_eq!(app.login(&user.email, &user.password).await.status(), 200);
}
