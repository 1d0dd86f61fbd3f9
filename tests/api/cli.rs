//! The `latchkey` binary run as a real process.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use latchkey::db::DatabaseUrl;
use serde_json::Value;

use crate::helpers::{Backend, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    user_create_makes_an_admin_who_can_log_in,
    user_create_refuses_an_existing_email,
    user_create_refuses_a_short_password,
    migrate_on_a_migrated_database_changes_nothing,
);

pub(crate) fn database_url_string(url: &DatabaseUrl) -> String {
    match url {
        DatabaseUrl::Mysql(url) | DatabaseUrl::Postgres(url) => url.clone(),
        DatabaseUrl::Sqlite(path) => format!("sqlite://{path}"),
    }
}

/// Runs `latchkey ARGS` with only the given environment, feeding `stdin`.
pub(crate) fn latchkey(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("latchkey starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin written");
    child.wait_with_output().expect("latchkey exits")
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn user_create_makes_an_admin_who_can_log_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let url = database_url_string(&app.settings.database_url);

    let output = latchkey(
        &[
            "user",
            "create",
            "--email",
            "Root@Example.com",
            "--admin",
            "--password-stdin",
        ],
        &[("DATABASE_URL", &url), ("LATCHKEY_BCRYPT_COST", "10")],
        "a long admin passphrase\n",
    );

    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        text(&output.stderr)
    );
    assert!(text(&output.stdout).contains("root@example.com"));
    let response = app
        .login("root@example.com", "a long admin passphrase")
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["admin"], true);
    assert_eq!(body["user"]["email"], "root@example.com");
}

async fn user_create_refuses_an_existing_email(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let url = database_url_string(&app.settings.database_url);

    let output = latchkey(
        &["user", "create", "--email", &user.email, "--password-stdin"],
        &[("DATABASE_URL", &url), ("LATCHKEY_BCRYPT_COST", "10")],
        "another long passphrase\n",
    );

    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("already exists"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(app.count_users().await, 1);
}

async fn user_create_refuses_a_short_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let url = database_url_string(&app.settings.database_url);

    let output = latchkey(
        &[
            "user",
            "create",
            "--email",
            "x@example.com",
            "--password-stdin",
        ],
        &[("DATABASE_URL", &url)],
        "short\n",
    );

    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("at least 12 characters"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(app.count_users().await, 0);
}

async fn migrate_on_a_migrated_database_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let url = database_url_string(&app.settings.database_url);

    let output = latchkey(&["migrate"], &[("DATABASE_URL", &url)], "");

    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        text(&output.stderr)
    );
    assert_eq!(text(&output.stdout).trim(), "the database is up to date");
}

#[test]
fn migrate_creates_the_schema_in_a_new_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("new.sqlite3").display());

    let first = latchkey(&["migrate"], &[("DATABASE_URL", &url)], "");
    let second = latchkey(&["migrate"], &[("DATABASE_URL", &url)], "");

    assert_eq!(
        first.status.code(),
        Some(0),
        "stderr: {}",
        text(&first.stderr)
    );
    assert!(
        text(&first.stdout).starts_with("applied "),
        "{}",
        text(&first.stdout)
    );
    assert_eq!(text(&second.stdout).trim(), "the database is up to date");
}

#[test]
fn bad_settings_exit_2_with_one_line_naming_the_variable() {
    let cases: &[(&str, &str, &str)] = &[
        ("LATCHKEY_IDLE_TIMEOUT", "soon", "LATCHKEY_IDLE_TIMEOUT"),
        ("LATCHKEY_BCRYPT_COST", "9", "LATCHKEY_BCRYPT_COST"),
        (
            "LATCHKEY_SESSIONS_PER_USER",
            "0",
            "LATCHKEY_SESSIONS_PER_USER",
        ),
        ("LATCHKEY_BIND", "nowhere", "LATCHKEY_BIND"),
        ("DATABASE_URL", "redis://localhost/db", "DATABASE_URL"),
        // Valid alone, but longer than the default idle timeout.
        (
            "LATCHKEY_TOUCH_INTERVAL",
            "2days",
            "LATCHKEY_TOUCH_INTERVAL",
        ),
    ];
    for (variable, value, named) in cases {
        let output = latchkey(&["serve"], &[(variable, value)], "");
        let stderr = text(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{variable}={value}: {stderr}"
        );
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{variable}={value}: {stderr}"
        );
        assert!(stderr.contains(named), "{variable}={value}: {stderr}");
    }
}
