//! Prometheus metrics. Request counts and latencies come from the
//! actix-web-prom middleware (labelled by route pattern, never by raw path,
//! so ids in URLs cannot blow up the cardinality); the rest are counted
//! where they happen. Gauges that describe a current state (pool, database
//! and bcrypt queues) are read at scrape time.

use actix_web::HttpResponse;
use actix_web_prom::{PrometheusMetrics, PrometheusMetricsBuilder};
use prometheus::{
    Encoder as _, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::db::Pool;
use crate::hashing::PasswordHasher;

const NAMESPACE: &str = "latchkey";

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Login attempts by result: `ok`, `failed`, `refused` (overloaded).
    pub logins: IntCounterVec,
    pub sessions_created: IntCounter,
    pub sessions_revoked: IntCounter,
    pub sessions_reaped: IntCounter,
    /// Seconds a password check waited for a bcrypt thread.
    pub bcrypt_wait_seconds: Histogram,
    /// How many token checks each query answered (see `db::Batcher`).
    pub token_checks_per_query: Histogram,
    /// Outbox messages delivered (SMTP accepted them, or the webhook answered 2xx).
    pub outbox_sent: IntCounter,
    /// Outbox messages dropped unsent because their code expired first.
    pub outbox_failed: IntCounter,
    /// Delivery attempts that failed and were rescheduled.
    pub outbox_retried: IntCounter,
    /// Messages waiting in the outbox, as the sender last counted them.
    pub outbox_depth: IntGauge,
    bcrypt_queue_depth: IntGauge,
    db_queue_depth: IntGauge,
    db_connections: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let logins = IntCounterVec::new(
            Opts::new("logins_total", "Login attempts by result").namespace(NAMESPACE),
            &["result"],
        )
        .expect("valid metric");
        let counter = |name: &str, help: &str| {
            IntCounter::with_opts(Opts::new(name, help).namespace(NAMESPACE)).expect("valid metric")
        };
        let sessions_created = counter(
            "sessions_created_total",
            "Sessions created by register and login",
        );
        let sessions_revoked = counter(
            "sessions_revoked_total",
            "Sessions ended by logout, revocation, eviction or password change",
        );
        let sessions_reaped = counter(
            "sessions_reaped_total",
            "Expired sessions deleted by the reaper",
        );
        let outbox_sent = counter(
            "outbox_sent_total",
            "Outbox messages delivered by SMTP or webhook",
        );
        let outbox_failed = counter(
            "outbox_failed_total",
            "Outbox messages dropped unsent because their code expired",
        );
        let outbox_retried = counter(
            "outbox_retried_total",
            "Outbox delivery attempts that failed and were rescheduled",
        );
        let outbox_depth = IntGauge::with_opts(
            Opts::new("outbox_depth", "Messages waiting in the outbox").namespace(NAMESPACE),
        )
        .expect("valid metric");
        let bcrypt_wait_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "bcrypt_wait_seconds",
                "Time a password check waited for a bcrypt thread",
            )
            .namespace(NAMESPACE)
            .buckets(vec![
                0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )
        .expect("valid metric");
        let token_checks_per_query = Histogram::with_opts(
            HistogramOpts::new(
                "token_checks_per_query",
                "Token checks answered by one database query (batched while the database threads are busy)",
            )
            .namespace(NAMESPACE)
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
        )
        .expect("valid metric");
        let bcrypt_queue_depth = IntGauge::with_opts(
            Opts::new("bcrypt_queue_depth", "Password checks queued or running")
                .namespace(NAMESPACE),
        )
        .expect("valid metric");
        let db_queue_depth = IntGauge::with_opts(
            Opts::new(
                "db_queue_depth",
                "Queries and token checks waiting for a database thread",
            )
            .namespace(NAMESPACE),
        )
        .expect("valid metric");
        let db_connections = IntGaugeVec::new(
            Opts::new("db_pool_connections", "Database pool connections by state")
                .namespace(NAMESPACE),
            &["state"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(logins.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(sessions_created.clone()),
            Box::new(sessions_revoked.clone()),
            Box::new(sessions_reaped.clone()),
            Box::new(bcrypt_wait_seconds.clone()),
            Box::new(token_checks_per_query.clone()),
            Box::new(outbox_sent.clone()),
            Box::new(outbox_failed.clone()),
            Box::new(outbox_retried.clone()),
            Box::new(outbox_depth.clone()),
            Box::new(bcrypt_queue_depth.clone()),
            Box::new(db_queue_depth.clone()),
            Box::new(db_connections.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Self {
            registry,
            logins,
            sessions_created,
            sessions_revoked,
            sessions_reaped,
            bcrypt_wait_seconds,
            token_checks_per_query,
            outbox_sent,
            outbox_failed,
            outbox_retried,
            outbox_depth,
            bcrypt_queue_depth,
            db_queue_depth,
            db_connections,
        }
    }

    /// The middleware that counts and times every request, in our registry.
    pub fn http_middleware(&self) -> PrometheusMetrics {
        PrometheusMetricsBuilder::new(NAMESPACE)
            .registry(self.registry.clone())
            .mask_unmatched_patterns("UNMATCHED")
            .build()
            .expect("the HTTP metrics register once")
    }

    /// The text exposition of every metric, with current gauges.
    /// `db_queued`: the queries and token checks waiting for a database thread.
    pub fn render(&self, pool: &Pool, db_queued: usize, hasher: &PasswordHasher) -> HttpResponse {
        let state = pool.state();
        let idle = i64::from(state.idle_connections);
        self.db_connections.with_label_values(&["idle"]).set(idle);
        self.db_connections
            .with_label_values(&["in_use"])
            .set(i64::from(state.connections) - idle);
        self.bcrypt_queue_depth.set(hasher.waiting() as i64);
        self.db_queue_depth
            .set(i64::try_from(db_queued).unwrap_or(i64::MAX));
        let mut body = Vec::new();
        match TextEncoder::new().encode(&self.registry.gather(), &mut body) {
            Ok(()) => HttpResponse::Ok()
                .content_type(TextEncoder::new().format_type())
                .body(body),
            Err(e) => actix_web::ResponseError::error_response(&crate::error::ApiError::internal(
                "failed to encode metrics",
                e,
            )),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
