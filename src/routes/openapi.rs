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
        let mut document =
            serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises");
        declare_common_answers(&mut document);
        document.to_string()
    })
}

/// The answers that come from the framework and the middleware rather than
/// from a handler, declared on every operation they can reach, so that the
/// document lists every status a route can return (a fuzzer checks it,
/// `scripts/openapi-fuzz.sh`): 431 everywhere (the header bound), 401 where
/// a token or key is needed, 400/413/415 where a body is read, 400 where a
/// query or path parameter is parsed, 503 wherever the database is asked.
fn declare_common_answers(document: &mut serde_json::Value) {
    let Some(paths) = document
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        let uses_database = !matches!(path.as_str(), "/healthz" | "/openapi.json" | "/metrics");
        for operation in item
            .values_mut()
            .filter_map(serde_json::Value::as_object_mut)
        {
            let secured = operation
                .get("security")
                .and_then(serde_json::Value::as_array)
                .is_some_and(|requirements| {
                    requirements
                        .iter()
                        .any(|r| r.as_object().is_some_and(|r| !r.is_empty()))
                });
            let has_body = operation.contains_key("requestBody");
            let has_parameters = operation
                .get("parameters")
                .and_then(serde_json::Value::as_array)
                .is_some_and(|p| !p.is_empty());
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(serde_json::Value::as_object_mut)
            else {
                continue;
            };
            let mut declare = |status: &str, description: &str| {
                responses
                    .entry(status)
                    .or_insert_with(|| error_response(description));
            };
            declare("431", "A request header is larger than 8 KiB");
            if secured {
                declare("401", "No valid token or key");
            }
            if has_body {
                declare("400", "Malformed JSON or missing fields");
                declare("413", "The body is larger than LATCHKEY_MAX_BODY_BYTES");
                declare("415", "The body is not JSON");
            }
            if has_parameters {
                declare("400", "A malformed query or path parameter");
            }
            if uses_database {
                declare("503", "The database is unreachable; see Retry-After");
            }
        }
    }
}

fn error_response(description: &str) -> serde_json::Value {
    serde_json::json!({
        "description": description,
        "content": {
            "application/json": {
                "schema": { "$ref": "#/components/schemas/ErrorBody" }
            }
        }
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
