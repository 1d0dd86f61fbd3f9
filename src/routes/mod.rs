//! The HTTP API: one file per resource. `configure` is the route table.

pub mod admin;
pub mod auth;
pub mod health;
pub mod introspect;
pub mod metrics;
pub mod sessions;

use actix_web::{Resource, web};

use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(endpoint("/healthz").route(web::get().to(health::healthz)))
        .service(endpoint("/readyz").route(web::get().to(health::readyz)))
        .service(endpoint("/auth/register").route(web::post().to(auth::register)))
        .service(endpoint("/auth/login").route(web::post().to(auth::login)))
        .service(endpoint("/auth/status").route(web::get().to(auth::status)))
        .service(endpoint("/auth/logout").route(web::post().to(auth::logout)))
        .service(endpoint("/auth/logout-all").route(web::post().to(auth::logout_all)))
        .service(endpoint("/auth/password").route(web::put().to(auth::change_password)))
        .service(endpoint("/auth/sessions").route(web::get().to(sessions::list)))
        .service(endpoint("/auth/sessions/{id}").route(web::delete().to(sessions::revoke)))
        .service(endpoint("/auth/introspect").route(web::post().to(introspect::introspect)))
        .service(endpoint("/admin/users").route(web::get().to(admin::list_users)))
        .service(
            endpoint("/admin/users/{id}")
                .route(web::get().to(admin::get_user))
                .route(web::patch().to(admin::set_admin))
                .route(web::delete().to(admin::delete_user)),
        )
        .service(
            endpoint("/admin/users/{id}/sessions")
                .route(web::get().to(admin::list_user_sessions))
                .route(web::delete().to(admin::revoke_user_sessions)),
        );
}

/// `GET /metrics`, on the API's listener or on `LATCHKEY_METRICS_BIND`.
pub fn configure_metrics(cfg: &mut web::ServiceConfig) {
    cfg.service(endpoint("/metrics").route(web::get().to(metrics::metrics)));
}

/// A resource that answers 405 (not the app-wide 404) to other methods.
fn endpoint(path: &str) -> Resource {
    web::resource(path).default_service(web::to(|| async {
        Err::<(), _>(ApiError::MethodNotAllowed)
    }))
}
