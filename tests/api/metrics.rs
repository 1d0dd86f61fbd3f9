//! `GET /metrics`: Prometheus text, on the API's port or apart.

use crate::helpers::{Backend, assert_error, metric, spawn_app, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    metrics_count_logins_sessions_and_requests_by_route_and_status,
    request_metrics_are_labelled_by_route_pattern_never_by_raw_path,
    with_a_metrics_address_metrics_are_served_only_there,
    revoked_sessions_are_counted_by_logout_and_admin_revocation,
);

fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn metrics_count_logins_sessions_and_requests_by_route_and_status(backend: Backend) {
    // Arrange: one registration, one good login, one bad login.
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    assert_eq!(app.login(&user.email, &user.password).await.status(), 200);
    assert_eq!(
        app.login(&user.email, "a wrong password, long enough")
            .await
            .status(),
        401
    );

    // Act
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();

    // Assert
    assert_eq!(response.status(), 200);
    let content_type = content_type(&response);
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.unwrap();
    let value = |name: &str, labels: &[(&str, &str)]| {
        metric(&text, name, labels).unwrap_or_else(|| panic!("no {name}{labels:?} in:\n{text}"))
    };
    assert_eq!(value("latchkey_logins_total", &[("result", "ok")]), 1.0);
    assert_eq!(value("latchkey_logins_total", &[("result", "failed")]), 1.0);
    assert_eq!(value("latchkey_sessions_created_total", &[]), 2.0);
    let login = |status| {
        value(
            "latchkey_http_requests_total",
            &[
                ("endpoint", "/auth/login"),
                ("method", "POST"),
                ("status", status),
            ],
        )
    };
    assert_eq!(login("200"), 1.0);
    assert_eq!(login("401"), 1.0);
    assert_eq!(
        value(
            "latchkey_http_requests_total",
            &[
                ("endpoint", "/auth/register"),
                ("method", "POST"),
                ("status", "201"),
            ],
        ),
        1.0
    );
    let idle = value("latchkey_db_pool_connections", &[("state", "idle")]);
    let in_use = value("latchkey_db_pool_connections", &[("state", "in_use")]);
    assert!(
        idle >= 0.0 && in_use >= 0.0 && idle + in_use >= 1.0,
        "{text}"
    );
    assert_eq!(value("latchkey_bcrypt_queue_depth", &[]), 0.0);
    assert_eq!(value("latchkey_db_queue_depth", &[]), 0.0);
    assert!(
        text.contains("# TYPE latchkey_logins_total counter"),
        "{text}"
    );
    assert!(
        text.contains("latchkey_bcrypt_wait_seconds_bucket"),
        "{text}"
    );
    for secret in [user.token.as_str(), user.password.as_str(), &user.email] {
        assert!(!text.contains(secret), "{secret} is in the metrics");
    }
}

async fn request_metrics_are_labelled_by_route_pattern_never_by_raw_path(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let second = app.login_token(&user.email, &user.password).await;
    let response = app
        .delete_with_token(&format!("/auth/sessions/{}", user.session_id), &second)
        .await;
    assert_eq!(response.status(), 204);
    let unknown = uuid::Uuid::new_v4().simple().to_string();
    let response = app
        .client
        .get(app.url(&format!("/no-such-route/{unknown}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // Act
    let text = app.metrics_text().await;

    // Assert
    assert_eq!(
        metric(
            &text,
            "latchkey_http_requests_total",
            &[
                ("endpoint", "/auth/sessions/{id}"),
                ("method", "DELETE"),
                ("status", "204"),
            ],
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        !text.contains(&user.session_id),
        "a raw id is a label:\n{text}"
    );
    assert!(!text.contains(&unknown), "a raw path is a label:\n{text}");
    assert!(!text.contains(&user.user_id), "{text}");
}

async fn with_a_metrics_address_metrics_are_served_only_there(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| {
        s.metrics_bind = Some("127.0.0.1:0".into());
    })
    .await;
    let metrics_address = app
        .metrics_address
        .clone()
        .expect("a separate metrics listener");
    assert_ne!(metrics_address, app.address);
    let user = app.register_user().await;
    assert_eq!(app.login(&user.email, &user.password).await.status(), 200);

    // Act
    let on_api = app.client.get(app.url("/metrics")).send().await.unwrap();
    let apart = app
        .client
        .get(format!("{metrics_address}/metrics"))
        .send()
        .await
        .unwrap();
    let elsewhere = app
        .client
        .get(format!("{metrics_address}/auth/status"))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();

    // Assert
    assert_error(on_api, 404, "not_found").await;
    assert_eq!(apart.status(), 200);
    let content_type = content_type(&apart);
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = apart.text().await.unwrap();
    // One registry: the API's traffic shows on the metrics listener.
    assert_eq!(
        metric(&text, "latchkey_logins_total", &[("result", "ok")]),
        Some(1.0),
        "{text}"
    );
    assert_error(elsewhere, 404, "not_found").await;
    // The API itself still works.
    assert_eq!(app.status(&user.token).await.status(), 200);
}

async fn revoked_sessions_are_counted_by_logout_and_admin_revocation(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let user = app.register_user().await;
    app.login_token(&user.email, &user.password).await;
    let revoked = |text: &str| metric(text, "latchkey_sessions_revoked_total", &[]);
    assert_eq!(revoked(&app.metrics_text().await), Some(0.0));

    // Act
    let response = app
        .delete_with_token(
            &format!("/admin/users/{}/sessions", user.user_id),
            &admin.token,
        )
        .await;
    assert_eq!(response.status(), 204);
    let after_admin = revoked(&app.metrics_text().await);
    let response = app.post_with_token("/auth/logout", &admin.token).await;
    assert_eq!(response.status(), 204);
    let after_logout = revoked(&app.metrics_text().await);

    // Assert
    assert_eq!(after_admin, Some(2.0));
    assert_eq!(after_logout, Some(3.0));
    assert_eq!(app.count_sessions().await, 0);
}
