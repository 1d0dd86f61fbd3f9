//! `latchkey user set-password | disable | enable | reset-link` and
//! `latchkey events`, run as real processes against the app's database.

use std::collections::BTreeSet;
use std::process::Output;

use diesel::prelude::*;
use latchkey::db::schema::{one_time_codes, outbox, users};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::cli::{database_url_string, latchkey, text};
use crate::events::{EventRow, event_rows, types};
use crate::helpers::{Backend, PASSWORD, TestApp, api_time, assert_error, now_seconds, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    user_set_password_reads_stdin_and_ends_every_session,
    user_set_password_refuses_a_short_password_and_changes_nothing,
    user_disable_ends_every_session_and_refuses_logins_until_user_enable,
    user_disable_of_the_last_admin_exits_1_and_changes_nothing,
    account_commands_exit_1_for_an_unknown_email_and_2_for_a_malformed_one,
    user_reset_link_prints_a_link_whose_code_works_once_and_stores_only_its_digest,
    user_reset_link_without_a_template_prints_the_bare_code_and_json_has_every_field,
    events_lists_the_users_events_newest_first_as_json_and_as_a_table,
);

const NEW_PASSWORD: &str = "an operator chosen passphrase";
const RESET_LINK: &str = "https://app.example/reset?code={code}";
/// What the CLI records as the user agent of its events.
const CLI_AGENT: &str = "latchkey cli";

/// Runs `latchkey ARGS` on the app's database, with `env` besides, feeding
/// `stdin`. bcrypt at the cheapest cost the CLI allows.
fn run_with(app: &TestApp, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let url = database_url_string(&app.settings.database_url);
    let mut all = vec![
        ("DATABASE_URL", url.as_str()),
        ("LATCHKEY_BCRYPT_COST", "10"),
    ];
    all.extend_from_slice(env);
    latchkey(args, &all, stdin)
}

fn run(app: &TestApp, args: &[&str]) -> Output {
    run_with(app, args, &[], "")
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

/// The standard output of a run that must succeed.
fn stdout_of(output: &Output, args: &[&str]) -> String {
    assert_exit(output, 0, args);
    text(&output.stdout)
}

fn parse_json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

async fn password_hash(app: &TestApp, user_id: &str) -> String {
    let user_id = user_id.to_owned();
    app.with_db(move |conn| {
        users::table
            .find(user_id)
            .select(users::password_hash)
            .first(conn)
            .expect("the user row")
    })
    .await
}

/// The user's events of one kind, as stored.
async fn events_of_kind(app: &TestApp, user_id: &str, kind: &str) -> Vec<EventRow> {
    event_rows(app, user_id)
        .await
        .into_iter()
        .filter(|e| e.kind == kind)
        .collect()
}

/// Checks that an event was recorded by the CLI: no admin, no address.
fn assert_recorded_by_the_cli(event: &EventRow) {
    assert_eq!(event.actor_id, None, "{event:?}");
    assert_eq!(event.client_ip, None, "{event:?}");
    assert_eq!(event.session_id, None, "{event:?}");
    assert_eq!(event.user_agent.as_deref(), Some(CLI_AGENT), "{event:?}");
}

/// The stored reset code rows of a user: (code_hash, user_id, purpose).
async fn reset_code_rows(app: &TestApp, user_id: &str) -> Vec<(Vec<u8>, String, String)> {
    let user_id = user_id.to_owned();
    app.with_db(move |conn| {
        one_time_codes::table
            .filter(one_time_codes::user_id.eq(user_id))
            .select((
                one_time_codes::code_hash,
                one_time_codes::user_id,
                one_time_codes::purpose,
            ))
            .load(conn)
            .expect("code rows")
    })
    .await
}

async fn reset(app: &TestApp, code: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/auth/password/reset",
        &json!({ "code": code, "new_password": password }),
    )
    .await
}

