//! `POST /auth/logout` and `POST /auth/logout-all`.

use crate::helpers::{Backend, assert_error, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    logout_returns_204_and_deletes_the_session_row,
    logout_invalidates_the_token,
    logout_leaves_the_users_other_sessions_alone,
    logout_twice_answers_401_the_second_time,
    logout_all_deletes_every_session_of_the_caller,
    logout_all_leaves_other_users_sessions_untouched,
);

async fn logout_returns_204_and_deletes_the_session_row(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    // Act
    let response = app.post_with_token("/auth/logout", &user.token).await;

    // Assert
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
    assert!(app.session_rows(&user.user_id).await.is_empty());
    assert_eq!(app.count_users().await, 1);
}

async fn logout_invalidates_the_token(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    assert_eq!(app.status(&user.token).await.status(), 200);

    // Act
    let response = app.post_with_token("/auth/logout", &user.token).await;

    // Assert
    assert_eq!(response.status(), 204);
    assert_error(app.status(&user.token).await, 401, "invalid_token").await;
    assert_error(
        app.get_with_token("/auth/sessions", &user.token).await,
        401,
        "invalid_token",
    )
    .await;
}

async fn logout_leaves_the_users_other_sessions_alone(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let second = app.login_token(&user.email, &user.password).await;

    // Act
    let response = app.post_with_token("/auth/logout", &second).await;

    // Assert
    assert_eq!(response.status(), 204);
    let rows = app.session_rows(&user.user_id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, user.session_id);
    assert_eq!(app.status(&user.token).await.status(), 200);
    assert_eq!(app.status(&second).await.status(), 401);
}

async fn logout_twice_answers_401_the_second_time(backend: Backend) {
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
    let response = app.post_with_token("/auth/logout", &user.token).await;

    // Assert
    assert_error(response, 401, "invalid_token").await;
}

async fn logout_all_deletes_every_session_of_the_caller(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let second = app.login_token(&user.email, &user.password).await;
    let third = app.login_token(&user.email, &user.password).await;
    assert_eq!(app.session_rows(&user.user_id).await.len(), 3);

    // Act
    let response = app.post_with_token("/auth/logout-all", &second).await;

    // Assert
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
    assert!(app.session_rows(&user.user_id).await.is_empty());
    for token in [&user.token, &second, &third] {
        assert_error(app.status(token).await, 401, "invalid_token").await;
    }
    // The account itself still exists.
    assert_eq!(app.login(&user.email, &user.password).await.status(), 200);
}

async fn logout_all_leaves_other_users_sessions_untouched(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let alice = app.register_user().await;
    let bob = app.register_user().await;
    let bob_second = app.login_token(&bob.email, &bob.password).await;

    // Act
    let response = app.post_with_token("/auth/logout-all", &alice.token).await;

    // Assert
    assert_eq!(response.status(), 204);
    assert!(app.session_rows(&alice.user_id).await.is_empty());
    assert_eq!(app.session_rows(&bob.user_id).await.len(), 2);
    assert_eq!(app.count_sessions().await, 2);
    assert_eq!(app.status(&bob.token).await.status(), 200);
    assert_eq!(app.status(&bob_second).await.status(), 200);
}
