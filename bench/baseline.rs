//! The database-bound ceiling for `bench/run.sh`: a bare actix-web handler
//! that does what latchkey's token check does at the database and nothing
//! else. It is not part of the service.
//!
//! - `GET /read`: `Authorization: Bearer <token>` → SHA-256 → one indexed
//!   SELECT by digest (the very statement latchkey runs: the session row
//!   joined with its user) → 200, or 401 when no row matches.
//! - `GET /write`: the same SELECT plus one UPDATE of `last_updated_at` (the
//!   statement latchkey runs when a session is touched, kept prepared).
//! - `GET /readyz`: `SELECT 1`.
//!
//! No token-format check, no expiry rules, no middleware, no logging: the
//! difference to `/auth/status` is what latchkey itself costs.
//!
//! Queries run the way latchkey runs them: on one thread per pooled
//! connection, fed by one queue, so the ceiling is the database's and not
//! that of a costlier way to reach it. `BASELINE_DISPATCH=block` runs them
//! through `web::block` instead, as actix's own diesel example does (the
//! `baseline-block` diagnostic row).
//!
//! Configuration (environment): `DATABASE_URL` (mysql://… or postgres://…,
//! required; the pool is latchkey's, queries run on the backend's own
//! connection as latchkey's hot path runs them),
//! `BASELINE_BIND` (default 127.0.0.1:18081), `BASELINE_WORKERS` (default:
//! one per core), `BASELINE_POOL_SIZE` (default: four connections per
//! worker: with two, reads were the same and writes 13-15 % slower; latchkey
//! has two since its checks are batched) and `BASELINE_DISPATCH`
//! (`threads`, the default, or `block`).

use std::time::Duration;

use actix_web::http::header::AUTHORIZATION;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use diesel::prelude::*;
use latchkey::db::schema::{authentication_tokens as tokens, users};
use latchkey::db::{Connection, DatabaseUrl, PoolOptions};
use latchkey::domain::now;
use latchkey::store::sessions::Session;
use latchkey::store::token_check;
use latchkey::store::users::User;
use sha2::{Digest as _, Sha256};

/// A query per request runs best with four connections per worker (see the
/// module comment).
const CONNECTIONS_PER_WORKER: usize = 4;

type DbPool = latchkey::db::Pool;

type Job = Box<dyn FnOnce(&DbPool) + Send>;

/// Where the handlers' database work runs.
#[derive(Clone)]
enum Dispatch {
    /// One thread per pooled connection, taking jobs from one queue.
    Threads(crossbeam_channel::Sender<Job>),
    /// tokio's blocking pool, through `web::block`.
    Block(std::sync::Arc<DbPool>),
}

