//! Database set-up for `bench/run.sh`, through latchkey's own code: its
//! migrations, `SessionToken::generate()`, its row types (`NewUser`,
//! `NewSession::new`) and its `PasswordHasher`, with batched diesel inserts.
//!
//! - `create-db` / `drop-db`: a MariaDB database whose name must match
//!   `latchkey_bench_<random>`; nothing else can be created or dropped.
//! - `seed`: migrations, then N users with one live session each (their
//!   tokens go to `tokens.txt`) and M login users (their emails to
//!   `login_emails.txt`, the shared password to `password.txt`). The login
//!   password is bcrypt-hashed ONCE at cost 12 and that hash is reused for
//!   every user.
//! - `time-bcrypt`: times K password verifications at cost 12 through
//!   latchkey's hasher, one at a time: the login ceiling is cores ÷ that time.
//! - `scale`: tops the sessions table up to `--total` rows (10 sessions per
//!   extra user, multi-row INSERTs in transactions) and writes a sample of the
//!   new tokens.
//! - `refresh`: sets `last_updated_at` of the listed tokens' sessions to now,
//!   so a following run measures the steady state of the default touch
//!   interval (reads only) instead of one catch-up write per token.

use std::fs;
use std::io::{BufRead as _, BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use chrono::{NaiveDateTime, TimeDelta};
use clap::{Parser, Subcommand};
use diesel::Connection as _;
use diesel::prelude::*;
use latchkey::db::schema::{authentication_tokens as tokens, users};
use latchkey::db::{self, Connection, DatabaseUrl};
use latchkey::domain::{Password, SessionToken, TokenDigest, now};
use latchkey::hashing::{PasswordHasher, Verification};
use latchkey::settings::{DEFAULT_BCRYPT_COST, HashingSettings};
use latchkey::store::events::Origin;
use latchkey::store::sessions::{self, ClientInfo, NewSession};
use latchkey::store::users::{self as user_store, NewUser};

/// The one password of every seeded user (≥ 12 characters, the default minimum).
const PASSWORD: &str = "latchkey bench passphrase";
/// Rows per multi-row INSERT (7 parameters each: well under both backends' limits).
const ROWS_PER_INSERT: usize = 2_000;
/// Multi-row INSERTs per transaction.
const INSERTS_PER_TRANSACTION: usize = 10;
/// Sessions per user created by `scale` (latchkey's default cap).
const SCALE_SESSIONS_PER_USER: usize = 10;

#[derive(Parser)]
#[command(about = "Seeds a latchkey database for bench/run.sh")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates the (empty) benchmark database on a MariaDB or PostgreSQL server.
    CreateDb {
        /// mysql://USER[:PASS]@HOST:PORT, without a database
        #[arg(long)]
        server: String,
        #[arg(long)]
        name: String,
    },
    /// Drops the benchmark database (only names matching latchkey_bench_*).
    DropDb {
        #[arg(long)]
        server: String,
        #[arg(long)]
        name: String,
    },
    /// Migrates an empty database and seeds users, sessions and login users.
    Seed {
        #[arg(long)]
        url: String,
        /// Directory for tokens.txt, login_emails.txt, password.txt, bcrypt.txt.
        #[arg(long)]
        out: PathBuf,
        /// Users with one live session each.
        #[arg(long, default_value_t = 1_000)]
        users: usize,
        /// Users with no session, for the login scenarios.
        #[arg(long, default_value_t = 100)]
        login_users: usize,
    },
    /// Times bcrypt verifications at cost 12 through latchkey's hasher and
    /// writes the median and the ceiling (cores ÷ median) as KEY=VALUE lines.
    TimeBcrypt {
        #[arg(long, default_value_t = 5)]
        samples: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Tops the sessions table up to --total rows and writes a token sample.
    Scale {
        #[arg(long)]
        url: String,
        #[arg(long)]
        total: usize,
        /// How many of the new tokens to write, spread evenly over the inserts.
        #[arg(long, default_value_t = 10_000)]
        sample: usize,
        #[arg(long)]
        sample_out: PathBuf,
    },
    /// Marks the sessions of the listed tokens as used just now.
    Refresh {
        #[arg(long)]
        url: String,
        #[arg(long)]
        tokens: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::CreateDb { server, name } => on_server(&server, &name, |quote| {
            format!("CREATE DATABASE {}", quote(&name))
        })
        .with_context(|| format!("failed to create database {name}")),
        Command::DropDb { server, name } => on_server(&server, &name, |quote| {
            if server.starts_with("postgres") {
                // A connection of a killed service may linger.
                format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote(&name))
            } else {
                format!("DROP DATABASE IF EXISTS {}", quote(&name))
            }
        })
        .with_context(|| format!("failed to drop database {name}")),
        Command::Seed {
            url,
            out,
            users,
            login_users,
        } => seed(&url, &out, users, login_users),
        Command::TimeBcrypt { samples, out } => time_bcrypt(samples, &out),
        Command::Scale {
            url,
            total,
            sample,
            sample_out,
        } => scale(&url, total, sample, &sample_out),
        Command::Refresh { url, tokens } => refresh(&url, &tokens),
    }
}

