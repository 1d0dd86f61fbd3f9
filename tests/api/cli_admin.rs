//! `latchkey user list|delete|set-admin` and `latchkey sessions
//! list|revoke|purge`, run as real processes against the app's database.

use std::collections::BTreeSet;
use std::process::Output;

use chrono::TimeDelta;
use serde_json::Value;

use crate::cli::{database_url_string, latchkey, text};
use crate::helpers::{Backend, TestApp, assert_error, now_seconds, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    user_list_prints_a_table_with_every_user,
    user_list_json_is_an_array_of_user_summaries_counting_live_sessions,
    user_delete_removes_the_user_and_their_sessions,
    user_set_admin_grants_and_revoke_removes_the_flag,
    user_set_admin_revoke_of_the_last_admin_exits_1_and_keeps_the_flag,
    sessions_list_shows_the_users_live_sessions,
    sessions_revoke_ends_every_session_of_the_user_and_no_one_elses,
    sessions_purge_deletes_expired_sessions_keeps_live_ones_and_prints_the_count,
    sessions_commands_honour_the_configured_idle_timeout,
    emails_on_the_command_line_are_matched_whatever_their_case,
    commands_naming_an_unknown_user_exit_1_and_change_nothing,
    commands_given_a_malformed_email_exit_2_and_change_nothing,
);

/// Runs `latchkey ARGS` on the app's database.
fn run(app: &TestApp, args: &[&str]) -> Output {
    let url = database_url_string(&app.settings.database_url);
    latchkey(args, &[("DATABASE_URL", &url)], "")
}

fn assert_exit(output: &Output, code: i32, args: &[&str]) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "latchkey {args:?}\nstdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// Runs `latchkey ARGS` and expects exit code 0.
fn run_ok(app: &TestApp, args: &[&str]) -> String {
    let output = run(app, args);
    assert_exit(&output, 0, args);
    text(&output.stdout)
}

fn parse_json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn long_ago(app: &TestApp) -> chrono::NaiveDateTime {
    now_seconds() - app.settings.session.idle_timeout - TimeDelta::minutes(5)
}

async fn user_list_prints_a_table_with_every_user(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let alice = app.register_admin().await;
    let bob = app.register_user().await;

    // Act
    let stdout = run_ok(&app, &["user", "list"]);

    // Assert
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for column in ["ID", "EMAIL", "ADMIN", "CREATED", "SESSIONS"] {
        assert!(lines[0].contains(column), "{stdout}");
    }
    let alice_line = lines
        .iter()
        .find(|l| l.contains(&alice.email))
        .unwrap_or_else(|| panic!("{} missing: {stdout}", alice.email));
    assert!(alice_line.contains(&alice.user_id), "{alice_line}");
    let bob_line = lines
        .iter()
        .find(|l| l.contains(&bob.email))
        .unwrap_or_else(|| panic!("{} missing: {stdout}", bob.email));
    assert!(bob_line.contains(&bob.user_id), "{bob_line}");
    assert!(!stdout.contains("$2"), "a bcrypt hash is printed: {stdout}");
}

async fn user_list_json_is_an_array_of_user_summaries_counting_live_sessions(backend: Backend) {
    // Arrange: alice has 3 sessions, one expired; bob has 1.
    let app = spawn_app(backend).await;
    let alice = app.register_admin().await;
    app.insert_session(&alice.user_id).await;
    let (expired, _) = app.insert_session(&alice.user_id).await;
    let past = long_ago(&app);
    app.set_session_times(&expired, past, past).await;
    let bob = app.register_user().await;

    // Act
    let stdout = run_ok(&app, &["user", "list", "--json"]);

    // Assert
    assert!(!stdout.contains("password_hash"), "{stdout}");
    let users = parse_json(&stdout);
    let users = users.as_array().expect("a JSON array");
    assert_eq!(users.len(), 2, "{stdout}");
    let expected_keys: BTreeSet<&str> = [
        "id",
        "email",
        "admin",
        "created_at",
        "email_verified",
        "disabled",
        "active_sessions",
    ]
    .into_iter()
    .collect();
    for user in users {
        let keys: BTreeSet<&str> = user
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, expected_keys, "{user}");
        crate::helpers::api_time(&user["created_at"]);
    }
    assert_eq!(users[0]["id"], alice.user_id.as_str());
    assert_eq!(users[0]["email"], alice.email.as_str());
    assert_eq!(users[0]["admin"], true);
    assert_eq!(users[0]["active_sessions"], 2);
    assert_eq!(users[1]["id"], bob.user_id.as_str());
    assert_eq!(users[1]["email"], bob.email.as_str());
    assert_eq!(users[1]["admin"], false);
    assert_eq!(users[1]["active_sessions"], 1);
}

async fn user_delete_removes_the_user_and_their_sessions(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    app.insert_session(&user.user_id).await;
    let bystander = app.register_user().await;

    // Act
    let stdout = run_ok(&app, &["user", "delete", "--email", &user.email]);

    // Assert
    assert!(stdout.contains(&user.email), "{stdout}");
    assert_eq!(app.admin_flag(&user.user_id).await, None);
    assert!(app.session_rows(&user.user_id).await.is_empty());
    assert_error(app.status(&user.token).await, 401, "invalid_token").await;
    assert_eq!(app.count_users().await, 1);
    assert_eq!(app.status(&bystander.token).await.status(), 200);
}

