//! Idle and absolute expiry, and sliding (`last_updated_at` bumps).
//! Time is simulated by moving the session's timestamps into the past.

use chrono::{NaiveDateTime, SubsecRound as _, TimeDelta};
use serde_json::Value;

use latchkey::db::DatabaseUrl;
use latchkey::settings::{Settings, to_delta};

use crate::helpers::{
    Backend, PASSWORD, api_time, assert_error, now_seconds, spawn_app, spawn_app_with,
};
use crate::on_both_backends;

on_both_backends!(
    expires_at_is_the_idle_deadline_when_that_comes_first,
    expires_at_is_the_absolute_deadline_when_that_comes_first,
    an_idle_session_is_refused_and_its_row_deleted,
    a_session_past_its_absolute_timeout_is_refused_despite_recent_activity,
    a_session_used_just_within_the_idle_timeout_slides_and_outlives_its_original_deadline,
    with_a_zero_touch_interval_every_request_moves_last_updated_at_forward,
    with_the_default_touch_interval_an_immediate_second_request_does_not_write,
    with_the_default_touch_interval_a_request_after_the_interval_writes,
    a_login_deletes_the_users_expired_sessions,
    every_authorized_request_slides_the_session_not_only_status,
    an_absolute_timeout_too_long_for_the_calendar_is_refused_at_start_up_or_never_breaks_a_request,
);

/// Now, at the microsecond precision the service stores.
fn now_micros() -> NaiveDateTime {
    chrono::Utc::now().naive_utc().trunc_subsecs(6)
}

async fn expires_at_is_the_idle_deadline_when_that_comes_first(backend: Backend) {
    // Arrange: idle 1 h, absolute 2 h; created 10 min ago, used 30 s ago
    // (within the 60 s touch interval, so the check does not slide it).
    let app = spawn_app_with(backend, |s| {
        s.session.idle_timeout = TimeDelta::hours(1);
        s.session.absolute_timeout = TimeDelta::hours(2);
    })
    .await;
    let user = app.register_user().await;
    let now = now_seconds();
    let created = now - TimeDelta::minutes(10);
    let last = now - TimeDelta::seconds(30);
    app.set_session_times(&user.session_id, created, last).await;

    // Act
    let response = app.status(&user.token).await;

    // Assert
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(api_time(&body["session"]["created_at"]), created);
    assert_eq!(api_time(&body["session"]["last_updated_at"]), last);
    assert_eq!(
        api_time(&body["session"]["expires_at"]),
        last + TimeDelta::hours(1)
    );
    let rows = app.session_rows(&user.user_id).await;
    assert_eq!(rows[0].last_updated_at, last, "the row was written");
}

async fn expires_at_is_the_absolute_deadline_when_that_comes_first(backend: Backend) {
    // Arrange: idle 1 h, absolute 2 h; created 90 min ago, used 10 s ago:
    // the absolute deadline (in 30 min) comes before the idle one (in ~1 h).
    let app = spawn_app_with(backend, |s| {
        s.session.idle_timeout = TimeDelta::hours(1);
        s.session.absolute_timeout = TimeDelta::hours(2);
    })
    .await;
    let user = app.register_user().await;
    let now = now_seconds();
    let created = now - TimeDelta::minutes(90);
    let last = now - TimeDelta::seconds(10);
    app.set_session_times(&user.session_id, created, last).await;

    // Act
    let response = app.status(&user.token).await;

    // Assert
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let expires_at = body["session"]["expires_at"].as_str().unwrap();
    assert!(expires_at.ends_with('Z'), "{expires_at}");
    assert_eq!(
        api_time(&body["session"]["expires_at"]),
        created + TimeDelta::hours(2)
    );
    // The listing computes the same deadline.
    let list: Value = app
        .get_with_token("/auth/sessions", &user.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        api_time(&list["sessions"][0]["expires_at"]),
        created + TimeDelta::hours(2)
    );
}

async fn an_idle_session_is_refused_and_its_row_deleted(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| {
        s.session.idle_timeout = TimeDelta::minutes(30);
    })
    .await;
    let user = app.register_user().await;
    let other = app.login_token(&user.email, &user.password).await;
    let last = now_seconds() - TimeDelta::minutes(30) - TimeDelta::seconds(1);
    app.set_session_times(&user.session_id, last, last).await;

    // Act
    let response = app.status(&user.token).await;

    // Assert
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert_error(response, 401, "invalid_token").await;
    let rows = app.session_rows(&user.user_id).await;
    assert_eq!(rows.len(), 1, "the expired row was not deleted");
    assert_ne!(rows[0].id, user.session_id);
    // The user's live session is unaffected.
    assert_eq!(app.status(&other).await.status(), 200);
}

