//! The account flows end to end through real delivery: a real SMTP server
//! and a real webhook receiver get the messages, and the tests read the
//! code from what they got, as a user would.

use std::time::Duration;

use diesel::prelude::*;
use latchkey::db::schema::one_time_codes;
use latchkey::delivery::config::Delivery;
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, assert_error, spawn_app_with};
use crate::receivers::{SmtpReceiver, WEBHOOK_SECRET, WebhookReceiver, code_in, free_port};

crate::on_both_backends!(
    forgot_mails_a_reset_link_whose_code_resets_the_password,
    registration_mails_a_verification_code_and_resend_replaces_it,
    forgot_answers_at_once_while_the_mail_server_is_down_and_the_mail_follows_once,
    the_webhook_gets_a_signed_reset_event_and_an_admin_can_send_one,
    with_mail_configured_forgot_answers_alike_and_mails_only_real_accounts,
);

const PATIENCE: Duration = Duration::from_secs(20);
const MAIL_FROM: &str = "Example <noreply@app.example>";
const RESET_LINK: &str = "https://app.example/reset?code={code}";
const NEW_PASSWORD: &str = "a brand new and long passphrase";

fn smtp(url: &str) -> Delivery {
    Delivery::from_parts(Some(url), Some(MAIL_FROM), None, None).expect("mail settings")
}

/// The first mail to `to` with this subject, waited for.
async fn mail_with_subject(
    mail: &SmtpReceiver,
    to: &str,
    subject: &str,
    patience: Duration,
) -> crate::receivers::ReceivedMail {
    let find = || {
        mail.mails()
            .into_iter()
            .find(|m| m.subject == subject && m.to.contains(to))
    };
    assert!(
        crate::helpers::eventually(patience, || async { find().is_some() }).await,
        "no mail {subject:?} to {to}"
    );
    find().expect("found above")
}

async fn forgot(app: &crate::helpers::TestApp, email: &str) -> reqwest::Response {
    app.post_json("/auth/password/forgot", &json!({ "email": email }))
        .await
}

async fn forgot_mails_a_reset_link_whose_code_resets_the_password(backend: Backend) {
    let mail = SmtpReceiver::start();
    let delivery = smtp(&mail.mail_url());
    let app = spawn_app_with(backend, |s| {
        s.delivery = delivery;
        s.account.reset_link = Some(RESET_LINK.into());
    })
    .await;
    let user = app.register_user().await;
    let other = app.login_token(&user.email, PASSWORD).await;

    assert_eq!(forgot(&app, &user.email).await.status(), 202);
    let received = mail_with_subject(&mail, &user.email, "Reset your password", PATIENCE).await;

    let code = code_in(&received.body);
    assert!(
        received
            .body
            .contains(&format!("https://app.example/reset?code={code}")),
        "{}",
        received.body
    );
    let reset = app
        .post_json(
            "/auth/password/reset",
            &json!({ "code": code, "new_password": NEW_PASSWORD }),
        )
        .await;
    assert_eq!(reset.status(), 204);
    for token in [&user.token, &other] {
        assert_error(app.status(token).await, 401, "invalid_token").await;
    }
    assert_eq!(app.login(&user.email, NEW_PASSWORD).await.status(), 200);
    // The code is stored only as its SHA-256 digest.
    let stored: Vec<Vec<u8>> = app
        .with_db(|conn| {
            one_time_codes::table
                .select(one_time_codes::code_hash)
                .load(conn)
                .unwrap()
        })
        .await;
    assert!(stored.iter().all(|h| h.len() == 32 && h != code.as_bytes()));
}

async fn registration_mails_a_verification_code_and_resend_replaces_it(backend: Backend) {
    let mail = SmtpReceiver::start();
    let delivery = smtp(&mail.mail_url());
    let app = spawn_app_with(backend, |s| s.delivery = delivery).await;
    let user = app.register_user().await;
    let first = mail.wait_for_mail(&user.email, PATIENCE).await;
    assert_eq!(first.subject, "Confirm your email address");
    let first_code = code_in(&first.body);

    let resend = app
        .post_with_token("/auth/email/verify/resend", &user.token)
        .await;
    assert_eq!(resend.status(), 202);
    assert!(
        crate::helpers::eventually(PATIENCE, || async { mail.mails().len() >= 2 }).await,
        "no second mail"
    );
    let second_code = code_in(&mail.mails()[1].body);
    assert_ne!(first_code, second_code);

    let stale = app
        .post_json("/auth/email/verify", &json!({ "code": first_code }))
        .await;
    assert_error(stale, 400, "invalid_code").await;
    let verified = app
        .post_json("/auth/email/verify", &json!({ "code": second_code }))
        .await;
    assert_eq!(verified.status(), 204);
    let status: Value = app.status(&user.token).await.json().await.unwrap();
    assert_eq!(status["user"]["email_verified"], true);
    let again = app
        .post_with_token("/auth/email/verify/resend", &user.token)
        .await;
    assert_error(again, 409, "email_already_verified").await;
}