async fn user_set_admin_grants_and_revoke_removes_the_flag(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let alice = app.register_user().await;
    let bob = app.register_user().await;

    // Act + Assert: grant to both, then revoke alice's (bob remains).
    run_ok(&app, &["user", "set-admin", "--email", &alice.email]);
    assert_eq!(app.admin_flag(&alice.user_id).await, Some(true));
    assert_eq!(app.admin_flag(&bob.user_id).await, Some(false));
    let stdout = run_ok(
        &app,
        &["user", "set-admin", "--email", &bob.email, "--json"],
    );
    let body = parse_json(&stdout);
    assert_eq!(body["id"], bob.user_id.as_str());
    assert_eq!(body["admin"], true);
    assert_eq!(app.admin_flag(&bob.user_id).await, Some(true));

    run_ok(
        &app,
        &["user", "set-admin", "--email", &alice.email, "--revoke"],
    );

    assert_eq!(app.admin_flag(&alice.user_id).await, Some(false));
    assert_eq!(app.admin_flag(&bob.user_id).await, Some(true));
    // The server sees the change at once.
    assert_error(
        app.get_with_token("/admin/users", &alice.token).await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(
        app.get_with_token("/admin/users", &bob.token)
            .await
            .status(),
        200
    );
}

async fn user_set_admin_revoke_of_the_last_admin_exits_1_and_keeps_the_flag(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    app.register_user().await;
    let args = ["user", "set-admin", "--email", &admin.email, "--revoke"];

    // Act
    let output = run(&app, &args);

    // Assert
    assert_exit(&output, 1, &args);
    assert!(
        text(&output.stderr).contains("last admin"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(app.admin_flag(&admin.user_id).await, Some(true));
    // Nor can the last admin be deleted.
    let args = ["user", "delete", "--email", &admin.email];
    let output = run(&app, &args);
    assert_exit(&output, 1, &args);
    assert_eq!(app.admin_flag(&admin.user_id).await, Some(true));
    assert_eq!(app.session_rows(&admin.user_id).await.len(), 1);
}

async fn sessions_list_shows_the_users_live_sessions(backend: Backend) {
    // Arrange: 2 live sessions and 1 expired; another user's session.
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let (second, _) = app.insert_session(&user.user_id).await;
    let (expired, _) = app.insert_session(&user.user_id).await;
    let past = long_ago(&app);
    app.set_session_times(&expired, past, past).await;
    let other = app.register_user().await;

    // Act
    let table = run_ok(&app, &["sessions", "list", "--user", &user.email]);
    let json = run_ok(&app, &["sessions", "list", "--user", &user.email, "--json"]);

    // Assert
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].contains("ID"), "{table}");
    assert!(table.contains(&user.session_id), "{table}");
    assert!(table.contains(&second), "{table}");
    assert!(!table.contains(&expired), "{table}");
    assert!(!table.contains(&other.session_id), "{table}");
    assert!(!table.contains(&user.token), "{table}");

    let sessions = parse_json(&json);
    let listed: BTreeSet<&str> = sessions
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let expected: BTreeSet<&str> = [user.session_id.as_str(), second.as_str()]
        .into_iter()
        .collect();
    assert_eq!(listed, expected, "{json}");
    assert!(!json.contains("token_hash"), "{json}");
    // Listing is read-only.
    assert_eq!(app.session_rows(&user.user_id).await.len(), 3);
}

async fn sessions_revoke_ends_every_session_of_the_user_and_no_one_elses(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let second = app.login_token(&user.email, &user.password).await;
    let other = app.register_user().await;

    // Act
    let stdout = run_ok(&app, &["sessions", "revoke", "--user", &user.email]);

    // Assert
    assert!(stdout.contains("revoked 2 sessions"), "{stdout}");
    assert!(app.session_rows(&user.user_id).await.is_empty());
    for token in [&user.token, &second] {
        assert_error(app.status(token).await, 401, "invalid_token").await;
    }
    assert_eq!(app.session_rows(&other.user_id).await.len(), 1);
    assert_eq!(app.status(&other.token).await.status(), 200);
    assert_eq!(app.admin_flag(&user.user_id).await, Some(false));
    // Again, as JSON: nothing left.
    let stdout = run_ok(
        &app,
        &["sessions", "revoke", "--user", &user.email, "--json"],
    );
    assert_eq!(
        parse_json(&stdout),
        serde_json::json!({ "user_id": user.user_id, "revoked": 0 })
    );
}

async fn sessions_purge_deletes_expired_sessions_keeps_live_ones_and_prints_the_count(
    backend: Backend,
) {
    // Arrange: one idle-expired and one absolute-expired session; two live.
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let (idle, _) = app.insert_session(&user.user_id).await;
    let (old, _) = app.insert_session(&user.user_id).await;
    let past = long_ago(&app);
    app.set_session_times(&idle, past, past).await;
    let too_old = now_seconds() - app.settings.session.absolute_timeout - TimeDelta::minutes(5);
    app.set_session_times(&old, too_old, now_seconds()).await;
    let other = app.register_user().await;

    // Act
    let stdout = run_ok(&app, &["sessions", "purge"]);

    // Assert
    assert_eq!(stdout.trim(), "deleted 2 expired sessions");
    let remaining: Vec<String> = app
        .session_rows(&user.user_id)
        .await
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(remaining, std::slice::from_ref(&user.session_id));
    assert_eq!(app.session_rows(&other.user_id).await.len(), 1);
    assert_eq!(app.status(&user.token).await.status(), 200);

    // Act: again, as JSON: nothing left to purge.
    let stdout = run_ok(&app, &["sessions", "purge", "--json"]);

    // Assert
    assert_eq!(parse_json(&stdout), serde_json::json!({ "deleted": 0 }));
    assert_eq!(app.count_sessions().await, 2);
}

async fn commands_naming_an_unknown_user_exit_1_and_change_nothing(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let nobody = "nobody@example.com";
    let commands: [&[&str]; 5] = [
        &["user", "delete", "--email", nobody],
        &["user", "set-admin", "--email", nobody],
        &["user", "set-admin", "--email", nobody, "--revoke"],
        &["sessions", "list", "--user", nobody],
        &["sessions", "revoke", "--user", nobody],
    ];

    for args in commands {
        // Act
        let output = run(&app, args);

        // Assert
        assert_exit(&output, 1, args);
        let stderr = text(&output.stderr);
        assert!(stderr.contains(nobody), "{args:?}: {stderr}");
        assert!(text(&output.stdout).is_empty(), "{args:?}");
    }
    assert_eq!(app.count_users().await, 1);
    assert_eq!(app.session_rows(&user.user_id).await.len(), 1);
}

async fn commands_given_a_malformed_email_exit_2_and_change_nothing(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let malformed = "not-an-email";
    let commands: [&[&str]; 4] = [
        &["user", "delete", "--email", malformed],
        &["user", "set-admin", "--email", malformed],
        &["sessions", "list", "--user", malformed],
        &["sessions", "revoke", "--user", malformed],
    ];

    for args in commands {
        // Act
        let output = run(&app, args);

        // Assert
        assert_exit(&output, 2, args);
        assert!(text(&output.stdout).is_empty(), "{args:?}");
        assert!(!text(&output.stderr).is_empty(), "{args:?}");
    }
    assert_eq!(app.count_users().await, 1);
    assert_eq!(app.session_rows(&user.user_id).await.len(), 1);
}

async fn sessions_commands_honour_the_configured_idle_timeout(backend: Backend) {
    // Arrange: a session last used 2 hours ago: live under the default 24 h
    // idle timeout, expired under 1 h.
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let (stale, _) = app.insert_session(&user.user_id).await;
    let two_hours_ago = now_seconds() - TimeDelta::hours(2);
    app.set_session_times(&stale, two_hours_ago, two_hours_ago)
        .await;
    let url = database_url_string(&app.settings.database_url);
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("LATCHKEY_IDLE_TIMEOUT", "1h"),
    ];

    // Act + Assert: with the default, both sessions are live.
    let listed = parse_json(&run_ok(&app, &["user", "list", "--json"]));
    assert_eq!(listed[0]["active_sessions"], 2, "{listed}");
    assert_eq!(
        run_ok(&app, &["sessions", "purge"]).trim(),
        "deleted 0 expired sessions"
    );

    // With LATCHKEY_IDLE_TIMEOUT=1h, the stale one is expired.
    let output = latchkey(&["user", "list", "--json"], &env, "");
    assert_exit(&output, 0, &["user", "list", "--json"]);
    assert_eq!(parse_json(&text(&output.stdout))[0]["active_sessions"], 1);
    let output = latchkey(
        &["sessions", "list", "--user", &user.email, "--json"],
        &env,
        "",
    );
    let sessions = parse_json(&text(&output.stdout));
    assert_eq!(sessions.as_array().map(Vec::len), Some(1), "{sessions}");
    assert_eq!(sessions[0]["id"], user.session_id.as_str());
    let output = latchkey(&["sessions", "purge"], &env, "");
    assert_exit(&output, 0, &["sessions", "purge"]);
    assert_eq!(text(&output.stdout).trim(), "deleted 1 expired sessions");
    let remaining: Vec<String> = app
        .session_rows(&user.user_id)
        .await
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(remaining, std::slice::from_ref(&user.session_id));
}

async fn emails_on_the_command_line_are_matched_whatever_their_case(backend: Backend) {
    // Arrange: registration stores the email in lower case.
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let shouted = user.email.to_uppercase();

    // Act
    run_ok(&app, &["user", "set-admin", "--email", &shouted]);
    let json = run_ok(&app, &["sessions", "list", "--user", &shouted, "--json"]);

    // Assert
    assert_eq!(app.admin_flag(&user.user_id).await, Some(true));
    assert_eq!(parse_json(&json)[0]["id"], user.session_id.as_str());
}
