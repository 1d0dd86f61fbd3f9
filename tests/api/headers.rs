//! Every answer carries the restrictive response headers, errors included.

use crate::helpers::{Backend, PASSWORD, spawn_app};
use crate::on_both_backends;

on_both_backends!(every_kind_of_response_carries_the_restrictive_headers);

const EXPECTED: &[(&str, &str)] = &[
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
];

async fn every_kind_of_response_carries_the_restrictive_headers(backend: Backend) {
    let app = spawn_app(backend).await;
    let responses = vec![
        (
            "register 201",
            app.register("headers@example.com", PASSWORD).await,
        ),
        (
            "healthz 200",
            app.client.get(app.url("/healthz")).send().await.unwrap(),
        ),
        (
            "status 401",
            app.client
                .get(app.url("/auth/status"))
                .send()
                .await
                .unwrap(),
        ),
        (
            "unknown route 404",
            app.client.get(app.url("/nowhere")).send().await.unwrap(),
        ),
        (
            "wrong method 405",
            app.client.delete(app.url("/healthz")).send().await.unwrap(),
        ),
    ];

    for (what, response) in responses {
        for (name, value) in EXPECTED {
            assert_eq!(
                response.headers().get(*name).and_then(|v| v.to_str().ok()),
                Some(*value),
                "{what}: {name}"
            );
        }
    }
}
