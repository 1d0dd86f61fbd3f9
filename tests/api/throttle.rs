//! Throttling of login and registration (OWASP ASVS 2.2.1).

use actix_web::http::header::HeaderName;
use latchkey::throttle::ThrottleSettings;
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, TestApp, TestDatabase, spawn_app_on, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    an_account_is_throttled_after_its_burst_even_with_the_right_password,
    a_throttled_unknown_account_looks_like_a_throttled_real_one,
    a_client_ip_is_throttled_across_accounts,
    registration_is_throttled_per_ip_and_creates_nothing_when_refused,
    behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket,
    two_instances_on_one_database_share_every_limit,
);

/// 20 an hour gives a burst of 2.
fn limits(account: u32, ip: u32, register: u32) -> ThrottleSettings {
    ThrottleSettings {
        login_per_account_per_hour: account,
        login_per_ip_per_hour: ip,
        register_per_ip_per_hour: register,
        ..ThrottleSettings::default()
    }
}

async fn login_from(
    app: &TestApp,
    email: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/auth/login"))
        .json(&json!({ "email": email, "password": password }));
    if let Some(ip) = forwarded_for {
        request = request.header("X-Forwarded-For", ip);
    }
    request.send().await.unwrap()
}

/// Asserts a 429 with a whole-seconds Retry-After and the JSON error.
async fn assert_throttled(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .expect("whole seconds");
    assert!(retry_after >= 1, "Retry-After {retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests");
    body
}

async fn an_account_is_throttled_after_its_burst_even_with_the_right_password(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.throttle = limits(20, 0, 0)).await;
    let user = app.register_user().await;

    let first = login_from(&app, &user.email, "wrong password 1", None).await;
    let second = login_from(&app, &user.email, "wrong password 2", None).await;
    let third = login_from(&app, &user.email, PASSWORD, None).await;

    assert_eq!(first.status(), 401);
    assert_eq!(second.status(), 401);
    assert_throttled(third).await;
    // The right password did not open a session: only registration's exists.
    assert_eq!(app.session_rows(&user.user_id).await.len(), 1);
    // Another account is not affected.
    let other = app.register_user().await;
    assert_eq!(
        login_from(&app, &other.email, PASSWORD, None)
            .await
            .status(),
        200
    );
}

async fn a_throttled_unknown_account_looks_like_a_throttled_real_one(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.throttle = limits(20, 0, 0)).await;
    let user = app.register_user().await;
    let nobody = "nobody@example.com";

    for _ in 0..2 {
        assert_eq!(
            login_from(&app, &user.email, "wrong password", None)
                .await
                .status(),
            401
        );
        assert_eq!(
            login_from(&app, nobody, "wrong password", None)
                .await
                .status(),
            401
        );
    }
    let real = assert_throttled(login_from(&app, &user.email, "wrong password", None).await).await;
    let unknown = assert_throttled(login_from(&app, nobody, "wrong password", None).await).await;

    // Same code and same message but for the number of seconds.
    let without_digits = |v: &Value| {
        v["message"]
            .as_str()
            .unwrap()
            .replace(|c: char| c.is_ascii_digit(), "")
    };
    assert_eq!(real["error"], unknown["error"]);
    assert_eq!(without_digits(&real), without_digits(&unknown));
}

async fn a_client_ip_is_throttled_across_accounts(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.throttle = limits(0, 20, 0)).await;

    let a = login_from(&app, "a@example.com", "wrong password", None).await;
    let b = login_from(&app, "b@example.com", "wrong password", None).await;
    let c = login_from(&app, "c@example.com", "wrong password", None).await;

    assert_eq!(a.status(), 401);
    assert_eq!(b.status(), 401);
    assert_throttled(c).await;
}

async fn registration_is_throttled_per_ip_and_creates_nothing_when_refused(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.throttle = limits(0, 0, 20)).await;

    let first = app.register("one@example.com", PASSWORD).await;
    let second = app.register("two@example.com", PASSWORD).await;
    let third = app.register("three@example.com", PASSWORD).await;

    assert_eq!(first.status(), 201);
    assert_eq!(second.status(), 201);
    assert_throttled(third).await;
    assert_eq!(app.count_users().await, 2);
}

async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.throttle = limits(0, 10, 0);
        s.throttle.trusted_proxy_header = Some(HeaderName::from_static("x-forwarded-for"));
    })
    .await;

    let first = login_from(
        &app,
        "a@example.com",
        "wrong password",
        Some("198.51.100.7"),
    )
    .await;
    let again = login_from(
        &app,
        "a@example.com",
        "wrong password",
        Some("10.0.0.1, 198.51.100.7"),
    )
    .await;
    let other_client = login_from(
        &app,
        "a@example.com",
        "wrong password",
        Some("198.51.100.8"),
    )
    .await;

    assert_eq!(first.status(), 401);
    assert_throttled(again).await;
    assert_eq!(other_client.status(), 401);
}

async fn two_instances_on_one_database_share_every_limit(backend: Backend) {
    // Arrange: two latchkeys on one database, each allowing an account 20
    // login attempts an hour (a burst of 2) and 10 recovery mails per
    // address (a burst of 1).
    let database = TestDatabase::create(backend);
    let settings = |s: &mut latchkey::settings::Settings| {
        s.throttle = ThrottleSettings {
            login_per_account_per_hour: 20,
            recovery_per_email_per_hour: 10,
            ..ThrottleSettings::default()
        };
    };
    let a = spawn_app_on(database.url().clone(), settings).await;
    let b = spawn_app_on(database.url().clone(), settings).await;
    let user = a.register_user().await;

    // Act: the burst is spent through A, then B is asked.
    for _ in 0..2 {
        let response = login_from(&a, &user.email, "not the password at all", None).await;
        assert_eq!(response.status(), 401);
    }
    let through_b = login_from(&b, &user.email, PASSWORD, None).await;

    // Assert: B refuses: the deployment allows the limit, not twice it.
    assert_throttled(through_b).await;
    assert_throttled(login_from(&a, &user.email, PASSWORD, None).await).await;
    // Recovery mails too (and the answer says nothing about the account).
    for (app, expected) in [(&a, 202), (&b, 429)] {
        let response = app
            .post_json("/auth/password/forgot", &json!({ "email": user.email }))
            .await;
        assert_eq!(response.status(), expected);
    }
    // The buckets hold no email.
    let keys: Vec<String> = a
        .with_db(|conn| {
            use diesel::prelude::*;
            use latchkey::db::schema::throttle_buckets;
            throttle_buckets::table
                .select(throttle_buckets::bucket)
                .load(conn)
                .unwrap()
        })
        .await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys.iter().all(|k| k.len() == 64 && !k.contains('@')),
        "{keys:?}"
    );
}
