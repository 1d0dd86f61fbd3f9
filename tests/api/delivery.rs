//! Delivery of one-time-code messages from the outbox: by SMTP to a real
//! mail server, by a signed POST to a real webhook receiver, through
//! outages and failures, and never after the code expired.
//!
//! Messages are queued the way the request path queues them
//! (`store::outbox::enqueue` on the app's database); the background sender
//! of the running app does the rest, found by polling (it looks every
//! second when nobody wakes it).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::TimeDelta;
use diesel::prelude::*;
use latchkey::db::schema::outbox;
use latchkey::delivery::config::Delivery;
use latchkey::delivery::message::{Message, MessageKind, MessageUser};
use latchkey::store::outbox::Row;

use crate::helpers::{Backend, TestApp, eventually, metric, spawn_app_on, spawn_app_with};
use crate::on_both_backends;
use crate::receivers::{SmtpReceiver, WEBHOOK_SECRET, WebhookReceiver, code_in, free_port};

on_both_backends!(
    a_mail_reaches_the_smtp_server_with_the_code_on_its_own_line,
    a_webhook_event_is_signed_and_carries_the_message_as_json,
    a_mail_queued_while_the_smtp_server_is_down_arrives_once_when_it_is_back,
    a_failing_webhook_is_retried_until_it_accepts,
    a_message_whose_code_expired_is_dropped_unsent,
    without_delivery_queued_messages_are_left_alone,
    two_instances_deliver_each_message_once,
    a_message_read_by_two_senders_is_claimed_by_one,
);

/// Bound for background work: generous, never an assertion on speed.
const PATIENCE: Duration = Duration::from_secs(20);
const MAIL_FROM: &str = "Latchkey Tests <noreply@latchkey.test>";
/// A code of the real shape (43 base64url characters).
const CODE: &str = "Tm90LWEtcmVhbC1jb2RlLWp1c3QtYS10ZXN0LWNvZGU";

fn smtp_delivery(receiver_url: &str) -> Delivery {
    Delivery::from_parts(Some(receiver_url), Some(MAIL_FROM), None, None)
        .expect("a valid mail configuration")
}

fn webhook_delivery(receiver: &WebhookReceiver) -> Delivery {
    Delivery::from_parts(None, None, Some(&receiver.url()), Some(WEBHOOK_SECRET))
        .expect("a valid webhook configuration")
}

/// Inserts a user and queues a message for them, expiring `expires_in`
/// from now (negative: already expired). Returns the message.
async fn queue_message(
    app: &TestApp,
    kind: MessageKind,
    link: Option<&str>,
    expires_in: TimeDelta,
) -> Message {
    let email = format!("user-{}@example.com", uuid::Uuid::new_v4().simple());
    let user_id = app.insert_user(&email).await;
    let now = latchkey::domain::now();
    let expires_at = now + expires_in;
    let message = Message {
        kind,
        user: MessageUser { id: user_id, email },
        code: CODE.to_owned(),
        link: link.map(str::to_owned),
        expires_at: latchkey::rfc3339::format(expires_at),
    };
    let queued = message.clone();
    app.with_db(move |conn| {
        latchkey::store::outbox::enqueue(conn, &queued, expires_at, now).expect("message queued")
    })
    .await;
    message
}

async fn outbox_rows(app: &TestApp) -> Vec<Row> {
    app.with_db(|conn| {
        outbox::table
            .select(Row::as_select())
            .load(conn)
            .expect("outbox rows")
    })
    .await
}

async fn outbox_is_empty(app: &TestApp) -> bool {
    outbox_rows(app).await.is_empty()
}

async fn counter(app: &TestApp, name: &str) -> f64 {
    metric(&app.metrics_text().await, name, &[]).unwrap_or_else(|| panic!("no metric {name}"))
}

/// Asserts that the counter `name` reaches `expected` (the sender counts
/// just after the database change a test waits for).
async fn assert_counter(app: &TestApp, name: &str, expected: f64) {
    eventually(PATIENCE, || async { counter(app, name).await == expected }).await;
    assert_eq!(counter(app, name).await, expected, "{name}");
}

async fn a_mail_reaches_the_smtp_server_with_the_code_on_its_own_line(backend: Backend) {
    // Arrange
    let receiver = SmtpReceiver::start();
    let delivery = smtp_delivery(&receiver.mail_url());
    let app = spawn_app_with(backend, |s| s.delivery = delivery).await;
    let link = format!("https://app.example/reset?code={CODE}");

    // Act
    let message = queue_message(
        &app,
        MessageKind::PasswordReset,
        Some(&link),
        TimeDelta::minutes(30),
    )
    .await;

    // Assert
    let mail = receiver.wait_for_mail(&message.user.email, PATIENCE).await;
    let mailbox = |text: &str| {
        text.parse::<lettre::message::Mailbox>()
            .unwrap_or_else(|e| panic!("{text:?} is not a mailbox: {e}"))
    };
    assert_eq!(mailbox(&mail.from), mailbox(MAIL_FROM), "{}", mail.from);
    assert_eq!(mail.to, message.user.email);
    assert_eq!(mail.envelope_from, "noreply@latchkey.test");
    assert_eq!(mail.envelope_to, std::slice::from_ref(&message.user.email));
    assert_eq!(mail.subject, "Reset your password");
    assert_eq!(code_in(&mail.body), CODE);
    assert!(
        mail.body.lines().any(|line| line.trim() == link),
        "the link is not alone on a line:\n{}",
        mail.body
    );
    assert!(
        eventually(PATIENCE, || outbox_is_empty(&app)).await,
        "the delivered message is still queued"
    );
    assert_counter(&app, "latchkey_outbox_sent_total", 1.0).await;
    assert_eq!(receiver.mails().len(), 1);
}

