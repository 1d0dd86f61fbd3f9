//! The test harness: a real latchkey on a free port, on a database created
//! for this one test and dropped when the test ends.
//!
//! MySQL tests use `LATCHKEY_TEST_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306`), create `latchkey_test_<random>` there and
//! drop only that database. SQLite tests use a file in a fresh temp dir
//! (never `:memory:`, which gives each pooled connection its own database).

use std::sync::Once;

use chrono::NaiveDateTime;
use diesel::Connection as _;
use diesel::prelude::*;
use latchkey::db::schema::{authentication_tokens, users};
use latchkey::db::{self, DatabaseUrl, Pool, PoolOptions};
use latchkey::settings::Settings;
use latchkey::startup::Application;
use serde_json::{Value, json};

pub const PASSWORD: &str = "correct horse battery staple";

/// A password of `len` characters with no pattern a guesser would try
/// first (repeats like "xxxx…" are refused as too easy to guess).
pub fn varied_password(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ALPHABET[(state >> 33) as usize % ALPHABET.len()] as char
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Mysql,
    Postgres,
    Sqlite,
}

/// Generates one `#[tokio::test]` per backend for each named async fn
/// taking a `Backend`: `name::mysql`, `name::postgres` and `name::sqlite`
/// (the macro kept its name from when there were two).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn mysql() {
                    super::$name($crate::helpers::Backend::Mysql).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            }
        )*
    };
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// A pool on the app's database, for arranging and checking rows.
    pub pool: Pool,
    pub settings: Settings,
    /// `http://127.0.0.1:PORT` of the separate `/metrics` listener, when
    /// `metrics_bind` is set.
    pub metrics_address: Option<String>,
    handle: actix_web::dev::ServerHandle,
    _database: TestDatabase,
}

/// Starts latchkey with test settings (bcrypt cost 4: the minimum bcrypt
/// allows, so that the suite stays fast; the CLI refuses anything below 10).
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_in(TestDatabase::create(backend), configure).await
}

/// Starts latchkey on a database the test manages itself (e.g. on a private
/// server); the harness creates and drops nothing.
pub async fn spawn_app_on(url: DatabaseUrl, configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_in(
        TestDatabase {
            url,
            cleanup: Cleanup::None,
        },
        configure,
    )
    .await
}

async fn spawn_app_in(database: TestDatabase, configure: impl FnOnce(&mut Settings)) -> TestApp {
    init_test_logging();
    let mut settings = Settings::with_defaults(database.url.clone());
    settings.bind = "127.0.0.1:0".into();
    settings.hashing.bcrypt_cost = 4;
    settings.hashing.threads = 2;
    settings.workers = 2;
    // Throttling off, so tests can log in as often as they need; the
    // throttling tests turn it on.
    settings.throttle = latchkey::throttle::ThrottleSettings::default();
    settings.pool = PoolOptions {
        max_size: 8,
        min_idle: Some(1),
        acquire_timeout: std::time::Duration::from_secs(5),
    };
    configure(&mut settings);
    settings.validate().expect("test settings are valid");

    let app = Application::build(settings.clone())
        .await
        .expect("the application starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics_address = app
        .metrics_port()
        .map(|port| format!("http://127.0.0.1:{port}"));
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());

    let pool = db::build_pool(
        &database.url,
        &PoolOptions {
            max_size: 2,
            min_idle: Some(0),
            acquire_timeout: std::time::Duration::from_secs(5),
        },
    );
    TestApp {
        address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a reqwest client"),
        pool,
        settings,
        metrics_address,
        handle,
        _database: database,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop the workers so they release their database connections
        // before the database is dropped.
        drop(self.handle.stop(false));
    }
}