impl Dispatch {
    fn threads(pool: &DbPool, threads: u32) -> anyhow::Result<Self> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        for _ in 0..threads.max(1) {
            let (queue, pool) = (queue.clone(), pool.clone());
            std::thread::Builder::new().spawn(move || {
                while let Ok(job) = queue.recv() {
                    job(&pool);
                }
            })?;
        }
        Ok(Self::Threads(jobs))
    }

    /// Runs `work` with the pool off the async workers; `None` if it failed.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&DbPool) -> T + Send + 'static,
    ) -> Option<T> {
        match self {
            Self::Threads(jobs) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let job: Job = Box::new(move |pool| {
                    let _ = tx.send(work(pool));
                });
                jobs.send(job).ok()?;
                rx.await.ok()
            }
            Self::Block(pool) => {
                let pool = std::sync::Arc::clone(pool);
                web::block(move || work(&pool)).await.ok()
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Read,
    Write,
}

enum Outcome {
    Found { user_id: String, session_id: String },
    NotFound,
    Failed,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn env_number(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(raw) => raw
            .parse()
            .with_context(|| format!("{name} must be a number, got {raw:?}")),
        Err(_) => Ok(default),
    }
}

/// One indexed SELECT by digest and, for `/write`, one single-row UPDATE.
fn check(pool: &DbPool, digest: &[u8], mode: Mode) -> Outcome {
    let Ok(mut conn) = pool.get() else {
        return Outcome::Failed;
    };
    let conn: &mut Connection = &mut conn;
    macro_rules! on_backend {
        ($c:ident => $body:expr) => {
            match conn {
                Connection::Mysql($c) => $body,
                Connection::Postgres($c) => $body,
                Connection::Sqlite($c) => $body,
            }
        };
    }
    let found = on_backend!(c => tokens::table
        .inner_join(users::table)
        .filter(tokens::token_hash.eq(digest))
        .select((Session::as_select(), User::as_select()))
        .first::<(Session, User)>(c)
        .optional());
    let (session, user) = match found {
        Ok(Some(row)) => row,
        Ok(None) => return Outcome::NotFound,
        Err(_) => return Outcome::Failed,
    };
    if let Mode::Write = mode {
        let at = now();
        let updated = on_backend!(c => token_check::slide(&[digest], at).execute(c));
        if updated.is_err() {
            return Outcome::Failed;
        }
    }
    Outcome::Found {
        user_id: user.id,
        session_id: session.id,
    }
}

async fn handle(db: web::Data<Dispatch>, req: HttpRequest, mode: Mode) -> HttpResponse {
    let token = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(token) = token else {
        return HttpResponse::Unauthorized().finish();
    };
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    match db.run(move |pool| check(pool, &digest, mode)).await {
        Some(Outcome::Found {
            user_id,
            session_id,
        }) => HttpResponse::Ok().json(serde_json::json!({
            "user_id": user_id,
            "session_id": session_id,
        })),
        Some(Outcome::NotFound) => HttpResponse::Unauthorized().finish(),
        Some(Outcome::Failed) | None => HttpResponse::ServiceUnavailable().finish(),
    }
}

async fn read(db: web::Data<Dispatch>, req: HttpRequest) -> HttpResponse {
    handle(db, req, Mode::Read).await
}

async fn write(db: web::Data<Dispatch>, req: HttpRequest) -> HttpResponse {
    handle(db, req, Mode::Write).await
}

async fn readyz(db: web::Data<Dispatch>) -> HttpResponse {
    let pinged = db
        .run(|pool| {
            let mut conn = pool.get().ok()?;
            latchkey::db::ping(&mut conn).ok()
        })
        .await;
    match pinged {
        Some(Some(_)) => HttpResponse::Ok().finish(),
        _ => HttpResponse::ServiceUnavailable().finish(),
    }
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")
        .context("DATABASE_URL (mysql://… or postgres://…) is required")?;
    let url = DatabaseUrl::parse(&url).map_err(|e| anyhow::anyhow!("DATABASE_URL: {e}"))?;
    anyhow::ensure!(
        !matches!(url, DatabaseUrl::Sqlite(_)),
        "the baseline runs on a database server: mysql://… or postgres://…"
    );
    let bind = env_or("BASELINE_BIND", "127.0.0.1:18081");
    let workers = match env_number("BASELINE_WORKERS", 0)? {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let pool_size = env_number(
        "BASELINE_POOL_SIZE",
        workers.saturating_mul(CONNECTIONS_PER_WORKER),
    )?;
    let pool_size = u32::try_from(pool_size)?;
    // The same pool settings as latchkey: no ping on checkout, a fixed size
    // (every connection opened at start-up), a two-second acquire timeout.
    let pool = latchkey::db::build_pool(
        &url,
        &PoolOptions {
            max_size: pool_size,
            min_idle: None,
            acquire_timeout: Duration::from_secs(2),
        },
    );
    drop(pool.get().context("failed to connect to the database")?);
    let dispatch = env_or("BASELINE_DISPATCH", "threads");
    let db = web::Data::new(match dispatch.as_str() {
        "threads" => Dispatch::threads(&pool, pool_size)?,
        "block" => Dispatch::Block(std::sync::Arc::new(pool)),
        other => anyhow::bail!("BASELINE_DISPATCH must be threads or block, got {other:?}"),
    });
    eprintln!(
        "baseline listening on http://{bind} ({workers} workers, pool {pool_size}, dispatch {dispatch})"
    );
    HttpServer::new(move || {
        App::new()
            .app_data(db.clone())
            .route("/read", web::get().to(read))
            .route("/write", web::get().to(write))
            .route("/readyz", web::get().to(readyz))
    })
    .workers(workers)
    .bind(&bind)
    .with_context(|| format!("failed to bind {bind}"))?
    .run()
    .await
    .context("the server failed")
}
