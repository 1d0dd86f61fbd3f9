//! The background reaper: every `LATCHKEY_REAP_INTERVAL` it deletes expired
//! sessions, expired one-time codes, security events older than
//! `LATCHKEY_EVENT_RETENTION` and throttle buckets that are full again, in batches of `LATCHKEY_REAP_BATCH` rows, so
//! a large backlog never holds locks for long. Every instance may run one;
//! deleting an already-deleted row is a no-op.

use std::time::Duration;

use actix_web::web;
use chrono::TimeDelta;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::{Connection, Pool};
use crate::domain::{SessionPolicy, now};
use crate::store::{codes, events, sessions, throttle_buckets};

pub struct Reaper {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// What the reaper deletes, and how much per statement.
#[derive(Debug, Clone, Copy)]
pub struct ReapPlan {
    pub policy: SessionPolicy,
    pub event_retention: TimeDelta,
    pub batch: i64,
}

/// How many rows one pass deleted, per table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    pub sessions: usize,
    pub codes: usize,
    pub events: usize,
    pub buckets: usize,
}

impl Reaper {
    pub fn spawn(
        pool: Pool,
        plan: ReapPlan,
        interval: Duration,
        reaped: prometheus::IntCounter,
    ) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    () = tokio::time::sleep(interval) => {}
                }
                match reap_all(&pool, plan, &stopped).await {
                    Ok(done) if done == Reaped::default() => {}
                    Ok(done) => {
                        reaped.inc_by(done.sessions as u64);
                        tracing::info!(
                            sessions = done.sessions,
                            codes = done.codes,
                            events = done.events,
                            throttle_buckets = done.buckets,
                            "reaped expired sessions, codes and events"
                        );
                    }
                    Err(e) => tracing::warn!(error = %e, "reaping expired rows failed"),
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

/// Deletes batches of each kind until one comes back short, or a stop is
/// requested.
pub async fn reap_all(
    pool: &Pool,
    plan: ReapPlan,
    stopped: &watch::Receiver<bool>,
) -> anyhow::Result<Reaped> {
    let batch = plan.batch;
    let sessions = reap(pool, batch, stopped, move |conn| {
        sessions::delete_expired_batch(conn, &plan.policy, now(), batch)
    })
    .await?;
    let codes = reap(pool, batch, stopped, move |conn| {
        codes::delete_expired_batch(conn, now(), batch)
    })
    .await?;
    let events = reap(pool, batch, stopped, move |conn| {
        events::delete_older_than_batch(conn, now() - plan.event_retention, batch)
    })
    .await?;
    let buckets = reap(pool, batch, stopped, move |conn| {
        throttle_buckets::delete_idle_batch(conn, now(), batch)
    })
    .await?;
    Ok(Reaped {
        sessions,
        codes,
        events,
        buckets,
    })
}

/// Runs `delete_batch` on a blocking thread until it deletes fewer than
/// `batch` rows; returns the total.
async fn reap(
    pool: &Pool,
    batch: i64,
    stopped: &watch::Receiver<bool>,
    delete_batch: impl Fn(&mut Connection) -> diesel::QueryResult<usize> + Clone + Send + 'static,
) -> anyhow::Result<usize> {
    let mut total = 0;
    loop {
        let pool = pool.clone();
        let delete_batch = delete_batch.clone();
        let deleted = web::block(move || -> anyhow::Result<usize> {
            let mut conn = pool.get()?;
            Ok(delete_batch(&mut conn)?)
        })
        .await??;
        total += deleted;
        if (deleted as i64) < batch || *stopped.borrow() {
            return Ok(total);
        }
    }
}