/// A registered user and the token registration returned.
pub struct Registered {
    pub email: String,
    pub password: String,
    pub token: String,
    pub user_id: String,
    pub session_id: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn register(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/auth/register",
            &json!({ "email": email, "password": password }),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/auth/login",
            &json!({ "email": email, "password": password }),
        )
        .await
    }

    /// Registers a fresh user with [`PASSWORD`] and returns its token.
    pub async fn register_user(&self) -> Registered {
        let email = format!("user-{}@example.com", uuid::Uuid::new_v4().simple());
        let response = self.register(&email, PASSWORD).await;
        assert_eq!(response.status(), 201, "registration failed");
        let body: Value = response.json().await.expect("JSON body");
        Registered {
            email,
            password: PASSWORD.to_owned(),
            token: body["token"].as_str().expect("token").to_owned(),
            user_id: body["user"]["id"].as_str().expect("user id").to_owned(),
            session_id: body["session_id"].as_str().expect("session id").to_owned(),
        }
    }

    /// Logs in and returns the new token.
    pub async fn login_token(&self, email: &str, password: &str) -> String {
        let response = self.login(email, password).await;
        assert_eq!(response.status(), 200, "login failed");
        let body: Value = response.json().await.expect("JSON body");
        body["token"].as_str().expect("token").to_owned()
    }

    /// Sends `method path` with the bearer token and, if given, a JSON body.
    pub async fn with_token(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        let request = match body {
            Some(body) => request.json(body),
            None => request,
        };
        request.send().await.expect("request sent")
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> reqwest::Response {
        self.with_token(reqwest::Method::GET, path, token, None)
            .await
    }

    pub async fn status(&self, token: &str) -> reqwest::Response {
        self.get_with_token("/auth/status", token).await
    }

    pub async fn post_with_token(&self, path: &str, token: &str) -> reqwest::Response {
        self.with_token(reqwest::Method::POST, path, token, None)
            .await
    }

    pub async fn delete_with_token(&self, path: &str, token: &str) -> reqwest::Response {
        self.with_token(reqwest::Method::DELETE, path, token, None)
            .await
    }

    pub async fn put_json_with_token(
        &self,
        path: &str,
        token: &str,
        body: &Value,
    ) -> reqwest::Response {
        self.with_token(reqwest::Method::PUT, path, token, Some(body))
            .await
    }

    pub async fn patch_json_with_token(
        &self,
        path: &str,
        token: &str,
        body: &Value,
    ) -> reqwest::Response {
        self.with_token(reqwest::Method::PATCH, path, token, Some(body))
            .await
    }

    /// Registers a fresh user and gives them the admin flag in the database.
    pub async fn register_admin(&self) -> Registered {
        let admin = self.register_user().await;
        self.make_admin(&admin.user_id).await;
        admin
    }

    /// Sets `users.admin = true` directly in the database.
    pub async fn make_admin(&self, user_id: &str) {
        let user_id = user_id.to_owned();
        let updated = self
            .with_db(move |conn| {
                diesel::update(users::table.find(user_id))
                    .set(users::admin.eq(true))
                    .execute(conn)
                    .expect("update")
            })
            .await;
        assert_eq!(updated, 1, "no such user row");
    }

    /// The stored admin flag of a user, or `None` if the row is gone.
    pub async fn admin_flag(&self, user_id: &str) -> Option<bool> {
        let user_id = user_id.to_owned();
        self.with_db(move |conn| {
            users::table
                .find(user_id)
                .select(users::admin)
                .first(conn)
                .optional()
                .expect("select")
        })
        .await
    }

    /// Inserts a user row directly (no bcrypt, no HTTP): for tests that
    /// need many users. The user cannot log in. Returns the id.
    pub async fn insert_user(&self, email: &str) -> String {
        let email = email.to_owned();
        self.with_db(move |conn| insert_user_row(conn, &email))
            .await
    }

    /// Inserts a live session row for a user directly, as a login would.
    /// Returns `(session_id, token)`.
    pub async fn insert_session(&self, user_id: &str) -> (String, String) {
        let user_id = user_id.to_owned();
        self.with_db(move |conn| insert_session_row(conn, &user_id))
            .await
    }

    /// The Prometheus text of `GET /metrics` on the API's port.
    pub async fn metrics_text(&self) -> String {
        let response = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), 200, "GET /metrics");
        response.text().await.expect("a body")
    }

    /// Runs diesel code against the app's database on a blocking thread.
    pub async fn with_db<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut db::Connection) -> T + Send + 'static,
    ) -> T {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().expect("a test database connection");
            work(&mut conn)
        })
        .await
        .expect("the database task ran")
    }

    /// Every row of `authentication_tokens` for a user.
    /// When the user was suspended (`users.disabled_at`), if they are.
    pub async fn disabled_at(&self, user_id: &str) -> Option<NaiveDateTime> {
        let user_id = user_id.to_owned();
        self.with_db(move |conn| {
            users::table
                .find(user_id)
                .select(users::disabled_at)
                .first(conn)
                .expect("the user row")
        })
        .await
    }

    pub async fn session_rows(&self, user_id: &str) -> Vec<SessionRow> {
        let user_id = user_id.to_owned();
        self.with_db(move |conn| {
            authentication_tokens::table
                .filter(authentication_tokens::user_id.eq(user_id))
                .order(authentication_tokens::created_at.asc())
                .select(SessionRow::as_select())
                .load(conn)
                .expect("session rows")
        })
        .await
    }

    pub async fn count_sessions(&self) -> i64 {
        self.with_db(|conn| {
            authentication_tokens::table
                .count()
                .get_result(conn)
                .expect("count")
        })
        .await
    }

    pub async fn count_users(&self) -> i64 {
        self.with_db(|conn| users::table.count().get_result(conn).expect("count"))
            .await
    }

    /// Moves a session's timestamps, to simulate the passage of time.
    pub async fn set_session_times(
        &self,
        session_id: &str,
        created_at: NaiveDateTime,
        last_updated_at: NaiveDateTime,
    ) {
        let session_id = session_id.to_owned();
        let updated = self
            .with_db(move |conn| {
                diesel::update(authentication_tokens::table.find(session_id))
                    .set((
                        authentication_tokens::created_at.eq(created_at),
                        authentication_tokens::last_updated_at.eq(last_updated_at),
                    ))
                    .execute(conn)
                    .expect("update")
            })
            .await;
        assert_eq!(updated, 1, "no such session row");
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = authentication_tokens)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub token_hash: Vec<u8>,
    pub created_at: NaiveDateTime,
    pub last_updated_at: NaiveDateTime,
    pub user_agent: Option<String>,
    pub label: Option<String>,
}

