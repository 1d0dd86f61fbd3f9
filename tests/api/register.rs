//! `POST /auth/register`.

use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, api_time, assert_error, spawn_app, varied_password};
use crate::on_both_backends;

on_both_backends!(
    register_refuses_a_common_password_and_says_why,
    register_returns_201_with_the_user_and_a_bearer_token,
    register_stores_the_user_and_its_first_session,
    register_trims_and_lower_cases_the_email,
    register_refuses_a_duplicate_email_with_409,
    register_refuses_a_duplicate_email_differing_in_case_and_spaces,
    register_refuses_invalid_emails_with_422,
    register_refuses_a_password_shorter_than_12_characters,
    register_refuses_a_password_longer_than_128_characters,
    register_counts_password_length_in_characters_not_bytes,
    register_honours_a_configured_minimum_password_length,
    register_stores_the_label_and_user_agent_of_the_first_session,
    concurrent_registrations_of_one_email_create_exactly_one_account,
);

fn is_token(token: &str) -> bool {
    token.len() == 51
        && token.starts_with("lk_")
        && token[3..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

async fn register_returns_201_with_the_user_and_a_bearer_token(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let response = app.register("alice@example.com", PASSWORD).await;

    // Assert
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let text = response.text().await.unwrap();
    assert!(!text.contains("password"), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let user = body["user"].as_object().expect("a user object");
    let mut keys: Vec<&str> = user.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["admin", "created_at", "email", "email_verified", "id"],
        "{body}"
    );
    assert_eq!(body["user"]["email"], "alice@example.com");
    assert_eq!(body["user"]["admin"], false);
    assert!(body["user"]["id"].as_str().is_some_and(|id| !id.is_empty()));
    api_time(&body["user"]["created_at"]);
    let token = body["token"].as_str().expect("a token");
    assert!(is_token(token), "{token:?} is not lk_ + 48 base64url chars");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["session_id"].as_str().is_some_and(|id| !id.is_empty()));
    api_time(&body["expires_at"]);
}

async fn register_stores_the_user_and_its_first_session(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let response = app.register("bob@example.com", PASSWORD).await;

    // Assert
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let user_id = body["user"]["id"].as_str().unwrap();
    assert_eq!(app.count_users().await, 1);
    let rows = app.session_rows(user_id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, body["session_id"].as_str().unwrap());
    assert_eq!(rows[0].created_at, rows[0].last_updated_at);
    // Default policy: idle 24 h is shorter than absolute 30 days.
    assert_eq!(
        api_time(&body["expires_at"]),
        rows[0].last_updated_at + app.settings.session.idle_timeout
    );
    // The token works.
    let token = body["token"].as_str().unwrap();
    assert_eq!(app.status(token).await.status(), 200);
}

async fn register_trims_and_lower_cases_the_email(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let response = app.register("  Carol.Smith@Example.COM \t", PASSWORD).await;

    // Assert
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], "carol.smith@example.com");
    let login = app.login("carol.smith@example.com", PASSWORD).await;
    assert_eq!(login.status(), 200);
}

async fn register_refuses_a_duplicate_email_with_409(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let first = app.register_user().await;

    // Act
    let response = app.register(&first.email, "another password 123").await;

    // Assert
    assert_error(response, 409, "email_taken").await;
    assert_eq!(app.count_users().await, 1);
    assert_eq!(app.count_sessions().await, 1);
    // The original password still logs in; the second one does not.
    assert_eq!(app.login(&first.email, PASSWORD).await.status(), 200);
    assert_eq!(
        app.login(&first.email, "another password 123")
            .await
            .status(),
        401
    );
}

async fn register_refuses_a_duplicate_email_differing_in_case_and_spaces(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    assert_eq!(
        app.register("dave@example.com", PASSWORD).await.status(),
        201
    );

    for variant in [
        "DAVE@example.com",
        " dave@example.com ",
        "  Dave@EXAMPLE.com\n",
    ] {
        // Act
        let response = app.register(variant, PASSWORD).await;

        // Assert
        assert_error(response, 409, "email_taken").await;
    }
    assert_eq!(app.count_users().await, 1);
}