/// Runs one statement (built with the server's identifier quoting) on the
/// server, without a database, after checking that `name` is a benchmark
/// database name: this program never touches anything else. MariaDB
/// (`mysql://…`) or PostgreSQL (`postgres://…`, through its `postgres`
/// database).
fn on_server(
    server: &str,
    name: &str,
    statement: impl Fn(&dyn Fn(&str) -> String) -> String,
) -> anyhow::Result<()> {
    let suffix = name.strip_prefix("latchkey_bench_").unwrap_or_default();
    ensure!(
        suffix.len() >= 8
            && suffix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "refusing database name {name:?}: expected latchkey_bench_<8+ lowercase letters or digits>"
    );
    ensure!(
        server.matches('/').count() == 2,
        "--server must be mysql://… or postgres://USER[:PASS]@HOST:PORT without a database"
    );
    if server.starts_with("mysql://") {
        let mut conn = diesel::MysqlConnection::establish(server)
            .context("failed to connect to the MariaDB server")?;
        diesel::sql_query(statement(&|n| format!("`{n}`"))).execute(&mut conn)?;
    } else if server.starts_with("postgres://") {
        let mut conn = diesel::PgConnection::establish(&format!("{server}/postgres"))
            .context("failed to connect to the PostgreSQL server")?;
        diesel::sql_query(statement(&|n| format!("\"{n}\""))).execute(&mut conn)?;
    } else {
        bail!("--server must start with mysql:// or postgres://");
    }
    Ok(())
}

fn connect(url: &str) -> anyhow::Result<Connection> {
    let url = DatabaseUrl::parse(url).map_err(|e| anyhow::anyhow!("bad --url: {e}"))?;
    db::connect(&url)
}

/// Runs the same statement on whichever backend `conn` is. (diesel's
/// multi-row INSERT is backend-specific, so batches go to the inner
/// connection.)
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            Connection::Mysql($c) => $body,
            Connection::Postgres($c) => $body,
            Connection::Sqlite($c) => $body,
        }
    };
}

fn insert_users(conn: &mut Connection, rows: &[NewUser<'_>]) -> QueryResult<()> {
    on_backend!(conn, |c| c.transaction(|c| {
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            diesel::insert_into(users::table).values(chunk).execute(c)?;
        }
        Ok(())
    }))
}

fn insert_sessions(conn: &mut Connection, rows: &[NewSession<'_>]) -> QueryResult<()> {
    on_backend!(conn, |c| c.transaction(|c| {
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            diesel::insert_into(tokens::table)
                .values(chunk)
                .execute(c)?;
        }
        Ok(())
    }))
}

fn count_rows(conn: &mut Connection) -> QueryResult<(i64, i64)> {
    let users = users::table.count().get_result(conn)?;
    let sessions = tokens::table.count().get_result(conn)?;
    Ok((users, sessions))
}

fn hasher() -> anyhow::Result<PasswordHasher> {
    let settings = HashingSettings {
        bcrypt_cost: DEFAULT_BCRYPT_COST,
        pepper: None,
        threads: 1,
        queue: 8,
        max_wait: std::time::Duration::MAX,
    };
    // No metrics: the seeder has no registry.
    PasswordHasher::start(&settings, None).context("failed to start the password hasher")
}

/// Sessions are seeded as created an hour ago and last used an hour ago:
/// live under the default timeouts, and (unless refreshed) due for a touch.
fn seeded_times() -> (NaiveDateTime, NaiveDateTime) {
    let at = now() - TimeDelta::hours(1);
    (at, at)
}

fn client() -> ClientInfo {
    ClientInfo {
        origin: Origin::new(None, Some("latchkey-bench-seed")),
        label: Some("bench".into()),
    }
}

