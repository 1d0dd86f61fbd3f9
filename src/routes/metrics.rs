use actix_web::{HttpResponse, web};

use crate::state::AppState;

/// Metrics in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.metrics.render(
        &state.pool,
        state.db_threads.queued() + state.checks.pending(),
        &state.hasher,
    )
}