async fn register_refuses_invalid_emails_with_422(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let too_long = format!("{}@example.com", "a".repeat(250));

    for email in [
        "",
        "   ",
        "not-an-email",
        "alice@",
        "@example.com",
        "alice@@example.com",
        "a b@example.com",
        too_long.as_str(),
    ] {
        // Act
        let response = app.register(email, PASSWORD).await;

        // Assert
        let body = assert_error(response, 422, "invalid_email").await;
        assert!(body.get("token").is_none(), "{email:?}: {body}");
    }
    assert_eq!(app.count_users().await, 0);
    assert_eq!(app.count_sessions().await, 0);
}

async fn register_refuses_a_password_shorter_than_12_characters(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let eleven = app.register("eve@example.com", "elevenchars").await;
    let empty = app.register("eve@example.com", "").await;

    // Assert
    assert_error(eleven, 422, "invalid_password").await;
    assert_error(empty, 422, "invalid_password").await;
    assert_eq!(app.count_users().await, 0);
    // Exactly 12 characters is enough.
    assert_eq!(
        app.register("eve@example.com", "twelve chars")
            .await
            .status(),
        201
    );
}

async fn register_refuses_a_password_longer_than_128_characters(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let response = app
        .register("frank@example.com", &varied_password(129))
        .await;

    // Assert
    assert_error(response, 422, "invalid_password").await;
    assert_eq!(app.count_users().await, 0);
}

async fn register_counts_password_length_in_characters_not_bytes(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let twelve_chars = "東京大阪名古屋札幌福岡神"; // 36 bytes
    let eleven_chars = "東京大阪名古屋札幌福岡"; // 33 bytes

    // Act
    let short = app.register("grace@example.com", eleven_chars).await;
    let enough = app.register("grace@example.com", twelve_chars).await;

    // Assert
    assert_error(short, 422, "invalid_password").await;
    assert_eq!(enough.status(), 201);
    assert_eq!(
        app.login("grace@example.com", twelve_chars).await.status(),
        200
    );
}

async fn register_honours_a_configured_minimum_password_length(backend: Backend) {
    // Arrange
    let app = crate::helpers::spawn_app_with(backend, |s| s.password.min_chars = 20).await;

    // Act
    let nineteen = app
        .register("heidi@example.com", &varied_password(19))
        .await;
    let twenty = app
        .register("heidi@example.com", &varied_password(20))
        .await;

    // Assert
    assert_error(nineteen, 422, "invalid_password").await;
    assert_eq!(twenty.status(), 201);
}

async fn register_stores_the_label_and_user_agent_of_the_first_session(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let response = app
        .client
        .post(app.url("/auth/register"))
        .header("User-Agent", "latchkey-tests/1.0")
        .json(&json!({
            "email": "ivan@example.com",
            "password": PASSWORD,
            "label": "work laptop",
        }))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let rows = app.session_rows(body["user"]["id"].as_str().unwrap()).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].label.as_deref(), Some("work laptop"));
    assert_eq!(rows[0].user_agent.as_deref(), Some("latchkey-tests/1.0"));
}

async fn concurrent_registrations_of_one_email_create_exactly_one_account(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let requests: Vec<_> = (0..6)
        .map(|i| {
            app.client.post(app.url("/auth/register")).json(&json!({
                // The same address, spelled differently each time.
                "email": if i % 2 == 0 { "race@example.com" } else { " Race@Example.com " },
                "password": PASSWORD,
            }))
        })
        .collect();

    // Act
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|r| tokio::spawn(async move { r.send().await.unwrap() }))
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        let response = task.await.unwrap();
        let status = response.status().as_u16();
        if status == 409 {
            assert_error(response, 409, "email_taken").await;
        }
        statuses.push(status);
    }

    // Assert
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409]);
    assert_eq!(app.count_users().await, 1);
    assert_eq!(app.count_sessions().await, 1);
}

async fn register_refuses_a_common_password_and_says_why(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act: long enough, but on every guesser's list.
    let common = app.register("ivan@example.com", "password1234").await;
    let repeated = app.register("ivan@example.com", "aaaaaaaaaaaaaaaa").await;

    // Assert
    let body = assert_error(common, 422, "invalid_password").await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("too easy to guess"),
        "{body}"
    );
    assert_error(repeated, 422, "invalid_password").await;
    assert_eq!(app.count_users().await, 0);
}
