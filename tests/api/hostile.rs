//! Hostile input over a raw socket: each gets a clear 4xx and the service
//! stays healthy.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use crate::helpers::{Backend, TestApp, spawn_app, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    a_non_utf8_authorization_header_is_a_malformed_token,
    an_over_long_authorization_header_is_refused,
    deeply_nested_json_is_a_bad_request,
    a_client_that_never_finishes_its_headers_is_cut_off,
);

/// Sends raw bytes, reads the whole answer (the requests ask to close).
fn exchange(app: &TestApp, request: &[u8]) -> String {
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

async fn still_healthy(app: &TestApp) {
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

async fn a_non_utf8_authorization_header_is_a_malformed_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let request = b"GET /auth/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\xfd\r\nConnection: close\r\n\r\n";

    let answer = tokio::task::block_in_place(|| exchange(&app, request));

    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("error=\"invalid_request\""), "{answer}");
    assert!(answer.contains("\"error\":\"invalid_token\""), "{answer}");
    still_healthy(&app).await;
}

async fn an_over_long_authorization_header_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut request =
        b"GET /auth/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer lk_"
            .to_vec();
    request.extend(std::iter::repeat_n(b'A', 20_000));
    request.extend_from_slice(b"\r\n\r\n");

    let answer = tokio::task::block_in_place(|| exchange(&app, &request));

    // Either the HTTP layer refuses the head, or the token is refused: a
    // 4xx, never a 5xx or a dropped connection.
    let status: u16 = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    assert!((400..500).contains(&status), "{answer}");
    still_healthy(&app).await;
}

async fn deeply_nested_json_is_a_bad_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));

    let response = app
        .client
        .post(app.url("/auth/login"))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "bad_request");
    still_healthy(&app).await;
}

async fn a_client_that_never_finishes_its_headers_is_cut_off(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.client_timeout = Duration::from_secs(1)).await;

    // A request head that never ends (no blank line).
    let answer =
        tokio::task::block_in_place(|| exchange(&app, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"));

    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    still_healthy(&app).await;
}
