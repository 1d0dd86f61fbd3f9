//! The OpenAPI 3 document, generated from the handlers' annotations.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    account, admin, auth, health, introspect, metrics, password, sessions, verify,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "latchkey", description = "An opaque-token session service."),
    paths(
        health::healthz, health::readyz, openapi_json, metrics::metrics,
        auth::register, auth::login, auth::status, sessions::logout, sessions::logout_all,
        password::change_password, password::forgot, password::reset,
        account::verify_email, account::resend_verification, account::delete_account, account::own_events,
        sessions::list, sessions::revoke, introspect::introspect, verify::verify, verify::verify_under_path,
        admin::list_users, admin::get_user, admin::update_user, admin::delete_user,
        admin::list_user_sessions, admin::revoke_user_sessions,
        admin::send_password_reset, admin::user_events,
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Register, log in, check and end sessions"),
        (name = "sessions", description = "The caller's sessions"),
        (name = "password", description = "Change a password, or recover a forgotten one with a mailed code"),
        (name = "account", description = "Email verification, account deletion and the security event trail"),
        (name = "introspection", description = "Token checks for backends"),
        (name = "forward-auth", description = "Token checks for reverse proxies in front of other services"),
        (name = "admin", description = "User and session management for admins"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
        components.add_security_scheme(
            "service_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .expect("the OpenAPI document serialises")
    })
}

/// This API's OpenAPI 3 description.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json")))]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}