async fn a_session_past_its_absolute_timeout_is_refused_despite_recent_activity(backend: Backend) {
    // Arrange: used a second ago, but created longer ago than the absolute timeout.
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let now = now_seconds();
    let created = now - app.settings.session.absolute_timeout - TimeDelta::minutes(1);
    let last = now - TimeDelta::seconds(1);
    app.set_session_times(&user.session_id, created, last).await;

    // Act
    let response = app.status(&user.token).await;

    // Assert
    assert_error(response, 401, "invalid_token").await;
    assert!(app.session_rows(&user.user_id).await.is_empty());
    // Other endpoints refuse it as well.
    assert_error(
        app.get_with_token("/auth/sessions", &user.token).await,
        401,
        "invalid_token",
    )
    .await;
}

async fn a_session_used_just_within_the_idle_timeout_slides_and_outlives_its_original_deadline(
    backend: Backend,
) {
    // Arrange: two sessions last used 58 minutes ago with a 1 h idle timeout.
    let app = spawn_app_with(backend, |s| {
        s.session.idle_timeout = TimeDelta::hours(1);
    })
    .await;
    let user = app.register_user().await;
    let unused = app.login_token(&user.email, &user.password).await;
    let unused_id = app
        .session_rows(&user.user_id)
        .await
        .into_iter()
        .find(|r| r.id != user.session_id)
        .unwrap()
        .id;
    let last = now_seconds() - TimeDelta::minutes(58);
    let original_deadline = last + TimeDelta::hours(1);
    app.set_session_times(&user.session_id, last, last).await;
    app.set_session_times(&unused_id, last, last).await;

    // Act
    let before = now_micros();
    let response = app.status(&user.token).await;
    let after = now_micros();

    // Assert: the row's last_updated_at moved to "now"…
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let rows = app.session_rows(&user.user_id).await;
    let row = rows.iter().find(|r| r.id == user.session_id).unwrap();
    assert!(
        before <= row.last_updated_at && row.last_updated_at <= after,
        "{before} <= {} <= {after}",
        row.last_updated_at
    );
    assert_eq!(row.created_at, last);
    assert_eq!(
        api_time(&body["session"]["last_updated_at"]),
        row.last_updated_at
    );
    let new_deadline = api_time(&body["session"]["expires_at"]);
    assert_eq!(new_deadline, row.last_updated_at + TimeDelta::hours(1));
    assert!(new_deadline > original_deadline);

    // …so three minutes later it is still alive, past its original deadline,
    // while the session that was not used in between is not.
    let three_minutes = TimeDelta::minutes(3);
    app.set_session_times(
        &user.session_id,
        row.created_at - three_minutes,
        row.last_updated_at - three_minutes,
    )
    .await;
    app.set_session_times(&unused_id, last - three_minutes, last - three_minutes)
        .await;
    assert_eq!(app.status(&user.token).await.status(), 200);
    assert_error(app.status(&unused).await, 401, "invalid_token").await;
}

async fn with_a_zero_touch_interval_every_request_moves_last_updated_at_forward(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| s.session.touch_interval = TimeDelta::zero()).await;
    let user = app.register_user().await;
    let mut previous = app.session_rows(&user.user_id).await[0].last_updated_at;

    for _ in 0..3 {
        // Act
        let response = app.status(&user.token).await;

        // Assert
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        let row = app.session_rows(&user.user_id).await.remove(0);
        assert!(
            row.last_updated_at > previous,
            "{} is not after {previous}",
            row.last_updated_at
        );
        assert_eq!(
            api_time(&body["session"]["last_updated_at"]),
            row.last_updated_at
        );
        previous = row.last_updated_at;
    }
}

async fn with_the_default_touch_interval_an_immediate_second_request_does_not_write(
    backend: Backend,
) {
    // Arrange
    let app = spawn_app(backend).await;
    assert_eq!(app.settings.session.touch_interval, TimeDelta::seconds(60));
    let user = app.register_user().await;
    let registered = app.session_rows(&user.user_id).await.remove(0);
    assert_eq!(app.status(&user.token).await.status(), 200);

    // Act
    let response = app.status(&user.token).await;

    // Assert
    assert_eq!(response.status(), 200);
    let row = app.session_rows(&user.user_id).await.remove(0);
    assert_eq!(row.last_updated_at, registered.last_updated_at);

    // Also for a session last used 30 s ago: within the interval, no write.
    let thirty_seconds_ago = now_seconds() - TimeDelta::seconds(30);
    app.set_session_times(&user.session_id, registered.created_at, thirty_seconds_ago)
        .await;
    let body: Value = app.status(&user.token).await.json().await.unwrap();
    assert_eq!(
        api_time(&body["session"]["last_updated_at"]),
        thirty_seconds_ago
    );
    let row = app.session_rows(&user.user_id).await.remove(0);
    assert_eq!(row.last_updated_at, thirty_seconds_ago);
}

