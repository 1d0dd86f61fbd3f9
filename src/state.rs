//! What every handler can reach: the pool, the password hasher, the settings.

use std::sync::Arc;

use actix_web::web;

use crate::db::{Connection, Pool};
use crate::error::ApiError;
use crate::hashing::PasswordHasher;
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::throttle::Throttle;

#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub hasher: PasswordHasher,
    pub settings: Arc<Settings>,
    pub metrics: Metrics,
    pub throttle: Arc<Throttle>,
}

impl AppState {
    /// Runs `work` with a pooled connection on a blocking thread: neither
    /// the pool checkout nor the query may stall an async worker.
    pub async fn db<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, ApiError> + Send + 'static,
    {
        let pool = self.pool.clone();
        web::block(move || {
            let mut conn = pool.get()?;
            let result = work(&mut conn);
            // A connection whose server went away would fail again for the
            // next request: have the pool close it instead.
            if matches!(result, Err(ApiError::Unavailable(_))) {
                conn.mark_lost();
            }
            result
        })
        .await?
    }
}