async fn a_webhook_event_is_signed_and_carries_the_message_as_json(backend: Backend) {
    // Arrange
    let receiver = WebhookReceiver::start(WEBHOOK_SECRET);
    let delivery = webhook_delivery(&receiver);
    let app = spawn_app_with(backend, |s| s.delivery = delivery).await;

    // Act
    let message = queue_message(
        &app,
        MessageKind::EmailVerification,
        None,
        TimeDelta::hours(24),
    )
    .await;

    // Assert: the receiver's own Standard Webhooks check passed.
    let event = receiver
        .wait_for_event(
            "email_verification.requested",
            &message.user.email,
            PATIENCE,
        )
        .await;
    assert_eq!(event, serde_json::to_value(&message).unwrap());
    let received = receiver.events();
    assert_eq!(received.len(), 1, "{received:?}");
    let post = &received[0];
    assert!(post.signature_valid);
    assert_eq!(post.body, serde_json::to_string(&message).unwrap());
    assert_eq!(post.header("content-type"), Some("application/json"));
    let id = post.header("webhook-id").expect("a webhook-id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "webhook-id {id}");
    let signature = post.header("webhook-signature").expect("a signature");
    assert!(signature.starts_with("v1,"), "{signature}");
    assert!(
        eventually(PATIENCE, || outbox_is_empty(&app)).await,
        "the delivered message is still queued"
    );
    assert_counter(&app, "latchkey_outbox_sent_total", 1.0).await;
}

async fn a_mail_queued_while_the_smtp_server_is_down_arrives_once_when_it_is_back(
    backend: Backend,
) {
    // Arrange: latchkey sends to a port nothing listens on.
    let port = free_port();
    let delivery = smtp_delivery(&format!("smtp://127.0.0.1:{port}?tls=off"));
    let app = spawn_app_with(backend, |s| s.delivery = delivery).await;
    let message = queue_message(
        &app,
        MessageKind::PasswordReset,
        None,
        TimeDelta::minutes(30),
    )
    .await;
    assert!(
        eventually(PATIENCE, || async {
            counter(&app, "latchkey_outbox_retried_total").await >= 1.0
                && counter(&app, "latchkey_outbox_depth").await == 1.0
        })
        .await,
        "no failed attempt was counted while the server was down"
    );
    let waiting = outbox_rows(&app).await;
    assert_eq!(waiting.len(), 1, "the message waits in the outbox");
    assert!(waiting[0].attempts >= 1, "{waiting:?}");

    // Act: the mail server comes up on that port.
    let receiver = SmtpReceiver::start_on(port);

    // Assert: the retry delivers it, once.
    let mail = receiver.wait_for_mail(&message.user.email, PATIENCE).await;
    assert_eq!(code_in(&mail.body), CODE);
    assert!(
        eventually(PATIENCE, || outbox_is_empty(&app)).await,
        "the delivered message is still queued"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.mails().len(), 1, "{:?}", receiver.mails());
    assert_counter(&app, "latchkey_outbox_sent_total", 1.0).await;
    assert!(
        eventually(PATIENCE, || async {
            counter(&app, "latchkey_outbox_depth").await == 0.0
        })
        .await
    );
}

async fn a_failing_webhook_is_retried_until_it_accepts(backend: Backend) {
    // Arrange: the receiver answers 500 twice, then accepts.
    let receiver = WebhookReceiver::start(WEBHOOK_SECRET);
    receiver.fail_next(2);
    let delivery = webhook_delivery(&receiver);
    let app = spawn_app_with(backend, |s| s.delivery = delivery).await;

    // Act
    let message = queue_message(
        &app,
        MessageKind::PasswordReset,
        Some("https://app.example/reset"),
        TimeDelta::minutes(30),
    )
    .await;

    // Assert
    let event = receiver
        .wait_for_event("password_reset.requested", &message.user.email, PATIENCE)
        .await;
    assert_eq!(event["code"], CODE);
    let posts = receiver.events();
    let statuses: Vec<u16> = posts.iter().map(|post| post.status).collect();
    assert_eq!(statuses, [500, 500, 204]);
    assert!(posts.iter().all(|post| post.signature_valid), "{posts:?}");
    let ids: Vec<Option<&str>> = posts.iter().map(|post| post.header("webhook-id")).collect();
    assert!(
        ids[0].is_some() && ids.iter().all(|id| *id == ids[0]),
        "a retry must keep its webhook-id: {ids:?}"
    );
    assert!(
        eventually(PATIENCE, || outbox_is_empty(&app)).await,
        "the delivered message is still queued"
    );
    assert_counter(&app, "latchkey_outbox_retried_total", 2.0).await;
    assert_counter(&app, "latchkey_outbox_sent_total", 1.0).await;
}

async fn a_message_whose_code_expired_is_dropped_unsent(backend: Backend) {
    // Arrange
    let receiver = WebhookReceiver::start(WEBHOOK_SECRET);
    let delivery = webhook_delivery(&receiver);
    let app = spawn_app_with(backend, |s| s.delivery = delivery).await;

    // Act: a message whose code stopped working a second ago.
    queue_message(
        &app,
        MessageKind::PasswordReset,
        None,
        TimeDelta::seconds(-1),
    )
    .await;

    // Assert
    assert!(
        eventually(PATIENCE, || outbox_is_empty(&app)).await,
        "the expired message is still queued"
    );
    assert_counter(&app, "latchkey_outbox_failed_total", 1.0).await;
    assert_counter(&app, "latchkey_outbox_sent_total", 0.0).await;
    assert!(receiver.events().is_empty(), "{:?}", receiver.events());
}

async fn without_delivery_queued_messages_are_left_alone(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| s.delivery = Delivery::None).await;

    // Act
    queue_message(
        &app,
        MessageKind::EmailVerification,
        None,
        TimeDelta::hours(1),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Assert: untouched, not even attempted.
    let rows = outbox_rows(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].attempts, 0);
    assert_counter(&app, "latchkey_outbox_retried_total", 0.0).await;
}