async fn with_the_default_touch_interval_a_request_after_the_interval_writes(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let two_minutes_ago = now_seconds() - TimeDelta::minutes(2);
    app.set_session_times(&user.session_id, two_minutes_ago, two_minutes_ago)
        .await;

    // Act
    let before = now_micros();
    let response = app.status(&user.token).await;

    // Assert
    assert_eq!(response.status(), 200);
    let row = app.session_rows(&user.user_id).await.remove(0);
    assert!(
        row.last_updated_at >= before,
        "{} was not bumped to now",
        row.last_updated_at
    );
    assert_eq!(row.created_at, two_minutes_ago);
}

async fn a_login_deletes_the_users_expired_sessions(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let long_ago = now_seconds() - app.settings.session.idle_timeout - TimeDelta::hours(1);
    app.set_session_times(&user.session_id, long_ago, long_ago)
        .await;

    // Act
    let response = app.login(&user.email, &user.password).await;

    // Assert
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let rows = app.session_rows(&user.user_id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, body["session_id"].as_str().unwrap());
}

async fn every_authorized_request_slides_the_session_not_only_status(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| s.session.touch_interval = TimeDelta::zero()).await;
    let user = app.register_user().await;
    let an_hour_ago = now_seconds() - TimeDelta::hours(1);

    for (method, path, expected) in [
        (reqwest::Method::GET, "/auth/sessions", 200),
        // Authorized, even though the session it names does not exist.
        (
            reqwest::Method::DELETE,
            "/auth/sessions/00000000-0000-7000-8000-000000000000",
            404,
        ),
    ] {
        app.set_session_times(&user.session_id, an_hour_ago, an_hour_ago)
            .await;

        // Act
        let before = now_micros();
        let response = app
            .client
            .request(method, app.url(path))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap();

        // Assert
        assert_eq!(response.status(), expected, "{path}");
        let row = app.session_rows(&user.user_id).await.remove(0);
        assert!(
            row.last_updated_at >= before,
            "{path}: last_updated_at {} was not bumped",
            row.last_updated_at
        );
    }
}

async fn an_absolute_timeout_too_long_for_the_calendar_is_refused_at_start_up_or_never_breaks_a_request(
    backend: Backend,
) {
    // Arrange: an "effectively unlimited" absolute timeout, as the CLI
    // produces it for LATCHKEY_ABSOLUTE_TIMEOUT=18446744073709551615
    // (settings::to_delta caps what chrono cannot hold). Refusing it at
    // start-up is a fine answer; accepting it and then failing requests is not.
    let unlimited = to_delta(std::time::Duration::from_secs(u64::MAX));
    let mut probe = Settings::with_defaults(DatabaseUrl::Sqlite("unused.sqlite3".into()));
    probe.session.absolute_timeout = unlimited;
    if probe.validate().is_err() {
        return;
    }
    let app = spawn_app_with(backend, |s| s.session.absolute_timeout = unlimited).await;

    // Act
    let register = app
        .client
        .post(app.url("/auth/register"))
        .json(&serde_json::json!({ "email": "forever@example.com", "password": PASSWORD }))
        .send()
        .await;

    // Assert
    let register = register.expect("registration got no HTTP answer at all");
    assert_eq!(register.status(), 201);
    let body: Value = register.json().await.unwrap();
    // The idle deadline is the one that applies.
    assert_eq!(
        api_time(&body["expires_at"]),
        api_time(&body["user"]["created_at"]) + app.settings.session.idle_timeout
    );
    let token = body["token"].as_str().unwrap();
    let status = app
        .client
        .get(app.url("/auth/status"))
        .bearer_auth(token)
        .send()
        .await
        .expect("the status check got no HTTP answer at all");
    assert_eq!(status.status(), 200);
    let login = app
        .client
        .post(app.url("/auth/login"))
        .json(&serde_json::json!({ "email": "forever@example.com", "password": PASSWORD }))
        .send()
        .await
        .expect("the login got no HTTP answer at all");
    assert_eq!(login.status(), 200);
}
