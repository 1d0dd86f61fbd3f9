//! `POST /auth/introspect` (RFC 7662) for backends holding a service key.

use chrono::{NaiveDateTime, TimeDelta};
use serde_json::{Value, json};

use latchkey::domain::{ServiceKeys, SessionToken};
use latchkey::settings::Settings;

use crate::helpers::{Backend, TestApp, assert_error, now_seconds, spawn_app, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    a_live_token_in_a_json_body_is_active_with_claims_matching_its_row,
    a_live_token_in_a_form_body_is_active_and_shows_the_admin_flag,
    introspection_slides_the_session_by_default,
    introspection_with_touch_false_leaves_the_session_alone,
    expired_revoked_garbage_and_unknown_tokens_are_exactly_active_false,
    a_wrong_or_missing_service_key_is_401_invalid_service_key_and_touches_nothing,
    without_configured_keys_every_caller_is_401_invalid_service_key,
    every_configured_key_is_accepted_so_keys_can_be_rotated,
);

const KEY: &str = "service-key-0123456789abcdefghijklmnopqrstuv";
const NEXT_KEY: &str = "service-key-rotated-ABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn with_keys(settings: &mut Settings) {
    settings.introspect_keys =
        ServiceKeys::parse(&[KEY.to_owned(), NEXT_KEY.to_owned()]).expect("valid service keys");
}

async fn introspect(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/auth/introspect"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .expect("request sent")
}

async fn introspect_form(app: &TestApp, key: &str, form: &[(&str, &str)]) -> reqwest::Response {
    app.client
        .post(app.url("/auth/introspect"))
        .bearer_auth(key)
        .form(form)
        .send()
        .await
        .expect("request sent")
}

async fn json_200(response: reqwest::Response) -> Value {
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn last_updated_at(app: &TestApp, user_id: &str, session_id: &str) -> NaiveDateTime {
    app.session_rows(user_id)
        .await
        .into_iter()
        .find(|r| r.id == session_id)
        .expect("the session row")
        .last_updated_at
}

fn assert_active_claims(body: &Value, app: &TestApp, row: &crate::helpers::SessionRow) {
    let mut keys: Vec<&str> = body
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "active",
            "admin",
            "email",
            "exp",
            "iat",
            "session_id",
            "sub",
            "token_type"
        ],
        "{body}"
    );
    let expires = app
        .settings
        .session
        .expires_at(row.created_at, row.last_updated_at);
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], row.user_id.as_str());
    assert_eq!(body["session_id"], row.id.as_str());
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["iat"], row.created_at.and_utc().timestamp(), "{body}");
    assert_eq!(body["exp"], expires.and_utc().timestamp(), "{body}");
}

async fn a_live_token_in_a_json_body_is_active_with_claims_matching_its_row(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, with_keys).await;
    let user = app.register_user().await;
    // Distinct, whole-second times so that exp and iat are unambiguous.
    let created = now_seconds() - TimeDelta::hours(3);
    let last = now_seconds() - TimeDelta::seconds(20);
    app.set_session_times(&user.session_id, created, last).await;

    // Act
    let response = introspect(&app, KEY, &json!({ "token": user.token })).await;

    // Assert
    assert!(
        response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .is_some_and(|v| v == "no-store")
    );
    let body = json_200(response).await;
    let rows = app.session_rows(&user.user_id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].created_at, created);
    assert_eq!(body["email"], user.email.as_str());
    assert_eq!(body["admin"], false);
    assert_eq!(body["iat"], created.and_utc().timestamp());
    assert_eq!(
        body["exp"],
        (rows[0].last_updated_at + app.settings.session.idle_timeout)
            .and_utc()
            .timestamp()
    );
    assert_active_claims(&body, &app, &rows[0]);
}

async fn a_live_token_in_a_form_body_is_active_and_shows_the_admin_flag(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, with_keys).await;
    let admin = app.register_admin().await;

    // Act
    let response = introspect_form(&app, KEY, &[("token", &admin.token)]).await;

    // Assert
    let body = json_200(response).await;
    assert_eq!(body["email"], admin.email.as_str());
    assert_eq!(body["admin"], true);
    let rows = app.session_rows(&admin.user_id).await;
    assert_active_claims(&body, &app, &rows[0]);
}

async fn introspection_slides_the_session_by_default(backend: Backend) {
    // Arrange: every use writes; the session was last used an hour ago.
    let app = spawn_app_with(backend, |s| {
        with_keys(s);
        s.session.touch_interval = TimeDelta::zero();
    })
    .await;
    let user = app.register_user().await;
    let created = now_seconds() - TimeDelta::hours(2);
    let hour_ago = now_seconds() - TimeDelta::hours(1);
    app.set_session_times(&user.session_id, created, hour_ago)
        .await;
    let before = now_seconds();

    // Act
    let json_body = json_200(introspect(&app, KEY, &json!({ "token": user.token })).await).await;

    // Assert
    let bumped = last_updated_at(&app, &user.user_id, &user.session_id).await;
    assert!(
        bumped >= before,
        "{bumped} was not bumped (before {before})"
    );
    assert_eq!(json_body["active"], true);
    assert_eq!(
        json_body["exp"],
        (bumped + app.settings.session.idle_timeout)
            .and_utc()
            .timestamp()
    );

    // The same through a form body.
    app.set_session_times(&user.session_id, created, hour_ago)
        .await;
    json_200(introspect_form(&app, KEY, &[("token", &user.token)]).await).await;
    assert!(last_updated_at(&app, &user.user_id, &user.session_id).await >= before);
}