async fn forgot_answers_at_once_while_the_mail_server_is_down_and_the_mail_follows_once(
    backend: Backend,
) {
    let port = free_port();
    let delivery = smtp(&format!("smtp://127.0.0.1:{port}?tls=off"));
    let app = spawn_app_with(backend, |s| s.delivery = delivery).await;
    let user = app.register_user().await;

    let response = forgot(&app, &user.email).await;
    assert_eq!(response.status(), 202);
    // Asked twice: the second code supersedes the first, and so does its
    // message (a mail with a dead code is not sent).
    assert_eq!(forgot(&app, &user.email).await.status(), 202);

    // Nothing listens yet; now the mail server comes up on that port.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mail = SmtpReceiver::start_on(port);
    let received = mail_with_subject(
        &mail,
        &user.email,
        "Reset your password",
        Duration::from_secs(60),
    )
    .await;
    assert!(received.body.contains(&code_in(&received.body)));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let resets = mail
        .mails()
        .into_iter()
        .filter(|m| m.subject == "Reset your password")
        .count();
    assert_eq!(resets, 1, "delivered exactly once");
    let reset = app
        .post_json(
            "/auth/password/reset",
            &json!({ "code": code_in(&received.body), "new_password": NEW_PASSWORD }),
        )
        .await;
    assert_eq!(reset.status(), 204, "the mail carries the live code");
}

async fn the_webhook_gets_a_signed_reset_event_and_an_admin_can_send_one(backend: Backend) {
    let hook = WebhookReceiver::start(WEBHOOK_SECRET);
    let delivery = Delivery::from_parts(None, None, Some(&hook.url()), Some(WEBHOOK_SECRET))
        .expect("webhook settings");
    let app = spawn_app_with(backend, |s| {
        s.delivery = delivery;
        s.account.reset_link = Some(RESET_LINK.into());
    })
    .await;
    let user = app.register_user().await;
    let admin = app.register_admin().await;

    assert_eq!(forgot(&app, &user.email).await.status(), 202);
    let event = hook
        .wait_for_event("password_reset.requested", &user.email, PATIENCE)
        .await;
    assert_eq!(event["user"]["id"], user.user_id.as_str());
    let code = event["code"].as_str().unwrap().to_owned();
    assert_eq!(
        event["link"],
        format!("https://app.example/reset?code={code}").as_str()
    );
    assert!(
        event["expires_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );

    let sent = app
        .post_with_token(
            &format!("/admin/users/{}/password-reset", user.user_id),
            &admin.token,
        )
        .await;
    assert_eq!(sent.status(), 202);
    assert!(
        crate::helpers::eventually(PATIENCE, || async {
            hook.events()
                .iter()
                .filter(|e| e.json()["type"] == "password_reset.requested")
                .count()
                >= 2
        })
        .await
    );
    // The admin's code superseded the user's own.
    let stale = app
        .post_json(
            "/auth/password/reset",
            &json!({ "code": code, "new_password": NEW_PASSWORD }),
        )
        .await;
    assert_error(stale, 400, "invalid_code").await;
}

async fn with_mail_configured_forgot_answers_alike_and_mails_only_real_accounts(backend: Backend) {
    let mail = SmtpReceiver::start();
    let delivery = smtp(&mail.mail_url());
    let app = spawn_app_with(backend, |s| s.delivery = delivery).await;
    let user = app.register_user().await;
    let unknown = "nobody-here@example.com";

    let mut answers = Vec::new();
    for email in [user.email.as_str(), unknown] {
        let response = forgot(&app, email).await;
        let mut headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter(|(name, _)| *name != "date" && *name != "x-request-id")
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        headers.sort();
        answers.push((response.status(), headers, response.text().await.unwrap()));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, 202);

    mail_with_subject(&mail, &user.email, "Reset your password", PATIENCE).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        mail.mails().iter().all(|m| !m.to.contains(unknown)),
        "a mail went to an address without an account"
    );
}
