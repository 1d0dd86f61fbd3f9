//! Password reset and email verification with one-time codes, account
//! deletion, the verified-email rule. Codes are arranged through latchkey's
//! own store (as an operator's `reset-link` does); the delivered-by-mail
//! flows are in `recovery.rs`.

use std::time::Duration;

use chrono::TimeDelta;
use diesel::prelude::*;
use latchkey::db::schema::{authentication_tokens, one_time_codes, outbox, security_events, users};
use latchkey::delivery::message::MessageUser;
use latchkey::domain::Purpose;
use latchkey::store::codes::{CodeSpec, issue_and_queue};
use latchkey::store::events::{EventKind, NewEvent, Origin};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, PASSWORD, Registered, TestApp, assert_error, spawn_app, spawn_app_with,
};

crate::on_both_backends!(
    a_reset_code_sets_the_password_and_ends_every_session,
    of_twenty_concurrent_resets_with_one_code_exactly_one_succeeds,
    expired_superseded_and_wrong_purpose_codes_all_get_invalid_code,
    a_weak_new_password_gets_422_and_keeps_the_code,
    a_verification_code_marks_the_email_verified_once,
    resend_and_admin_reset_answer_503_without_delivery,
    forgot_answers_alike_for_known_and_unknown_emails_and_sends_nothing_without_delivery,
    unverified_accounts_cannot_log_in_when_verification_is_required,
    a_user_deletes_their_account_and_nothing_of_it_is_left,
    the_last_admin_cannot_delete_their_account,
    a_suspended_account_cannot_use_its_codes,
    sessions_keep_the_address_they_were_opened_from,
    forgot_is_throttled_per_email_alike_for_known_and_unknown_addresses,
    a_throttled_login_of_an_existing_account_is_recorded_once,
);

const NEW_PASSWORD: &str = "a brand new and long passphrase";

