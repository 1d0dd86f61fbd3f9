use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::db;
use crate::error::ApiError;
use crate::state::AppState;

/// The process is up. Says nothing about the database.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", content_type = "application/json")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// The service can do its job: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", content_type = "application/json"),
        (status = 503, description = "The database does not answer", body = crate::error::ErrorBody),
    ))]
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
