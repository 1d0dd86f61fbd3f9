//! The background sender: takes messages from the outbox and delivers them.
//!
//! Every second, or at once when woken ([`Sender::wake`]), one pass:
//! 1. drop the messages whose code has expired (counted as failed: sending
//!    a code that no longer works would only confuse);
//! 2. load the due messages, oldest first, and for each: claim it (a
//!    conditional update, so two latchkey instances never both send one),
//!    deliver it, then delete it, or on failure reschedule it with
//!    exponential backoff (1 s, 2 s, 4 s … at most 5 min);
//! 3. count what waits, for the `latchkey_outbox_depth` gauge.
//!
//! Delivery is at least once: a sender that dies between delivering and
//! deleting leaves the row to be sent again when its lease ends, with the
//! same id (a webhook receiver can deduplicate on `webhook-id`).
//!
//! Error policy: nothing here panics or stops the loop. A database error
//! ends the pass and the next one tries again; a delivery error reschedules
//! that message. Logs name the outbox row, its kind, the attempt and the
//! error — never the code, the link (which carries the code) or the payload.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use anyhow::Context as _;
use chrono::TimeDelta;
use diesel::QueryResult;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::db::{self, Connection, Pool};
use crate::delivery::config::Delivery;
use crate::delivery::message::Message;
use crate::delivery::smtp::SmtpMailer;
use crate::delivery::webhook::WebhookPoster;
use crate::domain::now;
use crate::metrics::Metrics;
use crate::store::outbox::{self, Row};

/// How often the outbox is looked at when nobody wakes the sender.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Messages loaded per query; a full batch is followed by another at once.
const BATCH: i64 = 32;
/// How long a claimed message is left to its sender before another may
/// take it: well beyond [`ATTEMPT_DEADLINE`], so only a dead sender's
/// message is ever taken over.
const LEASE: TimeDelta = TimeDelta::seconds(60);
/// The longest one delivery attempt may take, whatever the transport's own
/// timeouts (lettre's apply to each step of the SMTP dialogue).
const ATTEMPT_DEADLINE: Duration = Duration::from_secs(25);
const FIRST_RETRY: TimeDelta = TimeDelta::seconds(1);
const LAST_RETRY: TimeDelta = TimeDelta::minutes(5);

/// What the sender counts, registered in [`Metrics`].
#[derive(Clone)]
pub struct OutboxMetrics {
    pub sent: prometheus::IntCounter,
    pub failed: prometheus::IntCounter,
    pub retried: prometheus::IntCounter,
    pub depth: prometheus::IntGauge,
}

impl From<&Metrics> for OutboxMetrics {
    fn from(metrics: &Metrics) -> Self {
        Self {
            sent: metrics.outbox_sent.clone(),
            failed: metrics.outbox_failed.clone(),
            retried: metrics.outbox_retried.clone(),
            depth: metrics.outbox_depth.clone(),
        }
    }
}

/// The running sender (or, with [`Delivery::None`], a sender that does
/// nothing and leaves the outbox as it is).
pub struct Sender {
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Sender {
    /// Starts the sender on the current tokio runtime.
    pub fn spawn(pool: Pool, delivery: Delivery, metrics: OutboxMetrics) -> Sender {
        let wake = Arc::new(Notify::new());
        let (stop, stopped) = watch::channel(false);
        let task = match Transport::build(&delivery) {
            Ok(Some(transport)) => Some(tokio::spawn(run(
                pool,
                transport,
                metrics,
                Arc::clone(&wake),
                stopped,
            ))),
            Ok(None) => None,
            Err(e) => {
                // The configuration was checked at start-up; should the
                // client still fail to build, the messages wait for a
                // restart rather than take the service down.
                tracing::error!(error = %format!("{e:#}"), "the outbox sender could not start; messages stay queued");
                None
            }
        };
        Sender { wake, stop, task }
    }

    /// A message was queued: deliver now rather than at the next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The handle [`Sender::wake`] uses, for whoever queues messages (the
    /// request handlers reach it through the app state).
    pub fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Asks the sender to stop, and waits for the attempt under way (at
    /// most [`ATTEMPT_DEADLINE`]); the messages left wait in the outbox.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task {
            let _ = task.await;
        }
    }
}

/// A configured way out, with its client built once.
enum Transport {
    Smtp(SmtpMailer),
    Webhook(WebhookPoster),
}

impl Transport {
    fn build(delivery: &Delivery) -> anyhow::Result<Option<Self>> {
        Ok(match delivery {
            Delivery::None => None,
            Delivery::Smtp(config) => Some(Self::Smtp(
                SmtpMailer::new(config).context("failed to set up the SMTP client")?,
            )),
            Delivery::Webhook(config) => Some(Self::Webhook(
                WebhookPoster::new(config).context("failed to set up the webhook client")?,
            )),
        })
    }