async fn two_instances_deliver_each_message_once(backend: Backend) {
    // Arrange: two latchkeys on one database, sending to one receiver.
    let receiver = WebhookReceiver::start(WEBHOOK_SECRET);
    let delivery = webhook_delivery(&receiver);
    let first = spawn_app_with(backend, |s| s.delivery = delivery.clone()).await;
    let second = spawn_app_on(first.settings.database_url.clone(), |s| {
        s.delivery = delivery;
    })
    .await;

    // Act
    let mut emails = Vec::new();
    for _ in 0..20 {
        let message = queue_message(
            &first,
            MessageKind::PasswordReset,
            None,
            TimeDelta::minutes(30),
        )
        .await;
        emails.push(message.user.email);
    }

    // Assert: every message arrived, none twice.
    assert!(
        eventually(PATIENCE, || outbox_is_empty(&first)).await,
        "messages are still queued: {:?}",
        outbox_rows(&first).await
    );
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for post in receiver.events() {
        assert_eq!(post.status, 204, "{post:?}");
        *per_id
            .entry(post.header("webhook-id").unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    assert_eq!(per_id.len(), emails.len(), "{per_id:?}");
    assert!(per_id.values().all(|n| *n == 1), "{per_id:?}");
    let sent_by_both = || async {
        counter(&first, "latchkey_outbox_sent_total").await
            + counter(&second, "latchkey_outbox_sent_total").await
    };
    eventually(PATIENCE, || async { sent_by_both().await == 20.0 }).await;
    assert_eq!(sent_by_both().await, 20.0);
}

async fn a_message_read_by_two_senders_is_claimed_by_one(backend: Backend) {
    // Arrange: no sender of the app's own interferes.
    let app = spawn_app_with(backend, |s| s.delivery = Delivery::None).await;
    queue_message(
        &app,
        MessageKind::PasswordReset,
        None,
        TimeDelta::minutes(30),
    )
    .await;

    // Act: two senders read the same due row, then both try to claim it.
    let (first, second, row) = app
        .with_db(|conn| {
            use latchkey::store::outbox::{claim, due};
            let now = latchkey::domain::now();
            let read_by_one = due(conn, now, 10).expect("due rows");
            let read_by_other = due(conn, now, 10).expect("due rows");
            let lease = now + TimeDelta::seconds(60);
            let first = claim(
                conn,
                &read_by_one[0].id,
                read_by_one[0].next_attempt_at,
                lease,
            )
            .expect("claim");
            let second = claim(
                conn,
                &read_by_other[0].id,
                read_by_other[0].next_attempt_at,
                lease,
            )
            .expect("claim");
            let after = due(conn, now, 10).expect("due rows");
            assert!(after.is_empty(), "a claimed row is not due: {after:?}");
            (first, second, read_by_one[0].clone())
        })
        .await;

    // Assert
    assert!(first, "the first claim must win");
    assert!(!second, "the second claim must lose");
    let rows = outbox_rows(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].attempts, row.attempts + 1, "one attempt counted");
    assert!(rows[0].next_attempt_at > row.next_attempt_at, "{rows:?}");
}
