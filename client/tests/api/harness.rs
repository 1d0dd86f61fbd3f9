//! A real latchkey, started in the test process on a free port, on a
//! database created for the one test and dropped when it ends.
//!
//! Shared by the tests of `latchkey-client` and of `examples/bookstore`
//! (which include this file by path), so both start latchkey the same way.
//! MySQL tests use `LATCHKEY_TEST_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306`), PostgreSQL tests use
//! `LATCHKEY_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432`);
//! each creates `<package>_test_<random>` on that server and drops only that
//! database. SQLite tests use a file in a fresh temp dir.

use diesel::prelude::*;
use latchkey::db::schema::{authentication_tokens, users};
use latchkey::db::{self, DatabaseUrl, Pool, PoolOptions};
use latchkey::domain::ServiceKeys;
use latchkey::settings::Settings;
use latchkey::startup::Application;
use serde_json::{Value, json};

/// The service key latchkey accepts for introspection.
pub const SERVICE_KEY: &str = "service-key-for-tests-0123456789abcdefghijkl";

pub const PASSWORD: &str = "correct horse battery staple";

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
                    super::$name($crate::harness::Backend::Mysql).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::harness::Backend::Postgres).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::harness::Backend::Sqlite).await
                }
            }
        )*
    };
}

/// A running latchkey and a pool on its database.
pub struct Latchkey {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    pub settings: Settings,
    http: reqwest::Client,
    pool: Pool,
    handle: actix_web::dev::ServerHandle,
    _database: TestDatabase,
}

/// A user registered at latchkey, with the token registration returned.
pub struct User {
    pub email: String,
    pub user_id: String,
    pub session_id: String,
    pub token: String,
}

