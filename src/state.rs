//! What every handler can reach: the pool, the password hasher, the settings.

use std::sync::Arc;

use crate::db::{Batcher, Connection, DbThreads, Pool};
use crate::domain::now;
use crate::error::ApiError;
use crate::hashing::PasswordHasher;
use crate::metrics::Metrics;
use crate::refusal_lines::RefusalLines;
use crate::settings::Settings;
use crate::store::sessions::Session;
use crate::store::throttle_buckets;
use crate::store::token_check::Check;
use crate::store::users::User;
use crate::throttle::{Bucket, Throttle};

#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub hasher: PasswordHasher,
    pub settings: Arc<Settings>,
    pub metrics: Metrics,
    pub throttle: Arc<Throttle>,
    /// Where [`AppState::db`] runs its work.
    pub db_threads: DbThreads,
    /// Token checks, answered in batches on the same threads.
    pub checks: Batcher<Check, Option<(Session, User)>>,
    /// The quota of access lines for 503 answers.
    pub refusal_lines: Arc<RefusalLines>,
    /// Wakes the outbox sender when a message was queued, so it goes out
    /// at once instead of at the sender's next poll.
    pub outbox_queued: Arc<tokio::sync::Notify>,
}

impl AppState {
    /// Runs `work` with a pooled connection on a database thread: neither
    /// the pool checkout nor the query may stall an async worker.
    pub async fn db<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, ApiError> + Send + 'static,
    {
        self.db_threads.run(work).await
    }

    /// Takes a token from each of `buckets` (the throttles' buckets a
    /// request needs, from [`Throttle`]), shared with every instance on
    /// the database; 429 with Retry-After when one is empty. No query when
    /// every limit is off.
    pub async fn admit(&self, buckets: Vec<Bucket>) -> Result<(), ApiError> {
        if buckets.is_empty() {
            return Ok(());
        }
        self.db(move |conn| Ok(throttle_buckets::admit(conn, &buckets, now())?))
            .await?
            .map_err(|retry_after| ApiError::TooManyRequests { retry_after })
    }

    /// Tells the outbox sender that a message is waiting.
    pub fn wake_delivery(&self) {
        self.outbox_queued.notify_one();
    }
}
