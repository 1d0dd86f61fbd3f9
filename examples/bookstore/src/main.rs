//! `bookstore`: reads the environment (see `Config`) and serves until
//! SIGINT/SIGTERM.

use bookstore::Config;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let config = Config::from_env()?;
    actix_web::rt::System::new().block_on(async move {
        let (_port, server) = bookstore::build(config).await?;
        server.await?;
        Ok(())
    })
}