/// Issues a code through the store, as the HTTP and CLI paths do, and
/// returns it.
pub async fn issue_code(
    app: &TestApp,
    user: &Registered,
    purpose: Purpose,
    ttl: TimeDelta,
) -> String {
    let recipient = MessageUser {
        id: user.user_id.clone(),
        email: user.email.clone(),
    };
    app.with_db(move |conn| {
        let origin = Origin::default();
        let event = NewEvent::new(EventKind::PasswordResetRequested, &recipient.id, &origin);
        let spec = CodeSpec {
            purpose,
            ttl,
            link_template: None,
        };
        issue_and_queue(
            conn,
            &recipient,
            spec,
            false,
            event,
            latchkey::domain::now(),
        )
        .expect("code issued")
        .code
        .expose()
        .to_owned()
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

async fn event_kinds(app: &TestApp, user_id: &str) -> Vec<String> {
    let user_id = user_id.to_owned();
    app.with_db(move |conn| {
        security_events::table
            .filter(security_events::user_id.eq(user_id))
            .order(security_events::id.asc())
            .select(security_events::kind)
            .load(conn)
            .expect("events")
    })
    .await
}

async fn code_rows(app: &TestApp, user_id: &str) -> i64 {
    let user_id = user_id.to_owned();
    app.with_db(move |conn| {
        one_time_codes::table
            .filter(one_time_codes::user_id.eq(user_id))
            .count()
            .get_result(conn)
            .expect("count")
    })
    .await
}

async fn a_reset_code_sets_the_password_and_ends_every_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let second = app.login_token(&user.email, PASSWORD).await;
    let code = issue_code(&app, &user, Purpose::PasswordReset, TimeDelta::minutes(30)).await;

    let response = reset(&app, &code, NEW_PASSWORD).await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        response.text().await.unwrap(),
        "",
        "not logged in by the reset"
    );
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
    assert_eq!(app.login(&user.email, NEW_PASSWORD).await.status(), 200);
    assert_eq!(code_rows(&app, &user.user_id).await, 0, "the code is spent");
    assert_error(
        reset(&app, &code, "yet another long passphrase").await,
        400,
        "invalid_code",
    )
    .await;
    assert!(
        event_kinds(&app, &user.user_id)
            .await
            .contains(&"password_reset_completed".to_owned())
    );
}

async fn of_twenty_concurrent_resets_with_one_code_exactly_one_succeeds(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let code = issue_code(&app, &user, Purpose::PasswordReset, TimeDelta::minutes(30)).await;

    let attempts = (0..20).map(|i| {
        let password = format!("{NEW_PASSWORD} number {i}");
        let app = &app;
        let code = &code;
        async move { reset(app, code, &password).await.status() }
    });
    let statuses = futures_util::future::join_all(attempts).await;

    let won = statuses
        .iter()
        .filter(|s| **s == StatusCode::NO_CONTENT)
        .count();
    let lost = statuses
        .iter()
        .filter(|s| **s == StatusCode::BAD_REQUEST)
        .count();
    assert_eq!((won, lost), (1, 19), "{statuses:?}");
    let completed = event_kinds(&app, &user.user_id)
        .await
        .into_iter()
        .filter(|k| k == "password_reset_completed")
        .count();
    assert_eq!(completed, 1);
}

async fn expired_superseded_and_wrong_purpose_codes_all_get_invalid_code(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let expired = issue_code(&app, &user, Purpose::PasswordReset, TimeDelta::seconds(-1)).await;
    let verification = issue_code(
        &app,
        &user,
        Purpose::EmailVerification,
        TimeDelta::minutes(30),
    )
    .await;
    let superseded = issue_code(&app, &user, Purpose::PasswordReset, TimeDelta::minutes(30)).await;
    let current = issue_code(&app, &user, Purpose::PasswordReset, TimeDelta::minutes(30)).await;

    let mut bodies = Vec::new();
    for code in [
        expired.as_str(),
        verification.as_str(),
        superseded.as_str(),
        "not a code at all",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        bodies.push(assert_error(reset(&app, code, NEW_PASSWORD).await, 400, "invalid_code").await);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    // A reset code is no verification code either.
    let response = app
        .post_json("/auth/email/verify", &json!({ "code": current }))
        .await;
    assert_error(response, 400, "invalid_code").await;
    // None of that spent the current one.
    assert_eq!(reset(&app, &current, NEW_PASSWORD).await.status(), 204);
}

async fn a_weak_new_password_gets_422_and_keeps_the_code(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let code = issue_code(&app, &user, Purpose::PasswordReset, TimeDelta::minutes(30)).await;

    assert_error(reset(&app, &code, "short").await, 422, "invalid_password").await;
    assert_error(
        reset(&app, &code, "password1234").await,
        422,
        "invalid_password",
    )
    .await;

    assert_eq!(
        app.status(&user.token).await.status(),
        200,
        "nothing revoked"
    );
    assert_eq!(reset(&app, &code, NEW_PASSWORD).await.status(), 204);
}

async fn a_verification_code_marks_the_email_verified_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let status: Value = app.status(&user.token).await.json().await.unwrap();
    assert_eq!(status["user"]["email_verified"], false);
    let code = issue_code(
        &app,
        &user,
        Purpose::EmailVerification,
        TimeDelta::hours(24),
    )
    .await;

    let response = app
        .post_json("/auth/email/verify", &json!({ "code": code }))
        .await;

    assert_eq!(response.status(), 204);
    let status: Value = app.status(&user.token).await.json().await.unwrap();
    assert_eq!(status["user"]["email_verified"], true);
    let uid = user.user_id.clone();
    let verified_at: Option<chrono::NaiveDateTime> = app
        .with_db(move |conn| {
            users::table
                .find(uid)
                .select(users::email_verified_at)
                .first(conn)
                .unwrap()
        })
        .await;
    assert!(verified_at.is_some());
    let again = app
        .post_json("/auth/email/verify", &json!({ "code": code }))
        .await;
    assert_error(again, 400, "invalid_code").await;
    assert!(
        event_kinds(&app, &user.user_id)
            .await
            .contains(&"email_verified".to_owned())
    );
    // Resending to a verified address is refused (with delivery off, the
    // 503 comes first; see the delivery tests for the 409).
}

async fn resend_and_admin_reset_answer_503_without_delivery(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let admin = app.register_admin().await;

    let resend = app
        .post_with_token("/auth/email/verify/resend", &user.token)
        .await;
    assert_error(resend, 503, "delivery_unavailable").await;
    let admin_reset = app
        .post_with_token(
            &format!("/admin/users/{}/password-reset", user.user_id),
            &admin.token,
        )
        .await;
    assert_error(admin_reset, 503, "delivery_unavailable").await;
    assert_eq!(code_rows(&app, &user.user_id).await, 0);
}

async fn forgot_answers_alike_for_known_and_unknown_emails_and_sends_nothing_without_delivery(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    let known = app
        .post_json("/auth/password/forgot", &json!({ "email": user.email }))
        .await;
    let unknown = app
        .post_json(
            "/auth/password/forgot",
            &json!({ "email": "nobody-here@example.com" }),
        )
        .await;

    let shape = |r: &reqwest::Response| {
        let mut headers: Vec<(String, String)> = r
            .headers()
            .iter()
            .filter(|(name, _)| *name != "date" && *name != "x-request-id")
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        headers.sort();
        (r.status(), headers)
    };
    assert_eq!(shape(&known), shape(&unknown));
    assert_eq!(known.status(), 202);
    assert_eq!(known.text().await.unwrap(), unknown.text().await.unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(code_rows(&app, &user.user_id).await, 0, "nothing issued");
    let queued: i64 = app
        .with_db(|conn| outbox::table.count().get_result(conn).unwrap())
        .await;
    assert_eq!(queued, 0);
    let malformed = app
        .post_json("/auth/password/forgot", &json!({ "email": "not-an-email" }))
        .await;
    assert_error(malformed, 422, "invalid_email").await;
}

async fn unverified_accounts_cannot_log_in_when_verification_is_required(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.account.require_verified_email = true).await;
    let user = app.register_user().await;

    assert_error(
        app.login(&user.email, PASSWORD).await,
        403,
        "email_unverified",
    )
    .await;
    // A wrong password still gets the usual answer: nothing is revealed.
    assert_error(
        app.login(&user.email, "wrong but long password").await,
        401,
        "invalid_credentials",
    )
    .await;

    let code = issue_code(&app, &user, Purpose::EmailVerification, TimeDelta::hours(1)).await;
    let verified = app
        .post_json("/auth/email/verify", &json!({ "code": code }))
        .await;
    assert_eq!(verified.status(), 204);
    assert_eq!(app.login(&user.email, PASSWORD).await.status(), 200);
}

async fn a_user_deletes_their_account_and_nothing_of_it_is_left(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let other = app.login_token(&user.email, PASSWORD).await;
    issue_code(&app, &user, Purpose::PasswordReset, TimeDelta::minutes(30)).await;

    let wrong = app
        .with_token(
            reqwest::Method::DELETE,
            "/auth/account",
            &user.token,
            Some(&json!({ "password": "not the right password" })),
        )
        .await;
    assert_error(wrong, 403, "invalid_credentials").await;
    assert_eq!(app.count_users().await, 1, "nothing deleted");

    let response = app
        .with_token(
            reqwest::Method::DELETE,
            "/auth/account",
            &user.token,
            Some(&json!({ "password": PASSWORD })),
        )
        .await;

    assert_eq!(response.status(), 204);
    for token in [&user.token, &other] {
        assert_error(app.status(token).await, 401, "invalid_token").await;
    }
    assert_error(
        app.login(&user.email, PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    let uid = user.user_id.clone();
    let left: [i64; 6] = app
        .with_db(move |conn| {
            [
                users::table.find(&uid).count().get_result(conn).unwrap(),
                authentication_tokens::table
                    .filter(authentication_tokens::user_id.eq(&uid))
                    .count()
                    .get_result(conn)
                    .unwrap(),
                one_time_codes::table
                    .filter(one_time_codes::user_id.eq(&uid))
                    .count()
                    .get_result(conn)
                    .unwrap(),
                outbox::table
                    .filter(outbox::user_id.eq(&uid))
                    .count()
                    .get_result(conn)
                    .unwrap(),
                security_events::table
                    .filter(security_events::user_id.eq(&uid))
                    .count()
                    .get_result(conn)
                    .unwrap(),
                security_events::table
                    .filter(security_events::actor_id.eq(&uid))
                    .count()
                    .get_result(conn)
                    .unwrap(),
            ]
        })
        .await;
    assert_eq!(left, [0; 6]);
    let deleted: Vec<(Option<String>, Option<String>)> = app
        .with_db(|conn| {
            security_events::table
                .filter(security_events::kind.eq("account_deleted"))
                .select((security_events::user_id, security_events::actor_id))
                .load(conn)
                .unwrap()
        })
        .await;
    assert_eq!(deleted, vec![(None, None)], "recorded, naming no one");
}

async fn the_last_admin_cannot_delete_their_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;

    let response = app
        .with_token(
            reqwest::Method::DELETE,
            "/auth/account",
            &admin.token,
            Some(&json!({ "password": PASSWORD })),
        )
        .await;

    assert_error(response, 409, "last_admin").await;
    assert_eq!(app.admin_flag(&admin.user_id).await, Some(true));
    assert_eq!(app.status(&admin.token).await.status(), 200);
}

async fn a_suspended_account_cannot_use_its_codes(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let user = app.register_user().await;
    let code = issue_code(&app, &user, Purpose::PasswordReset, TimeDelta::minutes(30)).await;
    // Issued before the suspension; the suspension spends it.
    let suspended = app
        .patch_json_with_token(
            &format!("/admin/users/{}", user.user_id),
            &admin.token,
            &json!({ "disabled": true }),
        )
        .await;
    assert_eq!(suspended.status(), 200);
    let body: Value = suspended.json().await.unwrap();
    assert_eq!(body["disabled"], true);
    assert_eq!(body["active_sessions"], 0);
    assert_error(app.status(&user.token).await, 401, "invalid_token").await;
    assert_error(reset(&app, &code, NEW_PASSWORD).await, 400, "invalid_code").await;

    // A code issued while suspended (by an operator) is refused like a wrong password.
    let late = issue_code(&app, &user, Purpose::PasswordReset, TimeDelta::minutes(30)).await;
    assert_error(
        reset(&app, &late, NEW_PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_error(
        app.login(&user.email, PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;

    let restored = app
        .patch_json_with_token(
            &format!("/admin/users/{}", user.user_id),
            &admin.token,
            &json!({ "disabled": false }),
        )
        .await;
    assert_eq!(restored.status(), 200);
    assert_eq!(app.login(&user.email, PASSWORD).await.status(), 200);
    let nothing = app
        .patch_json_with_token(
            &format!("/admin/users/{}", user.user_id),
            &admin.token,
            &json!({}),
        )
        .await;
    assert_error(nothing, 400, "bad_request").await;
}

async fn sessions_keep_the_address_they_were_opened_from(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    let response = app.get_with_token("/auth/sessions", &user.token).await;

    let body: Value = response.json().await.unwrap();
    assert_eq!(body["sessions"][0]["client_ip"], "127.0.0.1", "{body}");
    let status: Value = app.status(&user.token).await.json().await.unwrap();
    assert_eq!(status["session"]["client_ip"], "127.0.0.1", "{status}");
}

async fn forgot_is_throttled_per_email_alike_for_known_and_unknown_addresses(backend: Backend) {
    // 10 an hour: a burst of one, then one every six minutes.
    let app = spawn_app_with(backend, |s| s.throttle.recovery_per_email_per_hour = 10).await;
    let user = app.register_user().await;

    for email in [user.email.as_str(), "nobody-here@example.com"] {
        let first = app
            .post_json("/auth/password/forgot", &json!({ "email": email }))
            .await;
        assert_eq!(first.status(), 202);
        let second = app
            .post_json("/auth/password/forgot", &json!({ "email": email }))
            .await;
        let retry_after: u64 = second.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=360).contains(&retry_after), "{retry_after}");
        assert_error(second, 429, "too_many_requests").await;
    }
    // Another address is not affected.
    let other = app
        .post_json(
            "/auth/password/forgot",
            &json!({ "email": "someone-else@example.com" }),
        )
        .await;
    assert_eq!(other.status(), 202);
}

async fn a_throttled_login_of_an_existing_account_is_recorded_once(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.throttle.login_per_account_per_hour = 10).await;
    let user = app.register_user().await;

    assert_error(
        app.login(&user.email, "wrong but long password").await,
        401,
        "invalid_credentials",
    )
    .await;
    for _ in 0..3 {
        assert_error(
            app.login(&user.email, PASSWORD).await,
            429,
            "too_many_requests",
        )
        .await;
    }
    // An unknown account is throttled alike, and records nothing.
    assert_error(
        app.login("nobody-here@example.com", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_error(
        app.login("nobody-here@example.com", PASSWORD).await,
        429,
        "too_many_requests",
    )
    .await;

    let kinds = event_kinds(&app, &user.user_id).await;
    let throttled = kinds.iter().filter(|k| *k == "login_throttled").count();
    let failed = kinds.iter().filter(|k| *k == "login_failed").count();
    assert_eq!((throttled, failed), (1, 1), "{kinds:?}");
    let orphans: i64 = app
        .with_db(|conn| {
            security_events::table
                .filter(security_events::user_id.is_null())
                .count()
                .get_result(conn)
                .unwrap()
        })
        .await;
    assert_eq!(orphans, 0, "nothing recorded for an unknown account");
}
