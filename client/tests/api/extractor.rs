//! The actix-web extractors, in an app whose handlers report what they got.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{App, HttpResponse, HttpServer, web};
use latchkey_client::{Client, LatchkeyAdmin, LatchkeyUser};
use reqwest::header::{AUTHORIZATION, CACHE_CONTROL, HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE};
use serde_json::{Value, json};

use crate::harness::{Backend, Latchkey, SERVICE_KEY, closed_address};
use crate::on_both_backends;

on_both_backends!(
    a_live_token_reaches_the_handler_with_its_identity,
    an_unknown_or_logged_out_token_is_401_invalid_token_with_a_challenge,
    a_user_without_the_admin_flag_is_403_on_an_admin_route_and_an_admin_passes,
    a_refused_service_key_is_503_never_the_handler,
);

/// How many times a handler ran.
#[derive(Clone, Default)]
struct Runs(Arc<AtomicUsize>);

impl Runs {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

async fn me(LatchkeyUser(user): LatchkeyUser, runs: web::Data<Runs>) -> HttpResponse {
    runs.0.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Ok().json(json!({
        "user_id": user.user_id,
        "email": user.email,
        "admin": user.admin,
        "session_id": user.session_id,
        "expires_at": user.expires_at.timestamp(),
        "issued_at": user.issued_at.timestamp(),
    }))
}

async fn admin_only(LatchkeyAdmin(admin): LatchkeyAdmin, runs: web::Data<Runs>) -> HttpResponse {
    runs.0.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Ok().json(json!({ "admin": admin.email }))
}

/// A server with `GET /me` (any user) and `GET /admin` (admins), using the
/// client when one is given, on a free port.
struct TestServer {
    address: String,
    runs: Runs,
    http: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn app(client: Option<Client>) -> TestServer {
    let runs = Runs::default();
    let app_runs = runs.clone();
    let server = HttpServer::new(move || {
        let app = App::new()
            .app_data(web::Data::new(app_runs.clone()))
            .route("/me", web::get().to(me))
            .route("/admin", web::get().to(admin_only));
        match &client {
            Some(client) => app.app_data(web::Data::new(client.clone())),
            None => app,
        }
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .expect("a free port");
    let address = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    TestServer {
        address,
        runs,
        http: reqwest::Client::new(),
        handle,
    }
}

fn client_for(address: &str, key: &str) -> Client {
    Client::builder(address, key)
        .realm("books")
        .build()
        .expect("a client")
}

async fn get(
    server: &TestServer,
    path: &str,
    authorization: Option<&str>,
) -> (u16, HeaderMap, Value) {
    let mut request = server.http.get(format!("{}{path}", server.address));
    if let Some(value) = authorization {
        request = request.header(AUTHORIZATION, value);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("a body");
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    (status, headers, body)
}

fn assert_error_body(body: &Value, code: &str) {
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{body}");
}

fn challenge(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().expect("ASCII"))
}

async fn a_live_token_reaches_the_handler_with_its_identity(backend: Backend) {
    // Arrange
    let latchkey = Latchkey::start(backend).await;
    let user = latchkey.register_user().await;
    let server = app(Some(client_for(&latchkey.address, SERVICE_KEY))).await;
    let forms = [
        format!("Bearer {}", user.token),
        format!("bearer {}", user.token),
        format!("BEARER   {}  ", user.token),
        // A bare latchkey token, with no scheme.
        user.token.clone(),
    ];

    for authorization in &forms {
        // Act
        let (status, _, body) = get(&server, "/me", Some(authorization)).await;

        // Assert
        assert_eq!(status, 200, "{authorization}: {body}");
        let (iat, exp) = latchkey.session_claims(&user.session_id).await;
        assert_eq!(
            body,
            json!({
                "user_id": user.user_id,
                "email": user.email,
                "admin": false,
                "session_id": user.session_id,
                "expires_at": exp,
                "issued_at": iat,
            })
        );
    }
    assert_eq!(server.runs.count(), forms.len());
}

async fn an_unknown_or_logged_out_token_is_401_invalid_token_with_a_challenge(backend: Backend) {
    // Arrange
    let latchkey = Latchkey::start(backend).await;
    let user = latchkey.register_user().await;
    latchkey.logout(&user.token).await;
    let server = app(Some(client_for(&latchkey.address, SERVICE_KEY))).await;
    let logged_out = format!("Bearer {}", user.token);
    let unknown = format!("Bearer lk_{}", "A".repeat(48));

    for authorization in [
        logged_out.as_str(),
        unknown.as_str(),
        "Bearer garbage",
        "Basic dXNlcjpwYXNz",
        "garbage",
    ] {
        // Act
        let (status, headers, body) = get(&server, "/me", Some(authorization)).await;

        // Assert
        assert_eq!(status, 401, "{authorization}: {body}");
        assert_error_body(&body, "invalid_token");
        assert_eq!(
            challenge(&headers),
            Some("Bearer realm=\"books\", error=\"invalid_token\""),
            "{authorization}"
        );
    }
    assert_eq!(server.runs.count(), 0);
}

async fn a_user_without_the_admin_flag_is_403_on_an_admin_route_and_an_admin_passes(
    backend: Backend,
) {
    // Arrange
    let latchkey = Latchkey::start(backend).await;
    let user = latchkey.register_user().await;
    let admin = latchkey.register_admin().await;
    let server = app(Some(client_for(&latchkey.address, SERVICE_KEY))).await;

    // Act
    let (user_status, user_headers, user_body) =
        get(&server, "/admin", Some(&format!("Bearer {}", user.token))).await;
    let (admin_status, _, admin_body) =
        get(&server, "/admin", Some(&format!("Bearer {}", admin.token))).await;

    // Assert
    assert_eq!(user_status, 403, "{user_body}");
    assert_error_body(&user_body, "forbidden");
    assert_eq!(challenge(&user_headers), None);
    assert_eq!(admin_status, 200, "{admin_body}");
    assert_eq!(admin_body, json!({ "admin": admin.email }));
    assert_eq!(
        server.runs.count(),
        1,
        "only the admin's request ran the handler"
    );
}

async fn a_refused_service_key_is_503_never_the_handler(backend: Backend) {
    // Arrange
    let latchkey = Latchkey::start(backend).await;
    let user = latchkey.register_user().await;
    let wrong_key = "service-key-wrong-wrong-wrong-wrong-wrong-wrong";
    let server = app(Some(client_for(&latchkey.address, wrong_key))).await;

    // Act
    let (status, headers, body) =
        get(&server, "/me", Some(&format!("Bearer {}", user.token))).await;

    // Assert
    assert_eq!(status, 503, "{body}");
    assert_error_body(&body, "service_unavailable");
    assert_eq!(
        headers.get(RETRY_AFTER).map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    assert!(!body.to_string().contains(wrong_key), "{body}");
    assert_eq!(server.runs.count(), 0);
}

#[tokio::test]
async fn no_token_is_401_missing_token_with_a_challenge_even_when_latchkey_is_down() {
    // Arrange
    let server = app(Some(client_for(&closed_address(), SERVICE_KEY))).await;

    for (path, authorization) in [
        ("/me", None),
        ("/me", Some("Bearer")),
        ("/me", Some("Bearer   ")),
        ("/admin", None),
    ] {
        // Act
        let (status, headers, body) = get(&server, path, authorization).await;

        // Assert
        assert_eq!(status, 401, "{path} {authorization:?}: {body}");
        assert_error_body(&body, "missing_token");
        assert_eq!(challenge(&headers), Some("Bearer realm=\"books\""));
        assert_eq!(
            headers.get(CACHE_CONTROL).map(|v| v.as_bytes()),
            Some(&b"no-store"[..])
        );
    }
    assert_eq!(server.runs.count(), 0);
}

#[tokio::test]
async fn latchkey_down_is_503_with_retry_after_never_the_handler() {
    // Arrange
    let server = app(Some(client_for(&closed_address(), SERVICE_KEY))).await;
    let token = format!("Bearer lk_{}", "A".repeat(48));

    for path in ["/me", "/admin"] {
        // Act
        let (status, headers, body) = get(&server, path, Some(&token)).await;

        // Assert
        assert_eq!(status, 503, "{path}: {body}");
        assert_error_body(&body, "service_unavailable");
        assert_eq!(
            headers.get(RETRY_AFTER).map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
        assert_eq!(challenge(&headers), None);
    }
    assert_eq!(server.runs.count(), 0);
}

#[tokio::test]
async fn without_a_client_in_the_app_data_it_is_500_never_the_handler() {
    // Arrange
    let server = app(None).await;

    // Act
    let (status, _, body) = get(&server, "/me", Some("Bearer lk_anything")).await;

    // Assert
    assert_eq!(status, 500, "{body}");
    assert_error_body(&body, "internal_error");
    assert_eq!(server.runs.count(), 0);
}
