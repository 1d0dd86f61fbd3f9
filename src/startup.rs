//! Wiring: settings in, a bound listener and a running server out.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::header;
use actix_web::middleware::{self, DefaultHeaders, ErrorHandlers};
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;

use crate::db;
use crate::delivery::sender::{OutboxMetrics, Sender};
use crate::domain::{SessionPolicy, now};
use crate::error::{ApiError, json_for_framework_errors, json_payload_error};
use crate::hashing::PasswordHasher;
use crate::header_limits;
use crate::metrics::Metrics;
use crate::reaper::{ReapPlan, Reaper};
use crate::routes;
use crate::settings::Settings;
use crate::state::AppState;
use crate::store::sessions::Session;
use crate::store::token_check::{self, Check};
use crate::store::users::User;
use crate::telemetry;
use crate::throttle::Throttle;

pub struct Application {
    port: u16,
    server: Server,
    /// The `/metrics` listener, when it is apart from the API's.
    metrics_server: Option<(u16, Server)>,
    reaper: Option<Reaper>,
    /// Delivers the outbox's messages.
    sender: Sender,
}

impl Application {
    /// Migrates the database, starts the bcrypt pool and binds the listener.
    /// The server runs once [`Application::run_until_stopped`] is awaited.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let workers = settings.workers();
        let pool_options = db::PoolOptions {
            max_size: settings.pool_size(),
            ..settings.pool.clone()
        };
        let pool = db::build_pool(&settings.database_url, &pool_options);
        let migrate_pool = pool.clone();
        let applied = web::block(move || -> anyhow::Result<Vec<String>> {
            let mut conn = migrate_pool
                .get()
                .context("failed to connect to the database")?;
            db::run_migrations(&mut conn)
        })
        .await
        .context("the migration task failed")??;
        if !applied.is_empty() {
            tracing::info!(migrations = ?applied, "applied database migrations");
        }

        let metrics = Metrics::new();
        let hashing = settings.hashing.clone();
        let wait_histogram = metrics.bcrypt_wait_seconds.clone();
        let hasher = web::block(move || PasswordHasher::start(&hashing, Some(wait_histogram)))
            .await
            .context("the hasher start-up task failed")?
            .context("failed to start the password hasher")?;

        let listener = TcpListener::bind(&settings.bind)
            .with_context(|| format!("failed to bind {}", settings.bind))?;
        let port = listener.local_addr()?.port();
        tracing::info!(
            address = %listener.local_addr()?,
            database = %settings.database_url,
            "latchkey is listening"
        );

