use actix_web::{HttpResponse, web};

use crate::state::AppState;

/// Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.metrics.render(&state.pool, &state.hasher)
}
