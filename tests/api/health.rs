use serde_json::Value;

use crate::helpers::{Backend, spawn_app};
use crate::on_both_backends;

on_both_backends!(healthz_and_readyz_answer_200);

async fn healthz_and_readyz_answer_200(backend: Backend) {
    let app = spawn_app(backend).await;

    for path in ["/healthz", "/readyz"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(body["status"].is_string(), "{path}: {body}");
    }
}