fn write_lines<'a>(path: &Path, lines: impl IntoIterator<Item = &'a str>) -> anyhow::Result<()> {
    let file = fs::File::create(path).with_context(|| format!("failed to create {path:?}"))?;
    let mut out = BufWriter::new(file);
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

fn seed(url: &str, out: &Path, user_count: usize, login_users: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    fs::create_dir_all(out)?;
    let mut conn = connect(url)?;
    db::run_migrations(&mut conn)?;
    let (existing_users, existing_sessions) = count_rows(&mut conn)?;
    ensure!(
        existing_users == 0 && existing_sessions == 0,
        "refusing to seed a database that already has {existing_users} users and {existing_sessions} sessions"
    );

    // One bcrypt hash at the default cost, through latchkey's hasher (so the
    // pre-hash is the service's), shared by every seeded user.
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let hasher = hasher()?;
    let password_hash = runtime
        .block_on(hasher.hash(Password::candidate(PASSWORD.to_owned())))
        .context("bcrypt failed")?;

    let (created_at, _) = seeded_times();
    let ids: Vec<String> = (0..user_count + login_users)
        .map(|_| user_store::new_id())
        .collect();
    let emails: Vec<String> = (0..user_count)
        .map(|i| format!("user-{i}@bench.example.com"))
        .chain((0..login_users).map(|i| format!("login-{i}@bench.example.com")))
        .collect();
    let rows: Vec<NewUser<'_>> = ids
        .iter()
        .zip(&emails)
        .map(|(id, email)| NewUser {
            id,
            email,
            password_hash: &password_hash,
            admin: false,
            created_at,
            updated_at: created_at,
        })
        .collect();
    insert_users(&mut conn, &rows)?;

    let issued: Vec<(SessionToken, TokenDigest, String)> = (0..user_count)
        .map(|_| {
            let (token, digest) = SessionToken::generate();
            (token, digest, sessions::new_id())
        })
        .collect();
    let client = client();
    let (created_at, last_updated_at) = seeded_times();
    let rows: Vec<NewSession<'_>> = issued
        .iter()
        .zip(&ids)
        .map(|((_, digest, session_id), user_id)| {
            let mut row = NewSession::new(session_id, user_id, digest, &client, created_at);
            row.last_updated_at = last_updated_at;
            row
        })
        .collect();
    insert_sessions(&mut conn, &rows)?;

    write_lines(
        &out.join("tokens.txt"),
        issued.iter().map(|(token, _, _)| token.expose()),
    )?;
    write_lines(
        &out.join("login_emails.txt"),
        emails[user_count..].iter().map(String::as_str),
    )?;
    fs::write(out.join("password.txt"), format!("{PASSWORD}\n"))?;
    analyze(&mut conn)?;
    eprintln!(
        "seeded {user_count} users with a session each and {login_users} login users in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Gives PostgreSQL's planner statistics for the rows just inserted, as
/// autovacuum would within a minute in production: without them, the
/// batched check (`token_hash IN (…)`, a generic plan once prepared) was
/// planned for empty tables and cost 36 µs of PostgreSQL CPU per check
/// instead of 16 (31-37k instead of 45k checks/s). InnoDB and SQLite plan
/// these lookups by key either way.
fn analyze(conn: &mut Connection) -> anyhow::Result<()> {
    if let Connection::Postgres(c) = conn {
        use diesel::connection::SimpleConnection as _;
        c.batch_execute("ANALYZE").context("ANALYZE failed")?;
    }
    Ok(())
}

fn time_bcrypt(samples: usize, out: &Path) -> anyhow::Result<()> {
    ensure!(samples > 0, "--samples must be at least 1");
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let hasher = hasher()?;
    let password = || Password::candidate(PASSWORD.to_owned());
    let hash = runtime
        .block_on(hasher.hash(password()))
        .context("bcrypt failed")?;
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        let verified = runtime.block_on(hasher.verify(password(), Some(hash.clone())))?;
        times.push(started.elapsed());
        ensure!(
            verified
                == Verification::Match {
                    upgraded_hash: None
                },
            "the hash does not verify"
        );
    }
    times.sort();
    let median = times[times.len() / 2].as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ceiling = cores as f64 / median;
    fs::write(
        out,
        format!(
            "bcrypt_ms={:.1}\ncores={cores}\nceiling={ceiling:.2}\nsamples={samples}\n",
            median * 1e3
        ),
    )?;
    eprintln!(
        "bcrypt cost {DEFAULT_BCRYPT_COST}: median verification {:.1} ms over {samples} runs → ceiling {ceiling:.2} logins/s on {cores} cores",
        median * 1e3
    );
    Ok(())
}

fn scale(url: &str, total: usize, sample: usize, sample_out: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut conn = connect(url)?;
    let (_, existing) = count_rows(&mut conn)?;
    let existing = usize::try_from(existing)?;
    let Some(missing) = total.checked_sub(existing).filter(|&n| n > 0) else {
        bail!("the table already holds {existing} sessions (≥ --total {total})");
    };
    ensure!(sample > 0, "--sample must be at least 1");
    // Every seeded user shares one hash; reuse it (no bcrypt here).
    let password_hash: String = users::table
        .select(users::password_hash)
        .first(&mut conn)
        .context("no seeded user to copy the password hash from")?;
    let every = (missing / sample).max(1);
    let mut sampled: Vec<String> = Vec::with_capacity(sample);
    let client = client();
    let (created_at, last_updated_at) = seeded_times();
    let batch_sessions = ROWS_PER_INSERT * INSERTS_PER_TRANSACTION;
    let mut done = 0usize;
    let mut last_report = Instant::now();
    while done < missing {
        let n = batch_sessions.min(missing - done);
        let user_ids: Vec<String> = (0..n.div_ceil(SCALE_SESSIONS_PER_USER))
            .map(|_| user_store::new_id())
            .collect();
        let emails: Vec<String> = user_ids
            .iter()
            .map(|id| format!("scale-{id}@bench.example.com"))
            .collect();
        let user_rows: Vec<NewUser<'_>> = user_ids
            .iter()
            .zip(&emails)
            .map(|(id, email)| NewUser {
                id,
                email,
                password_hash: &password_hash,
                admin: false,
                created_at,
                updated_at: created_at,
            })
            .collect();
        let issued: Vec<(SessionToken, TokenDigest, String)> = (0..n)
            .map(|_| {
                let (token, digest) = SessionToken::generate();
                (token, digest, sessions::new_id())
            })
            .collect();
        let session_rows: Vec<NewSession<'_>> = issued
            .iter()
            .enumerate()
            .map(|(i, (_, digest, session_id))| {
                let user_id = &user_ids[i / SCALE_SESSIONS_PER_USER];
                let mut row = NewSession::new(session_id, user_id, digest, &client, created_at);
                row.last_updated_at = last_updated_at;
                row
            })
            .collect();
        on_backend!(&mut conn, |c| c.transaction(|c| {
            for chunk in user_rows.chunks(ROWS_PER_INSERT) {
                diesel::insert_into(users::table).values(chunk).execute(c)?;
            }
            for chunk in session_rows.chunks(ROWS_PER_INSERT) {
                diesel::insert_into(tokens::table)
                    .values(chunk)
                    .execute(c)?;
            }
            QueryResult::Ok(())
        }))?;
        for (i, (token, _, _)) in issued.iter().enumerate() {
            if (done + i).is_multiple_of(every) && sampled.len() < sample {
                sampled.push(token.expose().to_owned());
            }
        }
        done += n;
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "  {done}/{missing} sessions inserted ({:.0} rows/s)",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    write_lines(sample_out, sampled.iter().map(String::as_str))?;
    analyze(&mut conn)?;
    let (users_now, sessions_now) = count_rows(&mut conn)?;
    eprintln!(
        "scale: inserted {missing} sessions in {:.1} s ({:.0} rows/s); now {users_now} users, {sessions_now} sessions; {} sample tokens",
        started.elapsed().as_secs_f64(),
        missing as f64 / started.elapsed().as_secs_f64(),
        sampled.len()
    );
    Ok(())
}

fn refresh(url: &str, token_file: &Path) -> anyhow::Result<()> {
    let mut conn = connect(url)?;
    let file =
        fs::File::open(token_file).with_context(|| format!("failed to open {token_file:?}"))?;
    let mut digests = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let digest = TokenDigest::of_presented(line)
            .map_err(|e| anyhow::anyhow!("bad token in {token_file:?}: {e}"))?;
        digests.push(digest.as_bytes().to_vec());
    }
    let at = now();
    let mut updated = 0;
    for chunk in digests.chunks(1_000) {
        updated += diesel::update(tokens::table.filter(tokens::token_hash.eq_any(chunk)))
            .set(tokens::last_updated_at.eq(at))
            .execute(&mut conn)?;
    }
    ensure!(
        updated == digests.len(),
        "refreshed {updated} sessions for {} tokens",
        digests.len()
    );
    Ok(())
}
