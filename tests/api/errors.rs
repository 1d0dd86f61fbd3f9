//! Every error is JSON `{"error", "message"}`, including the ones the
//! framework produces by itself: unknown routes, wrong methods, oversized or
//! non-JSON or malformed bodies.

use serde_json::json;

use crate::helpers::{Backend, PASSWORD, TestApp, assert_error, spawn_app, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    unknown_routes_answer_404_not_found_in_json,
    wrong_methods_answer_405_method_not_allowed_in_json,
    an_oversized_body_answers_413_payload_too_large,
    a_body_just_under_the_default_limit_is_accepted,
    a_configured_body_limit_is_enforced,
    a_non_json_content_type_answers_415_unsupported_media_type,
    malformed_json_answers_400_bad_request,
    a_json_body_with_missing_or_mistyped_fields_answers_400_bad_request,
);

async fn send_raw(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: String,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path)).body(body);
    if let Some(content_type) = content_type {
        request = request.header("Content-Type", content_type);
    }
    request.send().await.unwrap()
}

/// A registration body padded with JSON whitespace to exactly `len` bytes.
fn padded_registration(email: &str, len: usize) -> String {
    let body = json!({ "email": email, "password": PASSWORD }).to_string();
    assert!(body.len() <= len);
    format!("{}{}", body, " ".repeat(len - body.len()))
}

async fn unknown_routes_answer_404_not_found_in_json(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    for (method, path) in [
        (reqwest::Method::GET, "/"),
        (reqwest::Method::GET, "/nope"),
        (reqwest::Method::POST, "/auth/nope"),
        (reqwest::Method::GET, "/auth/sessions/a/b"),
        (reqwest::Method::DELETE, "/auth"),
    ] {
        // Act
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap();

        // Assert
        let body = assert_error(response, 404, "not_found").await;
        assert_eq!(
            body.as_object().unwrap().len(),
            2,
            "{method} {path}: {body}"
        );
    }
}

async fn wrong_methods_answer_405_method_not_allowed_in_json(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let session = format!("/auth/sessions/{}", user.session_id);

    for (method, path) in [
        (reqwest::Method::GET, "/auth/register"),
        (reqwest::Method::GET, "/auth/login"),
        (reqwest::Method::DELETE, "/auth/status"),
        (reqwest::Method::GET, "/auth/logout"),
        (reqwest::Method::PUT, "/auth/logout-all"),
        (reqwest::Method::POST, "/auth/password"),
        (reqwest::Method::POST, "/auth/sessions"),
        (reqwest::Method::GET, session.as_str()),
        (reqwest::Method::POST, "/healthz"),
    ] {
        // Act
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap();

        // Assert
        let body = assert_error(response, 405, "method_not_allowed").await;
        assert_eq!(
            body.as_object().unwrap().len(),
            2,
            "{method} {path}: {body}"
        );
    }
    // None of them did anything.
    assert_eq!(app.session_rows(&user.user_id).await.len(), 1);
    assert_eq!(app.status(&user.token).await.status(), 200);
}

async fn an_oversized_body_answers_413_payload_too_large(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let limit = 16 * 1024;
    assert_eq!(app.settings.max_body_bytes, limit);

    // Act
    let register = send_raw(
        &app,
        reqwest::Method::POST,
        "/auth/register",
        Some("application/json"),
        padded_registration("big@example.com", limit + 1),
    )
    .await;
    let login = send_raw(
        &app,
        reqwest::Method::POST,
        "/auth/login",
        Some("application/json"),
        padded_registration(&user.email, limit + 1),
    )
    .await;
    let password = app
        .client
        .put(app.url("/auth/password"))
        .bearer_auth(&user.token)
        .header("Content-Type", "application/json")
        .body(format!(
            "{}{}",
            json!({ "current_password": PASSWORD, "new_password": "x".repeat(20) }),
            " ".repeat(limit)
        ))
        .send()
        .await
        .unwrap();

    // Assert
    assert_error(register, 413, "payload_too_large").await;
    assert_error(login, 413, "payload_too_large").await;
    assert_error(password, 413, "payload_too_large").await;
    assert_eq!(app.count_users().await, 1);
    assert_eq!(app.session_rows(&user.user_id).await.len(), 1);
    assert_eq!(app.login(&user.email, PASSWORD).await.status(), 200);
}

