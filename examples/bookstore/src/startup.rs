//! Wiring: a config in, a bound listener and a server out.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use latchkey_client::Client;

use crate::config::Config;
use crate::{db, error, routes};

/// Books bodies are small.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// Creates (or migrates) the database, binds the listener and returns the
/// port it got (`BOOKSTORE_BIND` may ask for port 0) and the server, which
/// serves once awaited.
pub async fn build(config: Config) -> anyhow::Result<(u16, Server)> {
    let latchkey = Client::builder(&config.latchkey_url, config.service_key.as_str())
        .realm("bookstore")
        .build()
        .context("invalid latchkey settings")?;
    let pool = db::build_pool(&config.database);
    let migrate = pool.clone();
    web::block(move || db::run_migrations(&migrate))
        .await
        .context("the migration task failed")??;

    let listener = TcpListener::bind(&config.bind)
        .with_context(|| format!("failed to bind {}", config.bind))?;
    let port = listener.local_addr()?.port();
    tracing::info!(
        address = %listener.local_addr()?,
        database = %config.database.display(),
        latchkey = %config.latchkey_url,
        "bookstore is listening"
    );
    let latchkey = web::Data::new(latchkey);
    let pool = web::Data::new(pool);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(latchkey.clone())
            .app_data(pool.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(MAX_BODY_BYTES)
                    .error_handler(error::json_error),
            )
            .configure(routes::configure)
            .default_service(web::to(routes::not_found))
    })
    .listen(listener)?
    .run();
    Ok((port, server))
}
