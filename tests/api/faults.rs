//! Database faults: a private MariaDB (its own data dir and port, never the
//! machine's shared server) is stopped under the service and started again.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::Connection as _;
use latchkey::db::DatabaseUrl;
use serde_json::Value;

use crate::helpers::{PASSWORD, TestApp, spawn_app_on};

/// A throw-away mariadbd. Stopped (and its data dir removed) on drop.
struct PrivateMariaDb {
    dir: tempfile::TempDir,
    port: u16,
    server: Option<Child>,
}

impl PrivateMariaDb {
    fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("latchkey-mariadb-")
            .tempdir()
            .unwrap();
        let status = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .arg(format!("--datadir={}", data_dir(dir.path()).display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("mariadb-install-db runs");
        assert!(status.success(), "mariadb-install-db failed");
        let port = free_port();
        let mut db = Self {
            dir,
            port,
            server: None,
        };
        db.resume();
        db
    }

    fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// Starts mariadbd on the same data dir and port and waits until it answers.
    fn resume(&mut self) {
        let dir = self.dir.path();
        let child = Command::new("/usr/sbin/mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data_dir(dir).display()))
            .arg(format!("--socket={}", dir.join("mysqld.sock").display()))
            .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
            .arg(format!("--port={}", self.port))
            .args([
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=16M",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd starts");
        self.server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while diesel::MysqlConnection::establish(&self.url()).is_err() {
            assert!(
                Instant::now() < deadline,
                "the private mariadbd did not come up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops mariadbd (SIGTERM, then waits for it to exit).
    fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        self.stop();
    }
}

fn data_dir(dir: &Path) -> PathBuf {
    dir.join("data")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `GET path` with `token` until it answers `status`, for up to `limit`.
async fn wait_for_status(
    app: &TestApp,
    path: &str,
    token: &str,
    status: u16,
    limit: Duration,
) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let response = app
            .client
            .get(app.url(path))
            .bearer_auth(token)
            .send()
            .await;
        if response.is_ok_and(|r| r.status() == status) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_and_the_service_recovers_with_sessions_intact() {
    // Arrange: the app on a private server, with a short acquire timeout.
    let mut mariadb = tokio::task::spawn_blocking(PrivateMariaDb::start)
        .await
        .unwrap();
    let mut admin = diesel::MysqlConnection::establish(&mariadb.url()).unwrap();
    diesel::RunQueryDsl::execute(diesel::sql_query("CREATE DATABASE latchkey"), &mut admin)
        .unwrap();
    drop(admin);
    let app = spawn_app_on(
        DatabaseUrl::Mysql(format!("{}/latchkey", mariadb.url())),
        |s| {
            s.pool.acquire_timeout = Duration::from_millis(500);
        },
    )
    .await;
    let user = app.register_user().await;
    assert_eq!(app.status(&user.token).await.status(), 200);

    // Act: the database goes away.
    let mariadb = tokio::task::spawn_blocking(move || {
        mariadb.stop();
        mariadb
    })
    .await
    .unwrap();

    // Assert: JSON 503s with Retry-After, never a 500 or a hang; the process lives.
    // Under load: 24 token checks at once, then a second wave.
    for _ in 0..2 {
        let checks: Vec<_> = (0..24)
            .map(|_| {
                let request = app
                    .client
                    .get(app.url("/auth/status"))
                    .bearer_auth(&user.token);
                tokio::spawn(async move {
                    let response = request.send().await.unwrap();
                    let status = response.status().as_u16();
                    let retry_after = response.headers().get("retry-after").cloned();
                    let body: Value = response.json().await.unwrap();
                    (status, retry_after, body)
                })
            })
            .collect();
        for check in checks {
            let (status, retry_after, body) = check.await.unwrap();
            assert_eq!(status, 503);
            assert_eq!(retry_after.unwrap(), "1");
            assert_eq!(body["error"], "service_unavailable");
        }
    }
    let login = app.login(&user.email, PASSWORD).await;
    assert_eq!(login.status(), 503);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    // Act: the database comes back.
    let mut mariadb = mariadb;
    let mariadb = tokio::task::spawn_blocking(move || {
        mariadb.resume();
        mariadb
    })
    .await
    .unwrap();

    // Assert: recovery without a restart, and the old session still works.
    assert!(
        wait_for_status(
            &app,
            "/auth/status",
            &user.token,
            200,
            Duration::from_secs(20)
        )
        .await,
        "the service did not recover"
    );
    assert!(wait_for_status(&app, "/readyz", "", 200, Duration::from_secs(5)).await);
    assert_eq!(app.login(&user.email, PASSWORD).await.status(), 200);
    drop(app);
    drop(mariadb);
}
