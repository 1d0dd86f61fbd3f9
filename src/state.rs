//! What every handler can reach: the pool, the password hasher, the settings.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use anyhow::anyhow;
use tokio::sync::Semaphore;

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
    /// One permit per pooled connection: see [`AppState::db`].
    pub db_slots: DbSlots,
}

/// Admission to the database: as many permits as the pool has connections,
/// taken on the async side before a blocking thread is involved.
///
/// Without it, every request in flight gets its own blocking thread, and
/// those threads queue on the pool's condition variable; with 64 clients and
/// 16 connections, the futex wake-ups and context switches cost more CPU than
/// the queries (measured with `bench/run.sh`, see bench/RESULTS.md).
#[derive(Clone)]
pub struct DbSlots {
    permits: Arc<Semaphore>,
    wait: Duration,
}

impl DbSlots {
    /// `size` permits; a request that waits longer than `wait` for one gets
    /// the same 503 as a pool checkout that timed out.
    pub fn new(size: u32, wait: Duration) -> Self {
        let size = usize::try_from(size.max(1)).unwrap_or(1);
        Self {
            permits: Arc::new(Semaphore::new(size)),
            wait,
        }
    }
}

impl AppState {
    /// Runs `work` with a pooled connection on a blocking thread: neither
    /// the pool checkout nor the query may stall an async worker.
    pub async fn db<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, ApiError> + Send + 'static,
    {
        let permit = tokio::time::timeout(
            self.db_slots.wait,
            Arc::clone(&self.db_slots.permits).acquire_owned(),
        )
        .await
        .map_err(|_| ApiError::Unavailable(anyhow!("timed out waiting for a database connection")))?
        .map_err(|closed| ApiError::internal("database admission closed", closed))?;
        let pool = self.pool.clone();
        web::block(move || {
            let _permit = permit;
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
