//! What is stored: only digests of tokens, only hashes of passwords.

use diesel::prelude::*;
use latchkey::db::schema::users;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::helpers::{
    Backend, SessionRow, assert_error, insert_session_row, insert_user_row, spawn_app,
    spawn_app_upgraded,
};
use crate::on_both_backends;

on_both_backends!(
    the_token_hash_column_holds_the_sha256_of_the_token,
    the_token_appears_in_no_column_of_the_session_row,
    the_password_is_stored_only_as_a_bcrypt_hash,
    no_response_contains_the_password_hash,
    deleting_a_user_deletes_their_sessions,
    sessions_stored_before_an_upgrade_keep_working,
);

fn sha256(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn assert_row_does_not_contain(row: &SessionRow, secret: &str) {
    for column in [
        Some(row.id.as_str()),
        Some(row.user_id.as_str()),
        row.user_agent.as_deref(),
        row.label.as_deref(),
    ]
    .into_iter()
    .flatten()
    {
        assert!(!column.contains(secret), "{row:?}");
    }
    assert!(
        !row.token_hash
            .windows(secret.len())
            .any(|w| w == secret.as_bytes()),
        "{row:?}"
    );
}

async fn the_token_hash_column_holds_the_sha256_of_the_token(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    // Act
    let response = app.login(&user.email, &user.password).await;

    // Assert
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let login_token = body["token"].as_str().unwrap();
    let rows = app.session_rows(&user.user_id).await;
    assert_eq!(rows.len(), 2);
    for (session_id, token) in [
        (user.session_id.as_str(), user.token.as_str()),
        (body["session_id"].as_str().unwrap(), login_token),
    ] {
        let row = rows.iter().find(|r| r.id == session_id).unwrap();
        assert_eq!(row.token_hash.len(), 32);
        assert_eq!(row.token_hash, sha256(token));
    }
}

async fn the_token_appears_in_no_column_of_the_session_row(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    // Act: a login whose label and user agent are both set.
    let response = app
        .client
        .post(app.url("/auth/login"))
        .header("User-Agent", "storage-test")
        .json(&serde_json::json!({
            "email": user.email,
            "password": user.password,
            "label": "desk",
        }))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let login_token = body["token"].as_str().unwrap().to_owned();
    let rows = app.session_rows(&user.user_id).await;
    assert_eq!(rows.len(), 2);
    for row in &rows {
        for token in [&user.token, &login_token] {
            assert_row_does_not_contain(row, token);
            // Not even the random part without its prefix.
            assert_row_does_not_contain(row, &token[3..]);
        }
    }
    // Nor is it in the users table.
    let user_id = user.user_id.clone();
    let (email, hash) = app
        .with_db(move |conn| {
            users::table
                .find(user_id)
                .select((users::email, users::password_hash))
                .first::<(String, String)>(conn)
                .unwrap()
        })
        .await;
    for token in [&user.token, &login_token] {
        assert!(!email.contains(&token[3..]));
        assert!(!hash.contains(&token[3..]));
    }
}

async fn the_password_is_stored_only_as_a_bcrypt_hash(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act: two users with the same password.
    let user = app.register_user().await;
    let twin = app.register_user().await;

    // Assert
    let hash_of = |user_id: String| {
        app.with_db(move |conn| {
            users::table
                .find(user_id)
                .select(users::password_hash)
                .first::<String>(conn)
                .unwrap()
        })
    };
    let hash = hash_of(user.user_id.clone()).await;
    let twin_hash = hash_of(twin.user_id.clone()).await;
    assert!(hash.starts_with("$2"), "{hash}");
    assert!(!hash.contains(&user.password));
    // A unique salt per hash: equal passwords do not give equal hashes.
    assert_ne!(hash, twin_hash);
    let rows = app.session_rows(&user.user_id).await;
    assert_row_does_not_contain(&rows[0], &user.password);
}

async fn no_response_contains_the_password_hash(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let email = "hashless@example.com";
    let password = crate::helpers::PASSWORD;

    // Act
    let register = app.register(email, password).await;
    let register_status = register.status();
    let register = register.text().await.unwrap();
    let token = serde_json::from_str::<Value>(&register).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let login = app.login(email, password).await.text().await.unwrap();
    let status = app.status(&token).await.text().await.unwrap();
    let sessions = app
        .get_with_token("/auth/sessions", &token)
        .await
        .text()
        .await
        .unwrap();

    // Assert
    assert_eq!(register_status, 201);
    for body in [&register, &login, &status, &sessions] {
        assert!(!body.contains("password_hash"), "{body}");
        assert!(!body.contains("$2b$"), "{body}");
        assert!(!body.contains(password), "{body}");
        assert!(!body.contains("token_hash"), "{body}");
    }
}

async fn deleting_a_user_deletes_their_sessions(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let alice = app.register_user().await;
    let bob = app.register_user().await;
    app.login_token(&alice.email, &alice.password).await;

    // Act
    let user_id = alice.user_id.clone();
    let deleted = app
        .with_db(move |conn| {
            diesel::delete(users::table.find(user_id))
                .execute(conn)
                .unwrap()
        })
        .await;

    // Assert
    assert_eq!(deleted, 1);
    assert!(app.session_rows(&alice.user_id).await.is_empty());
    assert_eq!(app.count_sessions().await, 1);
    assert_error(app.status(&alice.token).await, 401, "invalid_token").await;
    assert_eq!(app.status(&bob.token).await.status(), 200);
}

/// The migrations after the first release's (the sessions table clustered
/// by token_hash) keep every stored session and user.
async fn sessions_stored_before_an_upgrade_keep_working(backend: Backend) {
    // Arrange
    let (app, (user_id, session_id, token)) = spawn_app_upgraded(backend, |conn| {
        let user_id = insert_user_row(conn, "before-the-upgrade@example.com");
        let (session_id, token) = insert_session_row(conn, &user_id);
        (user_id, session_id, token)
    })
    .await;

    // Act
    let response = app.status(&token).await;

    // Assert
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["id"], user_id.as_str());
    assert_eq!(body["user"]["email"], "before-the-upgrade@example.com");
    assert_eq!(body["session"]["id"], session_id.as_str());
    let rows = app.session_rows(&user_id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, session_id);
    assert_eq!(rows[0].token_hash, sha256(&token));
    assert_eq!(primary_key(&app, backend).await, ["token_hash"]);
    let logout = app.post_with_token("/auth/logout", &token).await;
    assert_eq!(logout.status(), 204);
    assert!(app.session_rows(&user_id).await.is_empty());
    assert_error(app.status(&token).await, 401, "invalid_token").await;
}

/// The columns of the primary key of `authentication_tokens`.
async fn primary_key(app: &crate::helpers::TestApp, backend: Backend) -> Vec<String> {
    #[derive(QueryableByName)]
    struct KeyColumn {
        #[diesel(sql_type = diesel::sql_types::Text)]
        column_name: String,
    }
    let query = match backend {
        Backend::Mysql => {
            "SELECT COLUMN_NAME AS column_name FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'authentication_tokens' \
             AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION"
        }
        Backend::Postgres => {
            "SELECT a.attname::text AS column_name FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = 'authentication_tokens'::regclass AND i.indisprimary"
        }
        Backend::Sqlite => {
            "SELECT name AS column_name FROM pragma_table_info('authentication_tokens') \
             WHERE pk > 0 ORDER BY pk"
        }
    };
    app.with_db(move |conn| {
        let columns: Vec<KeyColumn> = diesel::sql_query(query)
            .load(conn)
            .expect("the primary key's columns");
        columns.into_iter().map(|c| c.column_name).collect()
    })
    .await
}