/// Checks that a response is the JSON error `{"error": code, "message": …}`
/// with the given status, and returns the body.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    let actual = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("a body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type:?}; body: {text}"
    );
    let body: Value = serde_json::from_str(&text).expect("a JSON error body");
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

/// The value of the sample `name{labels}` in a Prometheus text exposition
/// (labels compared as a set, whatever their order), if it is there.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    wanted.sort_unstable();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (sample, mut present) = match series.split_once('{') {
                Some((sample, rest)) => (
                    sample,
                    rest.trim_end_matches('}')
                        .split(',')
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned)
                        .collect::<Vec<_>>(),
                ),
                None => (series, Vec::new()),
            };
            present.sort_unstable();
            (sample == name && present == wanted).then(|| value.parse().ok())?
        })
}

/// Polls `check` every 50 ms until it holds or `timeout` passes; returns
/// whether it held. For background work (the reaper), never as a timing
/// assertion.
pub async fn eventually<F, Fut>(timeout: std::time::Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The current UTC time, truncated to whole seconds so that it survives a
/// round trip through either database unchanged.
pub fn now_seconds() -> NaiveDateTime {
    use chrono::SubsecRound as _;
    chrono::Utc::now().naive_utc().trunc_subsecs(0)
}

/// Parses a timestamp of the API, which must be RFC 3339 UTC ending in `Z`.
pub fn api_time(value: &Value) -> NaiveDateTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a string"));
    assert!(text.ends_with('Z'), "{text} does not end in Z");
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text} is not RFC 3339: {e}"))
        .naive_utc()
}

/// See [`TestApp::insert_user`].
pub fn insert_user_row(conn: &mut db::Connection, email: &str) -> String {
    let id = latchkey::store::users::new_id();
    let now = latchkey::domain::now();
    latchkey::store::users::insert(
        conn,
        &latchkey::store::users::NewUser {
            id: &id,
            email,
            password_hash: "$2b$04$not.a.real.hash.for.tests.only.................",
            admin: false,
            created_at: now,
            updated_at: now,
        },
    )
    .expect("user inserted");
    id
}

/// See [`TestApp::insert_session`].
pub fn insert_session_row(conn: &mut db::Connection, user_id: &str) -> (String, String) {
    // The first release's columns only: the upgrade tests insert with this
    // before the later migrations ran.
    let (token, digest) = latchkey::domain::SessionToken::generate();
    let id = latchkey::store::sessions::new_id();
    let now = latchkey::domain::now();
    diesel::insert_into(authentication_tokens::table)
        .values((
            authentication_tokens::id.eq(&id),
            authentication_tokens::user_id.eq(user_id),
            authentication_tokens::token_hash.eq(digest.as_bytes()),
            authentication_tokens::created_at.eq(now),
            authentication_tokens::last_updated_at.eq(now),
        ))
        .execute(conn)
        .expect("session inserted");
    (id, token.expose().to_owned())
}

