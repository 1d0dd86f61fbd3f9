//! A statement that fails mid-request leaves no half-written state: the
//! database is made to refuse session rows (a trigger), and the requests
//! that would have created one must leave nothing behind.

use diesel::prelude::*;
use latchkey::db::schema::users;

use crate::helpers::{Backend, PASSWORD, TestApp, assert_error, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    a_login_whose_session_cannot_be_stored_fails_and_changes_nothing,
    a_registration_whose_session_cannot_be_stored_creates_no_user,
);

async fn refuse_new_sessions(app: &TestApp, backend: Backend) {
    let sql = match backend {
        Backend::Mysql => {
            "CREATE TRIGGER refuse_sessions BEFORE INSERT ON authentication_tokens \
             FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'"
        }
        Backend::Postgres => {
            "CREATE FUNCTION refuse_sessions() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; \
             CREATE TRIGGER refuse_sessions BEFORE INSERT ON authentication_tokens \
             FOR EACH ROW EXECUTE FUNCTION refuse_sessions()"
        }
        Backend::Sqlite => {
            "CREATE TRIGGER refuse_sessions BEFORE INSERT ON authentication_tokens \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        }
    };
    app.with_db(move |conn| {
        use diesel::connection::SimpleConnection as _;
        conn.batch_execute(sql).expect("trigger created")
    })
    .await;
}

async fn allow_new_sessions(app: &TestApp, backend: Backend) {
    let sql = match backend {
        Backend::Postgres => "DROP TRIGGER refuse_sessions ON authentication_tokens",
        Backend::Mysql | Backend::Sqlite => "DROP TRIGGER refuse_sessions",
    };
    app.with_db(move |conn| {
        diesel::sql_query(sql)
            .execute(conn)
            .expect("trigger dropped")
    })
    .await;
}

async fn a_login_whose_session_cannot_be_stored_fails_and_changes_nothing(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    refuse_new_sessions(&app, backend).await;

    // Act
    let response = app.login(&user.email, PASSWORD).await;

    // Assert: a JSON 500, the registration's session alone, and the login's
    // first statement (recording the login) rolled back with the rest.
    assert_error(response, 500, "internal_error").await;
    let rows = app.session_rows(&user.user_id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, user.session_id);
    let user_id = user.user_id.clone();
    let last_login = app
        .with_db(move |conn| {
            users::table
                .find(user_id)
                .select(users::last_login_at)
                .first::<Option<chrono::NaiveDateTime>>(conn)
                .unwrap()
        })
        .await;
    assert_eq!(last_login, None);
    // The registration's token still works, and logins work again.
    assert_eq!(app.status(&user.token).await.status(), 200);
    allow_new_sessions(&app, backend).await;
    assert_eq!(app.login(&user.email, PASSWORD).await.status(), 200);
}

async fn a_registration_whose_session_cannot_be_stored_creates_no_user(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    refuse_new_sessions(&app, backend).await;

    // Act
    let response = app.register("atomic@example.com", PASSWORD).await;

    // Assert
    assert_error(response, 500, "internal_error").await;
    assert_eq!(app.count_users().await, 0);
    assert_eq!(app.count_sessions().await, 0);
    allow_new_sessions(&app, backend).await;
    assert_eq!(
        app.register("atomic@example.com", PASSWORD).await.status(),
        201
    );
}
