//! Answers that said "done" stay done: latchkey is killed with SIGKILL right
//! after a logout, a logout-all, a revocation, a password change and a
//! suspension answered, and on restart none of them has come undone. (The
//! database server itself is not crashed here: SQLite commits with
//! `synchronous = FULL`, so a commit is on disk before it returns; MySQL and
//! PostgreSQL rely on their durable-commit settings, see the README.)

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, TestDatabase};
use crate::receivers::free_port;

crate::on_both_backends!(acknowledged_revocations_survive_a_sigkill_of_latchkey);

/// `latchkey serve` as a child process on a given database.
struct Service {
    child: Child,
    base: String,
}

impl Service {
    fn start(database: &TestDatabase) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .arg("serve")
            .env_clear()
            .env("DATABASE_URL", database.url_string())
            .env("LATCHKEY_BIND", format!("127.0.0.1:{port}"))
            .env("LATCHKEY_BCRYPT_COST", "10")
            .env("LATCHKEY_WORKERS", "2")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("latchkey starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "latchkey did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: no shutdown, no flush, nothing of latchkey's runs after it.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL sent");
        self.child.wait().expect("the child is reaped");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn register(http: &Client, service: &Service, email: &str) -> (String, String) {
    let body: Value = http
        .post(service.url("/auth/register"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        body["token"].as_str().expect("a token").to_owned(),
        body["user"]["id"].as_str().expect("an id").to_owned(),
    )
}

async fn login(http: &Client, service: &Service, email: &str, password: &str) -> reqwest::Response {
    http.post(service.url("/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

async fn status(http: &Client, service: &Service, token: &str) -> u16 {
    http.get(service.url("/auth/status"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn acknowledged_revocations_survive_a_sigkill_of_latchkey(backend: Backend) {
    // Arrange
    let database = TestDatabase::create(backend);
    let http = Client::new();
    let service = Service::start(&database);
    let (logged_out, _) = register(&http, &service, "logout@example.com").await;
    let (everywhere, _) = register(&http, &service, "everywhere@example.com").await;
    let everywhere_2 = login(&http, &service, "everywhere@example.com", PASSWORD).await;
    let everywhere_2: Value = everywhere_2.json().await.unwrap();
    let everywhere_2 = everywhere_2["token"].as_str().unwrap().to_owned();
    let (changer, _) = register(&http, &service, "changer@example.com").await;
    let changer_other: Value = login(&http, &service, "changer@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let changer_other = changer_other["token"].as_str().unwrap().to_owned();
    let (suspended, suspended_id) = register(&http, &service, "suspended@example.com").await;
    let (revoker, _) = register(&http, &service, "revoker@example.com").await;
    let revoked: Value = login(&http, &service, "revoker@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let revoked_session = revoked["session_id"].as_str().unwrap().to_owned();
    let revoked = revoked["token"].as_str().unwrap().to_owned();
    // An admin, made directly in the database (the CLI's way would need a password on stdin).
    let (admin, admin_id) = register(&http, &service, "admin@example.com").await;
    {
        use diesel::prelude::*;
        use latchkey::db::schema::users;
        let mut conn = latchkey::db::connect(database.url()).unwrap();
        diesel::update(users::table.find(&admin_id))
            .set(users::admin.eq(true))
            .execute(&mut conn)
            .unwrap();
    }

    // Act: every answer is a success, and the process dies right after the last.
    let answers = [
        http.post(service.url("/auth/logout")).bearer_auth(&logged_out).send().await.unwrap().status(),
        http.post(service.url("/auth/logout-all")).bearer_auth(&everywhere).send().await.unwrap().status(),
        http.delete(service.url(&format!("/auth/sessions/{revoked_session}")))
            .bearer_auth(&revoker)
            .send()
            .await
            .unwrap()
            .status(),
        http.put(service.url("/auth/password"))
            .bearer_auth(&changer)
            .json(&json!({ "current_password": PASSWORD, "new_password": "a brand new and long passphrase" }))
            .send()
            .await
            .unwrap()
            .status(),
        http.patch(service.url(&format!("/admin/users/{suspended_id}")))
            .bearer_auth(&admin)
            .json(&json!({ "disabled": true }))
            .send()
            .await
            .unwrap()
            .status(),
    ];
    service.kill();
    assert_eq!(answers.map(|s| s.as_u16()), [204, 204, 204, 204, 200]);

    // Assert: a new process on the same database sees every one of them.
    let service = Service::start(&database);
    for token in [
        &logged_out,
        &everywhere,
        &everywhere_2,
        &revoked,
        &changer_other,
        &suspended,
    ] {
        assert_eq!(
            status(&http, &service, token).await,
            401,
            "a revoked session came back"
        );
    }
    assert_eq!(
        status(&http, &service, &changer).await,
        200,
        "the changer's own session stays"
    );
    assert_eq!(
        login(&http, &service, "changer@example.com", PASSWORD)
            .await
            .status(),
        401
    );
    assert_eq!(
        login(
            &http,
            &service,
            "changer@example.com",
            "a brand new and long passphrase"
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        login(&http, &service, "suspended@example.com", PASSWORD)
            .await
            .status(),
        401
    );
    service.kill();
}
