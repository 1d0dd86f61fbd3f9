//! The background reaper: deletes expired sessions every
//! `LATCHKEY_REAP_INTERVAL`, in batches of `LATCHKEY_REAP_BATCH` rows, so a
//! large backlog never holds locks for long. Every instance may run one;
//! deleting an already-deleted row is a no-op.

use std::time::Duration;

use actix_web::web;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::Pool;
use crate::domain::{SessionPolicy, now};
use crate::store::sessions;

pub struct Reaper {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Reaper {
    pub fn spawn(
        pool: Pool,
        policy: SessionPolicy,
        interval: Duration,
        batch: i64,
        reaped: prometheus::IntCounter,
    ) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    () = tokio::time::sleep(interval) => {}
                }
                match reap_all(&pool, policy, batch, &stopped).await {
                    Ok(0) => {}
                    Ok(deleted) => {
                        reaped.inc_by(deleted as u64);
                        tracing::info!(deleted, "reaped expired sessions");
                    }
                    Err(e) => tracing::warn!(error = %e, "reaping expired sessions failed"),
                }
            }
        });
        Self { stop, task }
    }

    /// Asks the reaper to stop and waits for its current batch to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Deletes batches until one comes back short, or a stop is requested.
pub async fn reap_all(
    pool: &Pool,
    policy: SessionPolicy,
    batch: i64,
    stopped: &watch::Receiver<bool>,
) -> anyhow::Result<usize> {
    let mut total = 0;
    loop {
        let pool = pool.clone();
        let deleted = web::block(move || -> anyhow::Result<usize> {
            let mut conn = pool.get()?;
            Ok(sessions::delete_expired_batch(
                &mut conn,
                &policy,
                now(),
                batch,
            )?)
        })
        .await??;
        total += deleted;
        if (deleted as i64) < batch || *stopped.borrow() {
            return Ok(total);
        }
    }
}
