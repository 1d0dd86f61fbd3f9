//! `/auth/verify`: forward authentication, as a proxy calls it.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, TestApp, assert_error, spawn_app};

crate::on_both_backends!(
    a_live_token_gets_an_empty_200_naming_the_caller,
    every_method_a_proxy_forwards_with_is_answered,
    the_check_also_answers_under_the_path_envoy_appends,
    a_bare_token_in_the_authorization_header_is_accepted,
    missing_bad_and_revoked_tokens_get_401_with_www_authenticate,
    the_admin_policy_refuses_non_admins_with_403,
    a_token_in_the_query_string_is_never_taken,
    a_header_over_8_kib_gets_431_in_the_json_error_shape,
);

async fn verify(
    app: &TestApp,
    method: Method,
    path: &str,
    auth: Option<&str>,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path));
    if let Some(auth) = auth {
        request = request.header("Authorization", auth);
    }
    request.send().await.expect("request sent")
}

async fn a_live_token_gets_an_empty_200_naming_the_caller(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    let response = verify(
        &app,
        Method::GET,
        "/auth/verify",
        Some(&format!("Bearer {}", user.token)),
    )
    .await;

    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["x-latchkey-user-id"], user.user_id.as_str());
    assert_eq!(headers["x-latchkey-email"], user.email.as_str());
    assert_eq!(headers["x-latchkey-admin"], "false");
    assert_eq!(headers["x-latchkey-session-id"], user.session_id.as_str());
    assert_eq!(response.text().await.unwrap(), "");
}

async fn every_method_a_proxy_forwards_with_is_answered(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let auth = format!("Bearer {}", user.token);

    for method in [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ] {
        let response = verify(&app, method.clone(), "/auth/verify", Some(&auth)).await;
        assert_eq!(response.status(), 200, "{method}");
        assert_eq!(
            response.headers()["x-latchkey-user-id"],
            user.user_id.as_str()
        );
        let refused = verify(&app, method.clone(), "/auth/verify", None).await;
        assert_eq!(refused.status(), 401, "{method}");
    }
}

async fn a_bare_token_in_the_authorization_header_is_accepted(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    let response = verify(&app, Method::GET, "/auth/verify", Some(&user.token)).await;
    assert_eq!(response.status(), 200);
    let status = verify(&app, Method::GET, "/auth/status", Some(&user.token)).await;
    assert_eq!(status.status(), 200, "every protected route takes it alike");
    // Anything else without a scheme is still malformed.
    let other = verify(&app, Method::GET, "/auth/verify", Some("not-a-token")).await;
    assert_error(other, 401, "invalid_token").await;
}

async fn missing_bad_and_revoked_tokens_get_401_with_www_authenticate(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let revoked = app.register_user().await;
    assert_eq!(
        app.post_with_token("/auth/logout", &revoked.token)
            .await
            .status(),
        204
    );
    // The last character changed (to one it is not), so the checksum fails.
    let last = if user.token.ends_with('A') { 'B' } else { 'A' };
    let forged = format!("{}{last}", &user.token[..user.token.len() - 1]);

    for (auth, code) in [
        (None, "missing_token"),
        (Some("Bearer".to_owned()), "invalid_token"),
        (Some(format!("Bearer {forged}")), "invalid_token"),
        (Some(format!("Bearer {}", revoked.token)), "invalid_token"),
    ] {
        let response = verify(&app, Method::GET, "/auth/verify", auth.as_deref()).await;
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.starts_with("Bearer realm=\"latchkey\""),
            "{challenge}"
        );
        assert!(response.headers().get("x-latchkey-user-id").is_none());
        assert_error(response, 401, code).await;
    }
}

async fn the_admin_policy_refuses_non_admins_with_403(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let admin = app.register_admin().await;

    let refused = verify(
        &app,
        Method::GET,
        "/auth/verify?admin=true",
        Some(&format!("Bearer {}", user.token)),
    )
    .await;
    assert!(refused.headers().get("x-latchkey-user-id").is_none());
    assert_error(refused, 403, "forbidden").await;
    let allowed = verify(
        &app,
        Method::GET,
        "/auth/verify?admin=true",
        Some(&format!("Bearer {}", admin.token)),
    )
    .await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.headers()["x-latchkey-admin"], "true");
    let malformed = verify(
        &app,
        Method::GET,
        "/auth/verify?admin=perhaps",
        Some(&format!("Bearer {}", admin.token)),
    )
    .await;
    assert_error(malformed, 400, "bad_request").await;
}

async fn a_token_in_the_query_string_is_never_taken(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    for path in [
        format!("/auth/verify?access_token={}", user.token),
        format!("/auth/verify?token={}", user.token),
    ] {
        let response = verify(&app, Method::GET, &path, None).await;
        assert_error(response, 401, "missing_token").await;
    }
}

async fn a_header_over_8_kib_gets_431_in_the_json_error_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;

    let huge = "a".repeat(64 * 1024);
    let response = app
        .client
        .get(app.url("/auth/status"))
        .bearer_auth(&user.token)
        .header("User-Agent", &huge)
        .send()
        .await
        .unwrap();
    assert_error(response, 431, "request_header_too_large").await;
    let just_over = app
        .client
        .post(app.url("/auth/login"))
        .header("X-Padding", "b".repeat(8 * 1024))
        .json(&json!({ "email": user.email, "password": user.password }))
        .send()
        .await
        .unwrap();
    assert_error(just_over, 431, "request_header_too_large").await;
    let within = app
        .client
        .get(app.url("/auth/status"))
        .bearer_auth(&user.token)
        .header("User-Agent", "c".repeat(8 * 1024 - "user-agent".len()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        within.status(),
        200,
        "8 KiB, name included, is still accepted"
    );
}

async fn the_check_also_answers_under_the_path_envoy_appends(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let auth = format!("Bearer {}", user.token);

    let response = verify(&app, Method::DELETE, "/auth/verify/books/42", Some(&auth)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-latchkey-user-id"],
        user.user_id.as_str()
    );
    let admin_only = verify(
        &app,
        Method::GET,
        "/auth/verify/admin/x?admin=true",
        Some(&auth),
    )
    .await;
    assert_error(admin_only, 403, "forbidden").await;
    let anonymous = verify(&app, Method::GET, "/auth/verify/books", None).await;
    assert_error(anonymous, 401, "missing_token").await;
}
