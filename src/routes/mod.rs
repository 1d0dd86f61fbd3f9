//! The HTTP API: one file per resource. [`endpoints`] is the route table;
//! the server, the OpenAPI coverage test and the 405 answers all read it.

pub mod account;
pub mod admin;
pub mod auth;
mod client;
pub mod health;
pub mod introspect;
pub mod metrics;
pub mod openapi;
pub mod password;
pub mod sessions;
pub mod verify;

use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, Handler, Responder, ResponseError as _, Route, web};

use crate::error::ApiError;

/// One path and the methods it answers.
pub struct Endpoint {
    pub path: &'static str,
    routes: Vec<(Method, Route)>,
}

impl Endpoint {
    fn new(path: &'static str) -> Self {
        Self {
            path,
            routes: Vec::new(),
        }
    }

    fn on<F, Args>(mut self, method: Method, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let route = web::route().method(method.clone()).to(handler);
        self.routes.push((method, route));
        self
    }

    /// The path as the OpenAPI document writes it (a tail segment
    /// `{path}*` is the parameter `{path}` there).
    pub fn documented_path(&self) -> &'static str {
        self.path.strip_suffix('*').unwrap_or(self.path)
    }

    pub fn methods(&self) -> impl Iterator<Item = &Method> {
        self.routes.iter().map(|(method, _)| method)
    }
}

/// Every route of the API. `metrics` says whether `/metrics` is served on
/// the API's listener (it is not when `LATCHKEY_METRICS_BIND` is set).
pub fn endpoints(metrics: bool) -> Vec<Endpoint> {
    let mut table = vec![
        Endpoint::new("/healthz").on(Method::GET, health::healthz),
        Endpoint::new("/readyz").on(Method::GET, health::readyz),
        Endpoint::new("/openapi.json").on(Method::GET, openapi::openapi_json),
        Endpoint::new("/auth/register").on(Method::POST, auth::register),
        Endpoint::new("/auth/login").on(Method::POST, auth::login),
        Endpoint::new("/auth/status").on(Method::GET, auth::status),
        Endpoint::new("/auth/logout").on(Method::POST, sessions::logout),
        Endpoint::new("/auth/logout-all").on(Method::POST, sessions::logout_all),
        Endpoint::new("/auth/password").on(Method::PUT, password::change_password),
        Endpoint::new("/auth/password/forgot").on(Method::POST, password::forgot),
        Endpoint::new("/auth/password/reset").on(Method::POST, password::reset),
        Endpoint::new("/auth/email/verify").on(Method::POST, account::verify_email),
        Endpoint::new("/auth/email/verify/resend").on(Method::POST, account::resend_verification),
        Endpoint::new("/auth/account").on(Method::DELETE, account::delete_account),
        Endpoint::new("/auth/events").on(Method::GET, account::own_events),
        Endpoint::new("/auth/sessions").on(Method::GET, sessions::list),
        Endpoint::new("/auth/sessions/{id}").on(Method::DELETE, sessions::revoke),
        Endpoint::new("/auth/introspect").on(Method::POST, introspect::introspect),
        every_method(Endpoint::new("/auth/verify"), verify::verify),
        every_method(
            Endpoint::new("/auth/verify/{path}*"),
            verify::verify_under_path,
        ),
        Endpoint::new("/admin/users").on(Method::GET, admin::list_users),
        Endpoint::new("/admin/users/{id}")
            .on(Method::GET, admin::get_user)
            .on(Method::PATCH, admin::update_user)
            .on(Method::DELETE, admin::delete_user),
        Endpoint::new("/admin/users/{id}/sessions")
            .on(Method::GET, admin::list_user_sessions)
            .on(Method::DELETE, admin::revoke_user_sessions),
        Endpoint::new("/admin/users/{id}/password-reset")
            .on(Method::POST, admin::send_password_reset),
        Endpoint::new("/admin/users/{id}/events").on(Method::GET, admin::user_events),
    ];
    if metrics {
        table.push(metrics_endpoint());
    }
    table
}

/// A resource answering every method a proxy may forward with.
fn every_method<F, Args>(endpoint: Endpoint, handler: F) -> Endpoint
where
    F: Handler<Args> + Clone,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ]
    .into_iter()
    .fold(endpoint, |endpoint, method| {
        endpoint.on(method, handler.clone())
    })
}

fn metrics_endpoint() -> Endpoint {
    Endpoint::new("/metrics").on(Method::GET, metrics::metrics)
}

/// Registers the API's routes.
pub fn configure(cfg: &mut web::ServiceConfig, metrics: bool) {
    for endpoint in endpoints(metrics) {
        register(cfg, endpoint);
    }
}

/// Registers `/metrics` alone, for the separate metrics listener.
pub fn configure_metrics(cfg: &mut web::ServiceConfig) {
    register(cfg, metrics_endpoint());
}

/// A resource answers 405 (not the app-wide 404) to methods it lacks,
/// naming the ones it has in `Allow` (RFC 9110 §15.5.6).
fn register(cfg: &mut web::ServiceConfig, endpoint: Endpoint) {
    let allow = endpoint
        .methods()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let mut resource = web::resource(endpoint.path).default_service(web::to(move || {
        let mut response = ApiError::MethodNotAllowed.error_response();
        if let Ok(value) = HeaderValue::from_str(&allow) {
            response.headers_mut().insert(header::ALLOW, value);
        }
        async move { response }
    }));
    for (_, route) in endpoint.routes {
        resource = resource.route(route);
    }
    cfg.service(resource);
}