async fn user_set_password_reads_stdin_and_ends_every_session(backend: Backend) {
    // Arrange: two sessions of the user, one of a bystander.
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let second = app.login_token(&user.email, PASSWORD).await;
    let bystander = app.register_user().await;
    let args = [
        "user",
        "set-password",
        "--email",
        &user.email,
        "--password-stdin",
    ];

    // Act
    let output = run_with(&app, &args, &[], &format!("{NEW_PASSWORD}\n"));

    // Assert
    let stdout = stdout_of(&output, &args);
    assert!(stdout.contains(&user.user_id), "{stdout}");
    assert!(stdout.contains("ended 2 sessions"), "{stdout}");
    assert!(!stdout.contains(NEW_PASSWORD), "{stdout}");
    assert!(!text(&output.stderr).contains(NEW_PASSWORD));
    for token in [&user.token, &second] {
        assert_error(app.status(token).await, 401, "invalid_token").await;
    }
    assert!(app.session_rows(&user.user_id).await.is_empty());
    assert_error(
        app.login(&user.email, PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    let fresh = app.login_token(&user.email, NEW_PASSWORD).await;
    let changed = events_of_kind(&app, &user.user_id, "password_changed").await;
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_recorded_by_the_cli(&changed[0]);
    assert_eq!(app.status(&bystander.token).await.status(), 200);

    // Act: again, as JSON, with a password read up to a Windows line end.
    let args = [
        "user",
        "set-password",
        "--email",
        &user.email,
        "--password-stdin",
        "--json",
    ];
    let output = run_with(&app, &args, &[], "yet another operator passphrase\r\n");

    // Assert
    assert_eq!(
        parse_json(&stdout_of(&output, &args)),
        json!({ "user_id": user.user_id, "revoked": 1 })
    );
    assert_error(app.status(&fresh).await, 401, "invalid_token").await;
    assert_eq!(
        app.login(&user.email, "yet another operator passphrase")
            .await
            .status(),
        200
    );
}

async fn user_set_password_refuses_a_short_password_and_changes_nothing(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let hash_before = password_hash(&app, &user.user_id).await;
    let args = [
        "user",
        "set-password",
        "--email",
        &user.email,
        "--password-stdin",
    ];

    // Act
    let output = run_with(&app, &args, &[], "short\n");

    // Assert
    assert_exit(&output, 2, &args);
    assert!(
        text(&output.stderr).contains("at least 12 characters"),
        "{}",
        text(&output.stderr)
    );
    assert!(text(&output.stdout).is_empty());
    assert_eq!(password_hash(&app, &user.user_id).await, hash_before);
    assert_eq!(app.session_rows(&user.user_id).await.len(), 1);
    assert_eq!(app.status(&user.token).await.status(), 200);
    assert!(
        events_of_kind(&app, &user.user_id, "password_changed")
            .await
            .is_empty()
    );
    assert_eq!(app.login(&user.email, PASSWORD).await.status(), 200);
}

async fn user_disable_ends_every_session_and_refuses_logins_until_user_enable(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.register_admin().await;
    let user = app.register_user().await;
    let second = app.login_token(&user.email, PASSWORD).await;
    let disable = ["user", "disable", "--email", &user.email];

    // Act
    let stdout = stdout_of(&run(&app, &disable), &disable);

    // Assert
    assert!(stdout.contains("suspended"), "{stdout}");
    assert!(stdout.contains("ended 2 sessions"), "{stdout}");
    assert!(app.disabled_at(&user.user_id).await.is_some());
    assert!(app.session_rows(&user.user_id).await.is_empty());
    for token in [&user.token, &second] {
        assert_error(app.status(token).await, 401, "invalid_token").await;
    }
    assert_error(
        app.login(&user.email, PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    assert!(app.session_rows(&user.user_id).await.is_empty());

    // Act: restore, as JSON.
    let enable = ["user", "enable", "--email", &user.email, "--json"];
    let body = parse_json(&stdout_of(&run(&app, &enable), &enable));

    // Assert
    assert_eq!(body["id"], user.user_id.as_str(), "{body}");
    assert_eq!(body["email"], user.email.as_str(), "{body}");
    assert_eq!(body["disabled"], false, "{body}");
    assert!(!body.to_string().contains("password_hash"), "{body}");
    assert_eq!(app.disabled_at(&user.user_id).await, None);
    let token = app.login_token(&user.email, PASSWORD).await;
    assert_eq!(app.status(&token).await.status(), 200);
    let disabled = events_of_kind(&app, &user.user_id, "account_disabled").await;
    let enabled = events_of_kind(&app, &user.user_id, "account_enabled").await;
    assert_eq!((disabled.len(), enabled.len()), (1, 1));
    assert_recorded_by_the_cli(&disabled[0]);
    assert_recorded_by_the_cli(&enabled[0]);
}

async fn user_disable_of_the_last_admin_exits_1_and_changes_nothing(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    app.register_user().await;
    let args = ["user", "disable", "--email", &admin.email];

    // Act
    let output = run(&app, &args);

    // Assert
    assert_exit(&output, 1, &args);
    assert!(
        text(&output.stderr).contains("last admin"),
        "{}",
        text(&output.stderr)
    );
    assert!(text(&output.stdout).is_empty());
    assert_eq!(app.disabled_at(&admin.user_id).await, None);
    assert_eq!(app.admin_flag(&admin.user_id).await, Some(true));
    assert_eq!(app.status(&admin.token).await.status(), 200);
    assert!(
        events_of_kind(&app, &admin.user_id, "account_disabled")
            .await
            .is_empty()
    );
}

async fn account_commands_exit_1_for_an_unknown_email_and_2_for_a_malformed_one(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let hash_before = password_hash(&app, &user.user_id).await;
    let commands = |email: &'static str| -> [Vec<&'static str>; 5] {
        [
            vec!["user", "set-password", "--email", email, "--password-stdin"],
            vec!["user", "disable", "--email", email],
            vec!["user", "enable", "--email", email],
            vec!["user", "reset-link", "--email", email],
            vec!["events", "--email", email],
        ]
    };

    for (email, code) in [("nobody@example.com", 1), ("not-an-email", 2)] {
        for args in commands(email) {
            // Act
            let output = run_with(&app, &args, &[], &format!("{NEW_PASSWORD}\n"));

            // Assert
            assert_exit(&output, code, &args);
            assert!(text(&output.stdout).is_empty(), "{args:?}");
            if code == 1 {
                assert!(text(&output.stderr).contains(email), "{args:?}");
            }
        }
    }
    assert_eq!(app.count_users().await, 1);
    assert_eq!(password_hash(&app, &user.user_id).await, hash_before);
    assert_eq!(app.status(&user.token).await.status(), 200);
    let count_codes = app
        .with_db(|conn| {
            one_time_codes::table
                .count()
                .get_result::<i64>(conn)
                .unwrap()
        })
        .await;
    assert_eq!(count_codes, 0);
}

async fn user_reset_link_prints_a_link_whose_code_works_once_and_stores_only_its_digest(
    backend: Backend,
) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let args = ["user", "reset-link", "--email", &user.email];

    // Act
    let output = run_with(&app, &args, &[("LATCHKEY_RESET_LINK", RESET_LINK)], "");

    // Assert: one line on stdout, the link; the code nowhere else.
    let stdout = stdout_of(&output, &args);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let code = lines[0]
        .strip_prefix("https://app.example/reset?code=")
        .unwrap_or_else(|| panic!("not the link: {stdout}"));
    assert_eq!(code.len(), 43, "{stdout}");
    assert!(!text(&output.stderr).contains(code), "the code on stderr");
    // Only the digest is stored; nothing was queued for mailing.
    let rows = reset_code_rows(&app, &user.user_id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (hash, user_id, purpose) = &rows[0];
    assert_eq!(hash.as_slice(), Sha256::digest(code.as_bytes()).as_slice());
    assert_eq!(
        (user_id.as_str(), purpose.as_str()),
        (user.user_id.as_str(), "password_reset")
    );
    assert!(
        !hash.windows(code.len()).any(|w| w == code.as_bytes()),
        "the code text is in the row"
    );
    let queued = app
        .with_db(|conn| outbox::table.count().get_result::<i64>(conn).unwrap())
        .await;
    assert_eq!(queued, 0, "reset-link mails nothing");
    let requested = events_of_kind(&app, &user.user_id, "password_reset_requested").await;
    assert_eq!(requested.len(), 1);
    assert_recorded_by_the_cli(&requested[0]);

    // Act + Assert: the code works once.
    let first = reset(&app, code, NEW_PASSWORD).await;
    assert_eq!(first.status(), 204);
    assert_error(
        reset(&app, code, "a second attempt with the same code").await,
        400,
        "invalid_code",
    )
    .await;
    assert_error(app.status(&user.token).await, 401, "invalid_token").await;
    assert_eq!(app.login(&user.email, NEW_PASSWORD).await.status(), 200);
    assert!(reset_code_rows(&app, &user.user_id).await.is_empty());
}

async fn user_reset_link_without_a_template_prints_the_bare_code_and_json_has_every_field(
    backend: Backend,
) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let bare = ["user", "reset-link", "--email", &user.email];

    // Act
    let stdout = stdout_of(&run(&app, &bare), &bare);

    // Assert: the code alone, and it works.
    let code = stdout.trim();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert_eq!(code.len(), 43, "{stdout}");
    assert!(!code.contains("://"), "{stdout}");
    let rows = reset_code_rows(&app, &user.user_id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].0.as_slice(),
        Sha256::digest(code.as_bytes()).as_slice()
    );
    assert_eq!(reset(&app, code, NEW_PASSWORD).await.status(), 204);
    assert_eq!(app.login(&user.email, NEW_PASSWORD).await.status(), 200);

    // Act: as JSON, without and with a template.
    let json_args = ["user", "reset-link", "--email", &user.email, "--json"];
    let before = now_seconds();
    let plain = parse_json(&stdout_of(&run(&app, &json_args), &json_args));
    let output = run_with(&app, &json_args, &[("LATCHKEY_RESET_LINK", RESET_LINK)], "");
    let linked = parse_json(&stdout_of(&output, &json_args));
    let after = now_seconds() + chrono::TimeDelta::seconds(1);

    // Assert
    let keys: BTreeSet<&str> = ["user_id", "code", "link", "expires_at"]
        .into_iter()
        .collect();
    let ttl = app.settings.account.reset_ttl;
    for body in [&plain, &linked] {
        let listed: BTreeSet<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(listed, keys, "{body}");
        assert_eq!(body["user_id"], user.user_id.as_str(), "{body}");
        assert_eq!(body["code"].as_str().map(str::len), Some(43), "{body}");
        let expires_at = api_time(&body["expires_at"]);
        assert!(
            expires_at >= before + ttl && expires_at <= after + ttl,
            "{body}: expected {ttl} from now"
        );
    }
    assert_eq!(plain["link"], Value::Null, "{plain}");
    let code = linked["code"].as_str().unwrap();
    assert_eq!(
        linked["link"],
        format!("https://app.example/reset?code={code}"),
        "{linked}"
    );
    // Each new code replaces the earlier one.
    let rows = reset_code_rows(&app, &user.user_id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].0.as_slice(),
        Sha256::digest(code.as_bytes()).as_slice()
    );
    let superseded = plain["code"].as_str().unwrap();
    assert_error(
        reset(&app, superseded, "a superseded code must fail").await,
        400,
        "invalid_code",
    )
    .await;
    assert_eq!(
        reset(&app, code, "the newest code works fine")
            .await
            .status(),
        204
    );
}