    async fn deliver(&self, row: &Row) -> anyhow::Result<()> {
        // Read even for the webhook, which sends the stored JSON as it is:
        // a payload that is not a message is never sent out.
        let message: Message =
            serde_json::from_str(&row.payload).context("the stored payload is not a message")?;
        match self {
            Self::Smtp(mailer) => mailer.send(&message).await,
            Self::Webhook(poster) => poster.post(&row.id, &row.payload).await,
        }
    }
}

async fn run(
    pool: Pool,
    transport: Transport,
    metrics: OutboxMetrics,
    wake: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = deliver_due(&pool, &transport, &metrics, &stopped).await {
            tracing::warn!(error = %format!("{e:#}"), "delivering the outbox failed; trying again");
        }
        match on_db(&pool, outbox::depth).await {
            Ok(depth) => metrics.depth.set(depth),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "counting the outbox failed"),
        }
        if *stopped.borrow() {
            return;
        }
        tokio::select! {
            _ = stopped.changed() => return,
            () = wake.notified() => {}
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}

/// One pass: drops expired messages, then delivers due ones in batches
/// until a batch comes back short or a stop is asked for.
async fn deliver_due(
    pool: &Pool,
    transport: &Transport,
    metrics: &OutboxMetrics,
    stopped: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let expired = on_db(pool, |conn| outbox::delete_expired(conn, now())).await?;
    if expired > 0 {
        metrics.failed.inc_by(expired as u64);
        tracing::warn!(
            dropped = expired,
            "dropped outbox messages whose code expired before they could be delivered"
        );
    }
    loop {
        let rows = on_db(pool, |conn| outbox::due(conn, now(), BATCH)).await?;
        let full = rows.len() as i64 == BATCH;
        for row in rows {
            if *stopped.borrow() {
                return Ok(());
            }
            attempt(pool, transport, metrics, row).await?;
        }
        if !full {
            return Ok(());
        }
    }
}

/// Claims one message, delivers it and records the outcome.
async fn attempt(
    pool: &Pool,
    transport: &Transport,
    metrics: &OutboxMetrics,
    row: Row,
) -> anyhow::Result<()> {
    let (id, seen) = (row.id.clone(), row.next_attempt_at);
    let claimed = on_db(pool, move |conn| {
        outbox::claim(conn, &id, seen, now() + LEASE)
    })
    .await?;
    if !claimed {
        // Another sender took it since it was read.
        return Ok(());
    }
    let attempt = row.attempts.saturating_add(1);
    let delivered = tokio::time::timeout(ATTEMPT_DEADLINE, transport.deliver(&row))
        .await
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "no answer within {} s",
                ATTEMPT_DEADLINE.as_secs()
            ))
        });
    let id = row.id.clone();
    match delivered {
        Ok(()) => {
            on_db(pool, move |conn| outbox::delete(conn, &id)).await?;
            metrics.sent.inc();
            tracing::info!(outbox_id = %row.id, kind = %row.kind, attempt, "delivered a message");
        }
        Err(e) => {
            let delay = retry_delay(attempt);
            on_db(pool, move |conn| {
                outbox::reschedule(conn, &id, now() + delay)
            })
            .await?;
            metrics.retried.inc();
            tracing::warn!(
                outbox_id = %row.id,
                kind = %row.kind,
                attempt,
                retry_in_seconds = delay.num_seconds(),
                error = %format!("{e:#}"),
                "delivering a message failed; it will be retried"
            );
        }
    }
    Ok(())
}

/// How long to wait after the `attempt`-th failure: 1 s, then doubling,
/// at most [`LAST_RETRY`].
fn retry_delay(attempt: i32) -> TimeDelta {
    let doublings = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    (FIRST_RETRY * 2_i32.pow(doublings)).min(LAST_RETRY)
}

/// Runs `work` with a pooled connection on a blocking thread.
async fn on_db<T: Send + 'static>(
    pool: &Pool,
    work: impl FnOnce(&mut Connection) -> QueryResult<T> + Send + 'static,
) -> anyhow::Result<T> {
    let pool = pool.clone();
    web::block(move || -> anyhow::Result<T> {
        let mut conn = pool
            .get()
            .context("no database connection for the outbox")?;
        let result = work(&mut conn);
        if let Err(e) = &result
            && db::is_unavailable(e)
        {
            // The next pass should not be handed the same dead link.
            conn.mark_lost();
        }
        result.context("an outbox query failed")
    })
    .await
    .context("the outbox query's thread failed")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_five_minutes() {
        let delays: Vec<i64> = (1..=12).map(|n| retry_delay(n).num_seconds()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(retry_delay(i32::MAX), LAST_RETRY);
        assert_eq!(retry_delay(0), FIRST_RETRY);
    }

    #[test]
    fn the_lease_outlasts_any_attempt() {
        assert!(LEASE.to_std().unwrap() > ATTEMPT_DEADLINE * 2);
    }
}
