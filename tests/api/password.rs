//! `PUT /auth/password`.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_error, spawn_app};
use crate::on_both_backends;

const NEW_PASSWORD: &str = "a completely new passphrase";

on_both_backends!(
    changing_the_password_returns_204_and_swaps_the_password,
    changing_the_password_ends_every_other_session_and_keeps_the_current_one,
    changing_the_password_leaves_other_users_alone,
    changing_the_password_with_a_wrong_current_password_is_403_and_changes_nothing,
    changing_to_a_too_short_password_is_422_and_changes_nothing,
    changing_to_a_too_long_password_is_422,
    changing_the_password_with_a_malformed_body_is_400,
);

async fn change_password(
    app: &TestApp,
    token: &str,
    current: &str,
    new: &str,
) -> reqwest::Response {
    app.put_json_with_token(
        "/auth/password",
        token,
        &json!({ "current_password": current, "new_password": new }),
    )
    .await
}

async fn password_hash(app: &TestApp, user_id: &str) -> String {
    use diesel::prelude::*;
    use latchkey::db::schema::users;
    let user_id = user_id.to_owned();
    app.with_db(move |conn| {
        users::table
            .find(user_id)
            .select(users::password_hash)
            .first::<String>(conn)
            .unwrap()
    })
    .await
}

async fn changing_the_password_returns_204_and_swaps_the_password(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let old_hash = password_hash(&app, &user.user_id).await;

    // Act
    let response = change_password(&app, &user.token, &user.password, NEW_PASSWORD).await;

    // Assert
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
    assert_ne!(password_hash(&app, &user.user_id).await, old_hash);
    assert_error(
        app.login(&user.email, &user.password).await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(app.login(&user.email, NEW_PASSWORD).await.status(), 200);
}

async fn changing_the_password_ends_every_other_session_and_keeps_the_current_one(
    backend: Backend,
) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let second = app.login_token(&user.email, &user.password).await;
    let third = app.login_token(&user.email, &user.password).await;
    let second_status: Value = app.status(&second).await.json().await.unwrap();
    let second_id = second_status["session"]["id"].as_str().unwrap().to_owned();

    // Act
    let response = change_password(&app, &second, &user.password, NEW_PASSWORD).await;

    // Assert
    assert_eq!(response.status(), 204);
    let rows = app.session_rows(&user.user_id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, second_id);
    assert_eq!(app.status(&second).await.status(), 200);
    assert_error(app.status(&user.token).await, 401, "invalid_token").await;
    assert_error(app.status(&third).await, 401, "invalid_token").await;
}

async fn changing_the_password_leaves_other_users_alone(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let alice = app.register_user().await;
    let bob = app.register_user().await;
    let bob_second = app.login_token(&bob.email, &bob.password).await;

    // Act
    let response = change_password(&app, &alice.token, &alice.password, NEW_PASSWORD).await;

    // Assert
    assert_eq!(response.status(), 204);
    assert_eq!(app.session_rows(&bob.user_id).await.len(), 2);
    assert_eq!(app.status(&bob.token).await.status(), 200);
    assert_eq!(app.status(&bob_second).await.status(), 200);
    assert_eq!(app.login(&bob.email, &bob.password).await.status(), 200);
}

async fn changing_the_password_with_a_wrong_current_password_is_403_and_changes_nothing(
    backend: Backend,
) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let second = app.login_token(&user.email, &user.password).await;
    let old_hash = password_hash(&app, &user.user_id).await;

    // Act
    let response = change_password(&app, &user.token, "not my password!", NEW_PASSWORD).await;

    // Assert
    assert_error(response, 403, "invalid_credentials").await;
    assert_eq!(password_hash(&app, &user.user_id).await, old_hash);
    assert_eq!(app.session_rows(&user.user_id).await.len(), 2);
    assert_eq!(app.status(&user.token).await.status(), 200);
    assert_eq!(app.status(&second).await.status(), 200);
    assert_eq!(app.login(&user.email, &user.password).await.status(), 200);
    assert_eq!(app.login(&user.email, NEW_PASSWORD).await.status(), 401);
}

async fn changing_to_a_too_short_password_is_422_and_changes_nothing(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let second = app.login_token(&user.email, &user.password).await;

    // Act
    let response = change_password(&app, &user.token, &user.password, "too short").await;

    // Assert
    assert_error(response, 422, "invalid_password").await;
    assert_eq!(app.session_rows(&user.user_id).await.len(), 2);
    assert_eq!(app.status(&second).await.status(), 200);
    assert_eq!(app.login(&user.email, &user.password).await.status(), 200);
    assert_eq!(app.login(&user.email, "too short").await.status(), 401);
}

async fn changing_to_a_too_long_password_is_422(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    // Act
    let response = change_password(&app, &user.token, &user.password, &"n".repeat(129)).await;

    // Assert
    assert_error(response, 422, "invalid_password").await;
    assert_eq!(app.login(&user.email, &user.password).await.status(), 200);
}

async fn changing_the_password_with_a_malformed_body_is_400(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    // Act: the field names of registration, not of a password change.
    let response = app
        .put_json_with_token(
            "/auth/password",
            &user.token,
            &json!({ "password": NEW_PASSWORD }),
        )
        .await;

    // Assert
    assert_error(response, 400, "bad_request").await;
    assert_eq!(app.login(&user.email, &user.password).await.status(), 200);
}