/// Starts latchkey on a database that had only the first release's schema
/// (its first migration) when `arrange` ran on it: latchkey applies the
/// later migrations as it starts, as an upgrade in production does.
pub async fn spawn_app_upgraded<T>(
    backend: Backend,
    arrange: impl FnOnce(&mut db::Connection) -> T,
) -> (TestApp, T) {
    use diesel_migrations::{EmbeddedMigrations, MigrationHarness as _, embed_migrations};
    const MYSQL: EmbeddedMigrations = embed_migrations!("migrations/mysql");
    const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");
    const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
    let database = TestDatabase::create(backend);
    let mut conn = db::connect(&database.url).expect("a connection to the test database");
    match &mut conn {
        db::Connection::Mysql(c) => c.run_next_migration(MYSQL).map(drop),
        db::Connection::Postgres(c) => c.run_next_migration(POSTGRES).map(drop),
        db::Connection::Sqlite(c) => c.run_next_migration(SQLITE).map(drop),
    }
    .expect("the first migration applied");
    let arranged = arrange(&mut conn);
    drop(conn);
    (spawn_app_in(database, |_| {}).await, arranged)
}

/// A database that exists for one test only (dropped with this value).
pub struct TestDatabase {
    url: DatabaseUrl,
    cleanup: Cleanup,
}

enum Cleanup {
    None,
    Mysql { server: String, name: String },
    Postgres { server: String, name: String },
    Sqlite { _dir: tempfile::TempDir },
}

impl TestDatabase {
    /// The database's URL, as `DATABASE_URL` takes it.
    pub fn url_string(&self) -> String {
        crate::cli::database_url_string(&self.url)
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    pub fn create(backend: Backend) -> Self {
        match backend {
            Backend::Mysql => {
                let server = mysql_server_url();
                let name = format!("latchkey_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = diesel::MysqlConnection::establish(&server)
                    .unwrap_or_else(|e| panic!("cannot reach MySQL at {server}: {e}"));
                diesel::sql_query(format!("CREATE DATABASE `{name}`"))
                    .execute(&mut conn)
                    .expect("CREATE DATABASE");
                Self {
                    url: DatabaseUrl::Mysql(format!("{server}/{name}")),
                    cleanup: Cleanup::Mysql { server, name },
                }
            }
            Backend::Postgres => {
                let server = postgres_server_url();
                let name = format!("latchkey_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = diesel::PgConnection::establish(&format!("{server}/postgres"))
                    .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {server}: {e}"));
                diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut conn)
                    .expect("CREATE DATABASE");
                Self {
                    url: DatabaseUrl::Postgres(format!("{server}/{name}")),
                    cleanup: Cleanup::Postgres { server, name },
                }
            }
            Backend::Sqlite => {
                let dir = tempfile::Builder::new()
                    .prefix("latchkey-test-")
                    .tempdir()
                    .expect("a temp dir");
                let path = dir.path().join("latchkey.sqlite3");
                Self {
                    url: DatabaseUrl::Sqlite(path.to_string_lossy().into_owned()),
                    cleanup: Cleanup::Sqlite { _dir: dir },
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Only ever the database this harness created.
        match &self.cleanup {
            Cleanup::Mysql { server, name } => {
                if let Ok(mut conn) = diesel::MysqlConnection::establish(server) {
                    let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS `{name}`"))
                        .execute(&mut conn);
                }
            }
            Cleanup::Postgres { server, name } => {
                if let Ok(mut conn) = diesel::PgConnection::establish(&format!("{server}/postgres"))
                {
                    // WITH (FORCE): a pooled connection of the stopped app may
                    // not have closed yet.
                    let _ = diesel::sql_query(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    ))
                    .execute(&mut conn);
                }
            }
            Cleanup::None | Cleanup::Sqlite { .. } => {}
        }
    }
}

/// `LATCHKEY_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432`
/// (trust authentication on this machine): a server, no database.
fn postgres_server_url() -> String {
    std::env::var("LATCHKEY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
        .trim_end_matches('/')
        .to_owned()
}

fn mysql_server_url() -> String {
    std::env::var("LATCHKEY_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// Logs stay silent unless `TEST_LOG` is set.
fn init_test_logging() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .with_test_writer()
                .try_init();
        }
    });
}
