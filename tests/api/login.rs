//! `POST /auth/login`, with a JSON body or HTTP Basic.

use serde_json::{Value, json};

use crate::helpers::{
    Backend, PASSWORD, TestApp, api_time, assert_error, spawn_app, varied_password,
};
use crate::on_both_backends;

on_both_backends!(
    login_with_json_returns_200_and_a_new_working_token,
    login_with_http_basic_returns_200_and_a_working_token,
    login_accepts_the_email_in_any_case_and_padded_with_spaces,
    login_with_a_wrong_password_is_refused_with_401,
    login_with_http_basic_and_a_wrong_password_is_refused_with_401,
    login_with_an_unknown_email_answers_exactly_like_a_wrong_password,
    login_with_a_malformed_email_answers_like_invalid_credentials,
    login_stores_the_label_and_the_user_agent_in_the_session_row,
    login_refuses_a_label_longer_than_100_characters,
    a_128_character_password_registers_and_logs_in,
    passwords_differing_only_in_the_last_of_100_characters_are_different,
);

async fn basic_login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/auth/login"))
        .basic_auth(email, Some(password))
        .send()
        .await
        .unwrap()
}

fn assert_token_response_shape(body: &Value, email: &str, user_id: &str) {
    assert_eq!(body["user"]["id"], user_id, "{body}");
    assert_eq!(body["user"]["email"], email, "{body}");
    assert_eq!(body["user"]["admin"], false, "{body}");
    assert!(body["user"].get("password_hash").is_none(), "{body}");
    api_time(&body["user"]["created_at"]);
    assert!(
        body["token"].as_str().is_some_and(|t| t.starts_with("lk_")),
        "{body}"
    );
    assert_eq!(body["token_type"], "Bearer", "{body}");
    assert!(body["session_id"].is_string(), "{body}");
    api_time(&body["expires_at"]);
}

async fn login_with_json_returns_200_and_a_new_working_token(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    // Act
    let response = app.login(&user.email, &user.password).await;

    // Assert
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let text = response.text().await.unwrap();
    assert!(!text.contains("password_hash"), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_token_response_shape(&body, &user.email, &user.user_id);
    let token = body["token"].as_str().unwrap();
    assert_ne!(token, user.token);
    assert_ne!(body["session_id"], user.session_id.as_str());
    let rows = app.session_rows(&user.user_id).await;
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().any(|r| r.id == body["session_id"]));
    let status = app.status(token).await;
    assert_eq!(status.status(), 200);
    let status: Value = status.json().await.unwrap();
    assert_eq!(status["session"]["id"], body["session_id"]);
}

async fn login_with_http_basic_returns_200_and_a_working_token(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    // Act
    let response = basic_login(&app, &user.email, &user.password).await;

    // Assert
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_token_response_shape(&body, &user.email, &user.user_id);
    assert_eq!(app.session_rows(&user.user_id).await.len(), 2);
    let token = body["token"].as_str().unwrap();
    assert_eq!(app.status(token).await.status(), 200);
}

async fn login_accepts_the_email_in_any_case_and_padded_with_spaces(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    assert_eq!(
        app.register("judy@example.com", PASSWORD).await.status(),
        201
    );

    // Act
    let json_login = app.login("  JUDY@Example.com ", PASSWORD).await;
    let basic = basic_login(&app, "Judy@EXAMPLE.COM", PASSWORD).await;

    // Assert
    assert_eq!(json_login.status(), 200);
    let body: Value = json_login.json().await.unwrap();
    assert_eq!(body["user"]["email"], "judy@example.com");
    assert_eq!(basic.status(), 200);
}

async fn login_with_a_wrong_password_is_refused_with_401(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    // Act
    let response = app.login(&user.email, "not the right password").await;

    // Assert
    let body = assert_error(response, 401, "invalid_credentials").await;
    assert!(body.get("token").is_none(), "{body}");
    assert_eq!(app.session_rows(&user.user_id).await.len(), 1);
}