        let reaper = (!settings.reap_interval.is_zero()).then(|| {
            Reaper::spawn(
                pool.clone(),
                ReapPlan {
                    policy: settings.session,
                    event_retention: settings.account.event_retention,
                    batch: settings.reap_batch,
                },
                settings.reap_interval,
                metrics.sessions_reaped.clone(),
            )
        });
        tracing::info!(delivery = %settings.delivery.describe(), "one-time code delivery");
        let sender = Sender::spawn(
            pool.clone(),
            settings.delivery.clone(),
            OutboxMetrics::from(&metrics),
        );
        let metrics_listener = match &settings.metrics_bind {
            Some(bind) => Some(
                TcpListener::bind(bind)
                    .with_context(|| format!("failed to bind the metrics address {bind}"))?,
            ),
            None => None,
        };
        let http_metrics = metrics.http_middleware();
        let throttle = Arc::new(Throttle::new(&settings.throttle));
        forget_idle_buckets(Arc::downgrade(&throttle));
        let refusal_lines = Arc::new(telemetry::RefusalLines::new());
        report_unlogged_refusals(Arc::downgrade(&refusal_lines));
        let db_threads =
            db::DbThreads::start(&pool, pool_options.max_size, pool_options.acquire_timeout)
                .context("failed to start the database threads")?;
        let checks = token_checks(
            &db_threads,
            settings.session,
            metrics.token_checks_per_query.clone(),
        );
        let state = web::Data::new(AppState {
            pool,
            checks,
            db_threads,
            hasher,
            settings: Arc::new(settings),
            metrics,
            throttle,
            refusal_lines,
            outbox_queued: sender.waker(),
        });
        let metrics_server = match metrics_listener {
            Some(listener) => {
                let port = listener.local_addr()?.port();
                tracing::info!(address = %listener.local_addr()?, "metrics are served apart");
                let state = state.clone();
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(state.clone())
                        .configure(routes::configure_metrics)
                        .default_service(web::to(|| async {
                            Err::<(), _>(ApiError::NotFound("only /metrics is served here"))
                        }))
                        .wrap(ErrorHandlers::new().default_handler(json_for_framework_errors))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)?
                .run();
                Some((port, server))
            }
            None => None,
        };
        let metrics_on_api = metrics_server.is_none();
        let client_timeout = state.settings.client_timeout;
        let server = HttpServer::new(move || {
            let limit = state.settings.max_body_bytes;
            App::new()
                .app_data(state.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(limit)
                        .error_handler(move |e, _| json_payload_error(e, limit).into()),
                )
                .app_data(web::PayloadConfig::new(limit))
                .configure(|cfg| routes::configure(cfg, metrics_on_api))
                .default_service(web::to(|| async {
                    Err::<(), _>(ApiError::NotFound("there is no such route"))
                }))
                .wrap(ErrorHandlers::new().default_handler(json_for_framework_errors))
                .wrap(middleware::from_fn(header_limits::limit_headers))
                .wrap(security_headers())
                .wrap(http_metrics.clone())
                .wrap(middleware::from_fn(telemetry::access_log))
        })
        .workers(workers)
        .client_request_timeout(client_timeout)
        .listen(listener)?
        .run();
        Ok(Self {
            port,
            server,
            metrics_server,
            reaper,
            sender,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the separate metrics listener, if there is one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|(port, _)| *port)
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM, letting in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let metrics = self.metrics_server.map(|(_, server)| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        let served = self.server.await;
        if let Some((handle, task)) = metrics {
            handle.stop(true).await;
            let _ = task.await;
        }
        if let Some(reaper) = self.reaper {
            reaper.stop().await;
        }
        self.sender.stop().await;
        served
    }
}

/// Token checks, batched: as many per query as arrive while the database
/// threads are busy (see [`db::Batcher`]).
fn token_checks(
    threads: &db::DbThreads,
    policy: SessionPolicy,
    per_query: prometheus::Histogram,
) -> db::Batcher<Check, Option<(Session, User)>> {
    db::Batcher::new(
        threads.clone(),
        token_check::MAX_CHECKS_PER_QUERY,
        move |conn, checks| {
            per_query.observe(checks.len() as f64);
            Ok(token_check::authenticate(conn, checks, &policy, now())?)
        },
    )
}

/// Every minute, drops the throttle's full buckets; ends with the app.
fn forget_idle_buckets(throttle: std::sync::Weak<Throttle>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            match throttle.upgrade() {
                Some(throttle) => throttle.forget_idle(),
                None => return,
            }
        }
    });
}

/// Every [`telemetry::UNLOGGED_REPORT_EVERY`], logs how many 503 answers
/// went without an access line since the last line that counted them, so
/// that the count of the flood's tail is not left for the next 503 to tell;
/// ends with the app.
fn report_unlogged_refusals(lines: std::sync::Weak<telemetry::RefusalLines>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(telemetry::UNLOGGED_REPORT_EVERY);
        loop {
            tick.tick().await;
            let Some(lines) = lines.upgrade() else { return };
            let unlogged = lines.take_unlogged();
            if unlogged > 0 {
                tracing::info!(target: "latchkey::access", unlogged, "503 answers not logged");
            }
        }
    });
}

/// Nothing latchkey answers is meant to be cached, framed or sniffed.
fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::CACHE_CONTROL, "no-store"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ))
}