async fn introspection_with_touch_false_leaves_the_session_alone(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| {
        with_keys(s);
        s.session.touch_interval = TimeDelta::zero();
    })
    .await;
    let user = app.register_user().await;
    let created = now_seconds() - TimeDelta::hours(2);
    let hour_ago = now_seconds() - TimeDelta::hours(1);
    app.set_session_times(&user.session_id, created, hour_ago)
        .await;

    // Act
    let json_body =
        json_200(introspect(&app, KEY, &json!({ "token": user.token, "touch": false })).await)
            .await;
    let form_body =
        json_200(introspect_form(&app, KEY, &[("token", &user.token), ("touch", "false")]).await)
            .await;

    // Assert
    assert_eq!(
        last_updated_at(&app, &user.user_id, &user.session_id).await,
        hour_ago
    );
    for body in [json_body, form_body] {
        assert_eq!(body["active"], true);
        assert_eq!(
            body["exp"],
            (hour_ago + app.settings.session.idle_timeout)
                .and_utc()
                .timestamp()
        );
    }
}

async fn expired_revoked_garbage_and_unknown_tokens_are_exactly_active_false(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, with_keys).await;
    let idle = app.register_user().await;
    let long_ago = now_seconds() - app.settings.session.idle_timeout - TimeDelta::minutes(5);
    app.set_session_times(&idle.session_id, long_ago, long_ago)
        .await;
    let old = app.register_user().await;
    let too_old = now_seconds() - app.settings.session.absolute_timeout - TimeDelta::minutes(5);
    app.set_session_times(&old.session_id, too_old, now_seconds())
        .await;
    let revoked = app.register_user().await;
    assert_eq!(
        app.post_with_token("/auth/logout", &revoked.token)
            .await
            .status(),
        204
    );
    let (unknown, _) = SessionToken::generate();
    let bad_checksum = format!("lk_{}", "A".repeat(48));
    let cases = [
        ("idle-expired", idle.token.as_str()),
        ("absolute-expired", old.token.as_str()),
        ("revoked", revoked.token.as_str()),
        ("unknown", unknown.expose()),
        ("bad checksum", bad_checksum.as_str()),
        ("garbage", "not a token at all"),
        ("empty", ""),
    ];

    for (case, token) in cases {
        // Act
        let json_body = json_200(introspect(&app, KEY, &json!({ "token": token })).await).await;
        let form_body = json_200(introspect_form(&app, KEY, &[("token", token)]).await).await;

        // Assert
        assert_eq!(json_body, json!({ "active": false }), "{case} (JSON)");
        assert_eq!(form_body, json!({ "active": false }), "{case} (form)");
    }
    // And the users' tokens stay refused by the API itself.
    for token in [&idle.token, &old.token, &revoked.token] {
        assert_error(app.status(token).await, 401, "invalid_token").await;
    }
}

async fn a_wrong_or_missing_service_key_is_401_invalid_service_key_and_touches_nothing(
    backend: Backend,
) {
    // Arrange
    let app = spawn_app_with(backend, |s| {
        with_keys(s);
        s.session.touch_interval = TimeDelta::zero();
    })
    .await;
    let user = app.register_user().await;
    let created = now_seconds() - TimeDelta::hours(2);
    let hour_ago = now_seconds() - TimeDelta::hours(1);
    app.set_session_times(&user.session_id, created, hour_ago)
        .await;
    let body = json!({ "token": user.token });
    let wrong_key = "service-key-wrong-wrong-wrong-wrong-wrong";
    let requests = [
        ("a wrong key", Some(format!("Bearer {wrong_key}"))),
        (
            "a user's session token",
            Some(format!("Bearer {}", user.token)),
        ),
        (
            "a key prefix",
            Some(format!("Bearer {}", &KEY[..KEY.len() - 1])),
        ),
        ("the key as Basic", Some(format!("Basic {KEY}"))),
        ("no key", None),
    ];

    for (case, authorization) in requests {
        // Act
        let mut request = app.client.post(app.url("/auth/introspect")).json(&body);
        if let Some(value) = authorization {
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        let response = request.send().await.unwrap();

        // Assert
        let challenge = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .unwrap_or_else(|| panic!("{case}: no WWW-Authenticate"))
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.starts_with("Bearer"), "{case}: {challenge}");
        let error = assert_error(response, 401, "invalid_service_key").await;
        assert!(!error.to_string().contains(&user.email), "{case}: {error}");
    }
    assert_eq!(
        last_updated_at(&app, &user.user_id, &user.session_id).await,
        hour_ago,
        "a refused introspection slid the session"
    );
}

async fn without_configured_keys_every_caller_is_401_invalid_service_key(backend: Backend) {
    // Arrange: the default settings configure no keys.
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    for key in [KEY, user.token.as_str(), ""] {
        // Act
        let response = introspect(&app, key, &json!({ "token": user.token })).await;

        // Assert
        assert!(
            response
                .headers()
                .contains_key(reqwest::header::WWW_AUTHENTICATE),
            "{key}"
        );
        assert_error(response, 401, "invalid_service_key").await;
    }
}

async fn every_configured_key_is_accepted_so_keys_can_be_rotated(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, with_keys).await;
    let user = app.register_user().await;

    for key in [KEY, NEXT_KEY] {
        // Act
        let body = json_200(introspect(&app, key, &json!({ "token": user.token })).await).await;

        // Assert
        assert_eq!(body["active"], true, "{key}");
        assert_eq!(body["sub"], user.user_id.as_str());
        assert_eq!(body["session_id"], user.session_id.as_str());
    }
}
