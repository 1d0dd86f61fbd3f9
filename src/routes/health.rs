use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::db;
use crate::error::ApiError;
use crate::state::AppState;

/// The process is up. Says nothing about the database.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// The service can do its job: the database answers.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state
        .db(|conn| {
            db::ping(conn).map_err(|e| {
                ApiError::Unavailable(anyhow::Error::new(e).context("database ping failed"))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ready" })))
}