async fn login_with_http_basic_and_a_wrong_password_is_refused_with_401(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    // Act
    let response = basic_login(&app, &user.email, "not the right password").await;

    // Assert
    assert_error(response, 401, "invalid_credentials").await;
    assert_eq!(app.session_rows(&user.user_id).await.len(), 1);
}

async fn login_with_an_unknown_email_answers_exactly_like_a_wrong_password(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    // Act
    let wrong_password = app.login(&user.email, "not the right password").await;
    let unknown_email = app.login("nobody@example.com", PASSWORD).await;

    // Assert
    assert_eq!(wrong_password.status(), 401);
    assert_eq!(unknown_email.status(), wrong_password.status());
    let a = wrong_password.text().await.unwrap();
    let b = unknown_email.text().await.unwrap();
    assert_eq!(a, b);
    let body: Value = serde_json::from_str(&a).unwrap();
    assert_eq!(body["error"], "invalid_credentials");
}

async fn login_with_a_malformed_email_answers_like_invalid_credentials(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let reference = app.login("nobody@example.com", PASSWORD).await;
    let reference_status = reference.status();
    let reference = reference.text().await.unwrap();

    // Act
    let response = app.login("not-an-email", PASSWORD).await;

    // Assert
    assert_eq!(response.status(), reference_status);
    assert_eq!(response.text().await.unwrap(), reference);
    assert_eq!(app.count_sessions().await, 0);
}

async fn login_stores_the_label_and_the_user_agent_in_the_session_row(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    // Act
    let response = app
        .client
        .post(app.url("/auth/login"))
        .header("User-Agent", "latchkey-tests/2.0 (phone)")
        .json(&json!({
            "email": user.email,
            "password": user.password,
            "label": "  my phone  ",
        }))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let rows = app.session_rows(&user.user_id).await;
    let row = rows
        .iter()
        .find(|r| r.id == body["session_id"])
        .expect("the new session row");
    assert_eq!(row.label.as_deref(), Some("my phone"));
    assert_eq!(
        row.user_agent.as_deref(),
        Some("latchkey-tests/2.0 (phone)")
    );
    // The listing shows them too.
    let token = body["token"].as_str().unwrap();
    let list: Value = app
        .get_with_token("/auth/sessions", token)
        .await
        .json()
        .await
        .unwrap();
    let current = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .expect("the current session");
    assert_eq!(current["label"], "my phone");
    assert_eq!(current["user_agent"], "latchkey-tests/2.0 (phone)");
}

async fn login_refuses_a_label_longer_than_100_characters(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    // Act
    let response = app
        .post_json(
            "/auth/login",
            &json!({ "email": user.email, "password": user.password, "label": "l".repeat(101) }),
        )
        .await;

    // Assert
    assert_error(response, 422, "invalid_label").await;
    assert_eq!(app.session_rows(&user.user_id).await.len(), 1);
}

async fn a_128_character_password_registers_and_logs_in(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let password = varied_password(128);
    assert_eq!(password.chars().count(), 128);
    assert_eq!(
        app.register("kim@example.com", &password).await.status(),
        201
    );

    // Act
    let json_login = app.login("kim@example.com", &password).await;
    let basic = basic_login(&app, "kim@example.com", &password).await;
    let truncated = app.login("kim@example.com", &password[..127]).await;

    // Assert
    assert_eq!(json_login.status(), 200);
    assert_eq!(basic.status(), 200);
    assert_error(truncated, 401, "invalid_credentials").await;
}

async fn passwords_differing_only_in_the_last_of_100_characters_are_different(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let common = varied_password(99);
    let registered = format!("{common}1");
    let other = format!("{common}2");
    assert_eq!(
        app.register("leo@example.com", &registered).await.status(),
        201
    );

    // Act
    let wrong = app.login("leo@example.com", &other).await;
    let right = app.login("leo@example.com", &registered).await;

    // Assert
    assert_error(wrong, 401, "invalid_credentials").await;
    assert_eq!(right.status(), 200);
}