async fn a_body_just_under_the_default_limit_is_accepted(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let response = send_raw(
        &app,
        reqwest::Method::POST,
        "/auth/register",
        Some("application/json"),
        padded_registration("roomy@example.com", 16 * 1024 - 100),
    )
    .await;

    // Assert
    assert_eq!(response.status(), 201);
    assert_eq!(app.count_users().await, 1);
}

async fn a_configured_body_limit_is_enforced(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| s.max_body_bytes = 1024).await;

    // Act
    let small = send_raw(
        &app,
        reqwest::Method::POST,
        "/auth/register",
        Some("application/json"),
        padded_registration("small@example.com", 1000),
    )
    .await;
    let large = send_raw(
        &app,
        reqwest::Method::POST,
        "/auth/register",
        Some("application/json"),
        padded_registration("large@example.com", 2000),
    )
    .await;

    // Assert
    assert_eq!(small.status(), 201);
    assert_error(large, 413, "payload_too_large").await;
    assert_eq!(app.count_users().await, 1);
}

async fn a_non_json_content_type_answers_415_unsupported_media_type(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let registration = json!({ "email": "plain@example.com", "password": PASSWORD }).to_string();
    let login = json!({ "email": user.email, "password": PASSWORD }).to_string();

    for (path, content_type, body) in [
        ("/auth/register", Some("text/plain"), registration.clone()),
        (
            "/auth/register",
            Some("application/x-www-form-urlencoded"),
            format!("email=plain%40example.com&password={}", "x".repeat(20)),
        ),
        ("/auth/register", None, registration.clone()),
        ("/auth/login", Some("text/plain"), login.clone()),
        ("/auth/login", None, login.clone()),
    ] {
        // Act
        let response = send_raw(&app, reqwest::Method::POST, path, content_type, body).await;

        // Assert
        let body = assert_error(response, 415, "unsupported_media_type").await;
        assert!(
            body.get("token").is_none(),
            "{path} {content_type:?}: {body}"
        );
    }
    assert_eq!(app.count_users().await, 1);
    assert_eq!(app.session_rows(&user.user_id).await.len(), 1);
}

async fn malformed_json_answers_400_bad_request(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    for (path, body) in [
        (
            "/auth/register",
            r#"{"email": "x@example.com", "password": "#,
        ),
        ("/auth/register", "not json at all"),
        ("/auth/register", ""),
        ("/auth/login", r#"{"email": "x@example.com""#),
        ("/auth/login", "[1, 2"),
    ] {
        // Act
        let response = send_raw(
            &app,
            reqwest::Method::POST,
            path,
            Some("application/json"),
            body.to_owned(),
        )
        .await;

        // Assert
        assert_error(response, 400, "bad_request").await;
    }
    let password = app
        .client
        .put(app.url("/auth/password"))
        .bearer_auth(&user.token)
        .header("Content-Type", "application/json")
        .body("{\"current_password\":")
        .send()
        .await
        .unwrap();
    assert_error(password, 400, "bad_request").await;
    assert_eq!(app.count_users().await, 1);
}

async fn a_json_body_with_missing_or_mistyped_fields_answers_400_bad_request(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    for (path, body) in [
        ("/auth/register", json!({ "email": "x@example.com" })),
        ("/auth/register", json!({ "password": PASSWORD })),
        (
            "/auth/register",
            json!({ "email": 42, "password": PASSWORD }),
        ),
        ("/auth/register", json!("x@example.com")),
        ("/auth/login", json!({ "email": "x@example.com" })),
        (
            "/auth/login",
            json!({ "email": "x@example.com", "password": null }),
        ),
    ] {
        // Act
        let response = app.post_json(path, &body).await;

        // Assert
        assert_error(response, 400, "bad_request").await;
    }
    assert_eq!(app.count_users().await, 0);
}