impl Latchkey {
    /// Starts latchkey with test settings: bcrypt cost 4, no throttling,
    /// and [`SERVICE_KEY`] as its one introspection key.
    pub async fn start(backend: Backend) -> Self {
        let database = TestDatabase::create(backend);
        let mut settings = Settings::with_defaults(database.url.clone());
        settings.bind = "127.0.0.1:0".into();
        settings.hashing.bcrypt_cost = 4;
        settings.hashing.threads = 2;
        // One worker, so that `stop` can tell when it has closed every
        // connection (see there).
        settings.workers = 1;
        settings.throttle = latchkey::throttle::ThrottleSettings::default();
        settings.introspect_keys =
            ServiceKeys::parse(&[SERVICE_KEY.to_owned()]).expect("a valid service key");
        settings.pool = PoolOptions {
            max_size: 8,
            min_idle: Some(1),
            acquire_timeout: std::time::Duration::from_secs(5),
        };
        settings.validate().expect("test settings are valid");

        let app = Application::build(settings.clone())
            .await
            .expect("latchkey starts");
        let address = format!("http://127.0.0.1:{}", app.port());
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
        Self {
            address,
            settings,
            http: reqwest::Client::new(),
            pool,
            handle,
            _database: database,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Stops latchkey at once; its database stays until the end of the
    /// test. Returns once nothing answers any more: a forced stop closes the
    /// listener at once, but the worker closes its open connections (such as
    /// the ones a client under test keeps alive) only when it next runs. So
    /// a connection of our own is held open across the stop, and used until
    /// it fails.
    pub async fn stop(&self) {
        let probe = || self.http.get(self.url("/healthz")).send();
        assert!(probe().await.is_ok(), "latchkey answers before the stop");
        self.handle.stop(false).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while probe().await.is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "latchkey still answers 10 s after the stop"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut request = self.http.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("latchkey answers")
    }

    /// Registers a fresh user with [`PASSWORD`].
    pub async fn register_user(&self) -> User {
        let email = format!("user-{}@example.com", uuid::Uuid::new_v4().simple());
        let response = self
            .post(
                "/auth/register",
                None,
                &json!({ "email": email, "password": PASSWORD }),
            )
            .await;
        assert_eq!(response.status(), 201, "registration failed");
        let body: Value = response.json().await.expect("a JSON body");
        User {
            email,
            user_id: body["user"]["id"].as_str().expect("user id").to_owned(),
            session_id: body["session_id"].as_str().expect("session id").to_owned(),
            token: body["token"].as_str().expect("token").to_owned(),
        }
    }

    /// Registers a fresh user and gives them the admin flag in latchkey's
    /// database, as `latchkey user set-admin` would.
    pub async fn register_admin(&self) -> User {
        let admin = self.register_user().await;
        let user_id = admin.user_id.clone();
        let updated = self
            .with_db(move |conn| {
                diesel::update(users::table.find(user_id))
                    .set(users::admin.eq(true))
                    .execute(conn)
                    .expect("the admin flag is set")
            })
            .await;
        assert_eq!(updated, 1, "no such user row");
        admin
    }

    /// Logs in again and returns the new session's token.
    pub async fn login(&self, email: &str) -> String {
        let response = self
            .post(
                "/auth/login",
                None,
                &json!({ "email": email, "password": PASSWORD }),
            )
            .await;
        assert_eq!(response.status(), 200, "login failed");
        let body: Value = response.json().await.expect("a JSON body");
        body["token"].as_str().expect("token").to_owned()
    }

    /// Ends the token's session at latchkey.
    pub async fn logout(&self, token: &str) {
        let response = self.post("/auth/logout", Some(token), &json!({})).await;
        assert_eq!(response.status(), 204, "logout failed");
    }

    /// The `iat` and `exp` latchkey's session row stands for now (Unix
    /// seconds): its creation, and the earlier of idle and absolute expiry.
    pub async fn session_claims(&self, session_id: &str) -> (i64, i64) {
        let session_id = session_id.to_owned();
        let (created_at, last_updated_at) = self
            .with_db(move |conn| {
                authentication_tokens::table
                    .find(session_id)
                    .select((
                        authentication_tokens::created_at,
                        authentication_tokens::last_updated_at,
                    ))
                    .first(conn)
                    .expect("the session row")
            })
            .await;
        let expires_at = self
            .settings
            .session
            .expires_at(created_at, last_updated_at);
        (
            created_at.and_utc().timestamp(),
            expires_at.and_utc().timestamp(),
        )
    }

    /// How many `POST /auth/introspect` requests latchkey has served, by its
    /// own `/metrics` (`latchkey_http_requests_total`, all statuses). The
    /// count is taken once it is stable: the middleware counts a request
    /// when its body is dropped, which may be just after the client read it.
    pub async fn introspections_served(&self) -> u64 {
        let mut last = self.introspection_count().await;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let now = self.introspection_count().await;
            if now == last {
                return now;
            }
            last = now;
        }
    }

    async fn introspection_count(&self) -> u64 {
        let response = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("latchkey answers");
        assert_eq!(response.status(), 200, "GET /metrics");
        let text = response.text().await.expect("a body");
        text.lines()
            .filter(|line| {
                line.starts_with("latchkey_http_requests_total{")
                    && line.contains("endpoint=\"/auth/introspect\"")
                    && line.contains("method=\"POST\"")
            })
            .map(|line| {
                let (_, value) = line.rsplit_once(' ').expect("a sample value");
                value.parse::<u64>().expect("a whole count")
            })
            .sum()
    }

    async fn with_db<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut db::Connection) -> T + Send + 'static,
    ) -> T {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().expect("a connection to latchkey's database");
            work(&mut conn)
        })
        .await
        .expect("the database task ran")
    }
}

impl Drop for Latchkey {
    fn drop(&mut self) {
        // The workers must release their connections before the database
        // is dropped.
        drop(self.handle.stop(false));
    }
}

/// `http://127.0.0.1:PORT` where nothing listens: a latchkey that is down.
pub fn closed_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("its address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// A database that exists for one test only.
struct TestDatabase {
    url: DatabaseUrl,
    cleanup: Cleanup,
}

enum Cleanup {
    Mysql { server: String, name: String },
    Postgres { server: String, name: String },
    Sqlite { _dir: tempfile::TempDir },
}

impl TestDatabase {
    fn create(backend: Backend) -> Self {
        match backend {
            Backend::Mysql => {
                let server = std::env::var("LATCHKEY_TEST_MYSQL_URL")
                    .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned())
                    .trim_end_matches('/')
                    .to_owned();
                let name = database_name();
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
                let server = std::env::var("LATCHKEY_TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
                    .trim_end_matches('/')
                    .to_owned();
                let name = database_name();
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

/// `<package>_test_<random>`, e.g. `latchkey_client_test_…`.
fn database_name() -> String {
    format!(
        "{}_test_{}",
        env!("CARGO_PKG_NAME").replace('-', "_"),
        uuid::Uuid::new_v4().simple()
    )
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
                    // WITH (FORCE): a pooled connection of the stopped
                    // latchkey may not have closed yet.
                    let _ = diesel::sql_query(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    ))
                    .execute(&mut conn);
                }
            }
            Cleanup::Sqlite { .. } => {}
        }
    }
}