async fn events_lists_the_users_events_newest_first_as_json_and_as_a_table(backend: Backend) {
    // Arrange: registered, then login_succeeded; another user's events.
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    app.login_token(&user.email, PASSWORD).await;
    app.register_user().await;
    let stored = event_rows(&app, &user.user_id).await;
    let json_args = ["events", "--email", &user.email, "--json"];
    let table_args = ["events", "--email", &user.email];
    let newest_args = ["events", "--email", &user.email, "--limit", "1", "--json"];

    // Act
    let listed = parse_json(&stdout_of(&run(&app, &json_args), &json_args));
    let table = stdout_of(&run(&app, &table_args), &table_args);
    let newest = parse_json(&stdout_of(&run(&app, &newest_args), &newest_args));

    // Assert
    assert_eq!(
        types(&listed),
        ["login_succeeded", "registered"],
        "{listed}"
    );
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    let stored_ids: Vec<&str> = stored.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, stored_ids);
    for (event, row) in listed.as_array().unwrap().iter().zip(&stored) {
        assert_eq!(event["session_id"], json!(row.session_id), "{event}");
        assert_eq!(event["client_ip"], "127.0.0.1", "{event}");
        let drift = (api_time(&event["created_at"]) - row.created_at).abs();
        assert!(drift < chrono::TimeDelta::seconds(1), "{event}");
    }
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[0].contains("TIME") && lines[0].contains("EVENT"),
        "{table}"
    );
    assert!(lines[1].contains("login_succeeded"), "{table}");
    assert!(lines[2].contains("registered"), "{table}");
    assert!(lines[1].contains("127.0.0.1"), "{table}");
    assert_eq!(types(&newest), ["login_succeeded"], "{newest}");
}
