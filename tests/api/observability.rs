//! Request ids, the per-request log line, secrets kept out of the logs, and
//! graceful shutdown. The log and shutdown tests run the real binary.

use std::collections::BTreeSet;
use std::io::BufRead as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use diesel::prelude::*;
use hmac::Mac as _;
use latchkey::db::DatabaseUrl;
use latchkey::db::schema::users;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::helpers::{Backend, metric, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    a_sane_request_id_is_returned_unchanged_on_every_kind_of_response,
    a_missing_or_unacceptable_request_id_is_replaced_by_a_fresh_uuid,
);

const REQUEST_ID: &str = "x-request-id";

fn request_id_of(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(REQUEST_ID)
        .expect("an X-Request-Id header")
        .to_str()
        .expect("an ASCII request id")
        .to_owned()
}

async fn a_sane_request_id_is_returned_unchanged_on_every_kind_of_response(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let longest = "r".repeat(128);
    let cases = [
        (reqwest::Method::GET, "/healthz", "abc-123_X.y", 200),
        (reqwest::Method::GET, "/auth/status", "trace.0001", 401),
        (
            reqwest::Method::GET,
            "/no-such-route",
            "UPPER-lower_09",
            404,
        ),
        (reqwest::Method::POST, "/healthz", longest.as_str(), 405),
    ];

    for (method, path, id, status) in cases {
        // Act
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .header(REQUEST_ID, id)
            .send()
            .await
            .unwrap();

        // Assert
        assert_eq!(response.status(), status, "{method} {path}");
        assert_eq!(request_id_of(&response), id, "{method} {path}");
    }
}

async fn a_missing_or_unacceptable_request_id_is_replaced_by_a_fresh_uuid(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let too_long = "a".repeat(200);
    let just_too_long = "b".repeat(129);
    let sent: [Option<&str>; 7] = [
        None,
        Some("has space"),
        Some(too_long.as_str()),
        Some(just_too_long.as_str()),
        Some("quote\"d"),
        Some("semi;colon"),
        Some(""),
    ];
    let mut returned = BTreeSet::new();

    for value in sent {
        // Act
        let mut request = app.client.get(app.url("/healthz"));
        if let Some(value) = value {
            request = request.header(REQUEST_ID, value);
        }
        let response = request.send().await.unwrap();

        // Assert
        assert_eq!(response.status(), 200);
        let id = request_id_of(&response);
        assert_ne!(Some(id.as_str()), value);
        let uuid = uuid::Uuid::parse_str(&id).unwrap_or_else(|e| panic!("{id:?}: {e}"));
        assert_eq!(uuid.to_string(), id, "not a hyphenated lower-case UUID");
        returned.insert(id);
    }
    assert_eq!(
        returned.len(),
        sent.len(),
        "request ids repeat: {returned:?}"
    );
}

/// `latchkey serve` as a child process, its stderr collected line by line.
struct Server {
    child: Child,
    address: String,
    stderr: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
    database: DatabaseUrl,
}

impl Server {
    fn start(extra_env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latchkey.sqlite3");
        let url = format!("sqlite://{}", path.display());
        let mut child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .arg("serve")
            .env_clear()
            .env("DATABASE_URL", &url)
            .env("LATCHKEY_BIND", "127.0.0.1:0")
            .env("LATCHKEY_LOG_FORMAT", "json")
            .env("RUST_LOG", "debug")
            .env("LATCHKEY_WORKERS", "2")
            .env("LATCHKEY_BCRYPT_THREADS", "2")
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("latchkey starts");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (found, listening) = mpsc::channel();
        let pipe = child.stderr.take().expect("stderr");
        let lines = Arc::clone(&stderr);
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Ok(event) = serde_json::from_str::<Value>(&line)
                    && event["message"] == "latchkey is listening"
                    && let Some(address) = event["address"].as_str()
                {
                    let _ = found.send(address.to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let address = match listening.recv_timeout(Duration::from_secs(60)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "latchkey never said it was listening:\n{}",
                    stderr.lock().unwrap().join("\n")
                );
            }
        };
        Self {
            child,
            address: format!("http://{address}"),
            stderr,
            reader: Some(reader),
            _dir: dir,
            database: DatabaseUrl::Sqlite(path.to_string_lossy().into_owned()),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits (bounded) for the process to exit after a SIGTERM, then for
    /// the last of its stderr.
    fn wait_for_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("latchkey did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the stderr reader");
        }
        status
    }

    /// The first log event matching `wanted`, waiting (bounded) for it.
    fn wait_for_event(&self, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .log()
                .iter()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .find(|event| wanted(event));
            if let Some(event) = found {
                return event;
            }
            assert!(
                Instant::now() < deadline,
                "no such log event:\n{}",
                self.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    fn database_url(&self) -> String {
        crate::cli::database_url_string(&self.database)
    }

    fn password_hashes(&self) -> Vec<String> {
        let mut conn = latchkey::db::connect(&self.database).expect("the database");
        users::table
            .select(users::password_hash)
            .load::<String>(&mut conn)
            .expect("hashes")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only this child, and only if a failed assertion left it running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends a request and records its request id and status.
async fn send(log: &mut Vec<(String, u16)>, request: reqwest::RequestBuilder) -> reqwest::Response {
    let response = request.send().await.expect("request sent");
    log.push((request_id_of(&response), response.status().as_u16()));
    response
}

/// Every way a secret could be written down: as is, and a digest of it in
/// hex and base64.
fn digest_forms(secret: &str) -> Vec<String> {
    let digest = Sha256::digest(secret.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        hex.clone(),
        hex.to_uppercase(),
        STANDARD.encode(digest),
        STANDARD_NO_PAD.encode(digest),
        URL_SAFE.encode(digest),
        URL_SAFE_NO_PAD.encode(digest),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logs_of_a_full_flow_hold_no_secret_and_one_line_per_request() {
    // Arrange
    let service_key = format!("svc-{}", uuid::Uuid::new_v4().simple());
    let pepper = format!("pepper-{}", uuid::Uuid::new_v4().simple());
    let mut server = Server::start(&[
        ("LATCHKEY_BCRYPT_COST", "10"),
        ("LATCHKEY_INTROSPECT_KEYS", &service_key),
        ("LATCHKEY_PEPPER", &pepper),
    ]);
    let client = reqwest::Client::new();
    let email = format!("flow-{}@example.com", uuid::Uuid::new_v4().simple());
    let password = format!("first-password-{}", uuid::Uuid::new_v4().simple());
    let new_password = format!("second-password-{}", uuid::Uuid::new_v4().simple());
    let wrong_password = format!("wrong-password-{}", uuid::Uuid::new_v4().simple());
    let (unknown_token, _) = latchkey::domain::SessionToken::generate();
    let unknown_token = unknown_token.expose().to_owned();
    let mut requests = Vec::new();
    let mut tokens = Vec::new();
    let mut hashes = BTreeSet::new();

    // Act: a full flow.
    let response = send(
        &mut requests,
        client
            .post(server.url("/auth/register"))
            .json(&json!({ "email": email, "password": password })),
    )
    .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let first = body["token"].as_str().unwrap().to_owned();
    let admin_id = body["user"]["id"].as_str().unwrap().to_owned();
    tokens.push(first.clone());
    hashes.extend(server.password_hashes());

    let response = send(
        &mut requests,
        client
            .post(server.url("/auth/login"))
            .json(&json!({ "email": email, "password": password })),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    tokens.push(body["token"].as_str().unwrap().to_owned());

    let response = send(
        &mut requests,
        client
            .post(server.url("/auth/login"))
            .basic_auth(&email, Some(&password)),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let basic = body["token"].as_str().unwrap().to_owned();
    tokens.push(basic.clone());

    let response = send(
        &mut requests,
        client.get(server.url("/auth/status")).bearer_auth(&first),
    )
    .await;
    assert_eq!(response.status(), 200);
    let response = send(
        &mut requests,
        client.get(server.url("/auth/sessions")).bearer_auth(&first),
    )
    .await;
    assert_eq!(response.status(), 200);
    // Admin actions, by a user made admin with the CLI, on a second user.
    let output = crate::cli::latchkey(
        &["user", "set-admin", "--email", &email],
        &[("DATABASE_URL", &server.database_url())],
        "",
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        crate::cli::text(&output.stderr)
    );
    let victim_password = format!("victim-password-{}", uuid::Uuid::new_v4().simple());
    let response = send(
        &mut requests,
        client
            .post(server.url("/auth/register"))
            .json(&json!({ "email": "victim@example.com", "password": victim_password })),
    )
    .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    tokens.push(body["token"].as_str().unwrap().to_owned());
    let victim_id = body["user"]["id"].as_str().unwrap().to_owned();
    hashes.extend(server.password_hashes());
    let response = send(
        &mut requests,
        client.get(server.url("/admin/users")).bearer_auth(&first),
    )
    .await;
    assert_eq!(response.status(), 200);
    let response = send(
        &mut requests,
        client
            .delete(server.url(&format!("/admin/users/{victim_id}/sessions")))
            .bearer_auth(&first),
    )
    .await;
    assert_eq!(response.status(), 204);
    let response = send(
        &mut requests,
        client
            .delete(server.url(&format!("/admin/users/{victim_id}")))
            .bearer_auth(&first),
    )
    .await;
    assert_eq!(response.status(), 204);
    let response = send(
        &mut requests,
        client
            .post(server.url("/auth/introspect"))
            .bearer_auth(&service_key)
            .json(&json!({ "token": basic })),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["active"], true);
    let response = send(
        &mut requests,
        client
            .post(server.url("/auth/introspect"))
            .bearer_auth(&service_key)
            .form(&[("token", unknown_token.as_str())]),
    )
    .await;
    assert_eq!(response.status(), 200);
    let response = send(
        &mut requests,
        client
            .get(server.url("/auth/status"))
            .bearer_auth(&unknown_token),
    )
    .await;
    assert_eq!(response.status(), 401);
    let response = send(
        &mut requests,
        client
            .put(server.url("/auth/password"))
            .bearer_auth(&first)
            .json(&json!({ "current_password": password, "new_password": new_password })),
    )
    .await;
    assert_eq!(response.status(), 204);
    hashes.extend(server.password_hashes());
    let response = send(
        &mut requests,
        client
            .post(server.url("/auth/login"))
            .json(&json!({ "email": email, "password": wrong_password })),
    )
    .await;
    assert_eq!(response.status(), 401);
    let response = send(
        &mut requests,
        client
            .post(server.url("/auth/login"))
            .basic_auth(&email, Some(&new_password)),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    tokens.push(body["token"].as_str().unwrap().to_owned());
    let response = send(
        &mut requests,
        client.post(server.url("/auth/logout")).bearer_auth(&first),
    )
    .await;
    assert_eq!(response.status(), 204);
    // Framework answers get their line too, and a caller's id is kept.
    let response = send(&mut requests, client.get(server.url("/no-such-route"))).await;
    assert_eq!(response.status(), 404);
    let response = send(&mut requests, client.delete(server.url("/auth/login"))).await;
    assert_eq!(response.status(), 405);
    let response = send(
        &mut requests,
        client
            .get(server.url("/healthz"))
            .header(REQUEST_ID, "caller-chosen-id.42"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(request_id_of(&response), "caller-chosen-id.42");
    drop(client);

    server.sigterm();
    let status = server.wait_for_exit();

    // Assert: a graceful stop.
    let log = server.log();
    assert_eq!(
        status.code(),
        Some(0),
        "latchkey exited with {status}:\n{}",
        log.join("\n")
    );

    // No secret, in any form, anywhere in the log.
    // The first password's hash, the victim's, the second password's.
    assert_eq!(hashes.len(), 3, "{hashes:?}");
    let mut secrets: Vec<(&str, String)> = Vec::new();
    for token in tokens.iter().chain([&unknown_token]) {
        secrets.push(("a token", token.clone()));
        // Without the prefix too: the random part alone is the secret.
        secrets.push(("a token's body", token["lk_".len()..].to_owned()));
        for form in digest_forms(token) {
            secrets.push(("a token digest", form));
        }
    }
    for pw in [&password, &new_password, &wrong_password, &victim_password] {
        secrets.push(("a password", pw.clone()));
        secrets.push((
            "Basic credentials",
            STANDARD.encode(format!("{email}:{pw}")),
        ));
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(pepper.as_bytes()).unwrap();
        mac.update(pw.as_bytes());
        secrets.push((
            "a peppered password",
            STANDARD.encode(mac.finalize().into_bytes()),
        ));
    }
    for hash in &hashes {
        assert!(hash.starts_with("$2"), "{hash}");
        secrets.push(("a bcrypt hash", hash.clone()));
        // The salt and digest without the `$2b$10$` header.
        secrets.push(("a bcrypt hash's body", hash[7..].to_owned()));
    }
    secrets.push(("the pepper", pepper.clone()));
    secrets.push(("the service key", service_key.clone()));
    secrets.extend(
        digest_forms(&service_key)
            .into_iter()
            .map(|f| ("a service key digest", f)),
    );
    for (what, secret) in &secrets {
        if let Some(line) = log.iter().find(|line| line.contains(secret.as_str())) {
            panic!("{what} ({secret}) is in the log:\n{line}");
        }
    }

    // Every admin action is logged with the acting admin's id.
    for action in [
        "admin revoked every session of a user",
        "admin deleted a user",
    ] {
        let event = server.wait_for_event(|e| e["message"] == action);
        assert_eq!(event["admin_id"], admin_id.as_str(), "{event}");
        assert_eq!(event["user_id"], victim_id.as_str(), "{event}");
    }

    // Every line is JSON, and each request has exactly one access line
    // carrying its request id and status.
    let events: Vec<Value> = log
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let mut logged: Vec<(String, u16)> = events
        .iter()
        .filter(|e| e["target"] == "latchkey::access")
        .map(|e| {
            let id = e["request_id"].as_str().unwrap_or_default();
            let status = e["status"].as_u64().unwrap_or_default();
            assert!(!id.is_empty(), "an access line without a request id: {e}");
            assert_eq!(e["message"], "request", "{e}");
            assert!(e["route"].is_string(), "{e}");
            assert!(e["method"].is_string(), "{e}");
            assert!(e["latency_us"].is_u64(), "{e}");
            (id.to_owned(), u16::try_from(status).unwrap())
        })
        .collect();
    logged.sort();
    requests.sort();
    assert_eq!(logged, requests, "access lines do not match the requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_login_finish_and_exits_0() {
    // Arrange: cost 12, so a login takes a noticeable while.
    let mut server = Server::start(&[("LATCHKEY_BCRYPT_COST", "12")]);
    let client = reqwest::Client::new();
    let email = "slow@example.com";
    let password = "a password worth waiting for";
    let response = client
        .post(server.url("/auth/register"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let login = tokio::spawn({
        let request = client
            .post(server.url("/auth/login"))
            .json(&json!({ "email": email, "password": password }));
        async move { request.send().await }
    });
    // The login is in flight once its password check is queued or running.
    let mut in_flight = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !in_flight && Instant::now() < deadline && !login.is_finished() {
        let text = client
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        in_flight = metric(&text, "latchkey_bcrypt_queue_depth", &[]).is_some_and(|d| d >= 1.0);
        if !in_flight {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert!(in_flight, "the login was never seen in flight");

    // Act
    server.sigterm();

    // Assert: the login completes, then the process exits 0.
    let response = login
        .await
        .unwrap()
        .expect("the in-flight login got an answer");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["token"].as_str().is_some_and(|t| t.starts_with("lk_")));
    let status = server.wait_for_exit();
    let log = server.log();
    assert_eq!(
        status.code(),
        Some(0),
        "latchkey exited with {status}:\n{}",
        log.join("\n")
    );
    assert!(
        log.iter().any(|l| l.contains("latchkey stopped")),
        "{}",
        log.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_metrics_apart_reaps_in_the_background_and_stops_cleanly() {
    // Arrange: metrics on their own port, a reaper every 200 ms.
    let mut server = Server::start(&[
        ("LATCHKEY_BCRYPT_COST", "10"),
        ("LATCHKEY_METRICS_BIND", "127.0.0.1:0"),
        ("LATCHKEY_REAP_INTERVAL", "200ms"),
        ("LATCHKEY_REAP_BATCH", "1"),
    ]);
    let event = server.wait_for_event(|e| e["message"] == "metrics are served apart");
    let metrics_url = format!(
        "http://{}/metrics",
        event["address"].as_str().expect("the metrics address")
    );
    let client = reqwest::Client::new();
    let response = client
        .post(server.url("/auth/register"))
        .json(&json!({ "email": "reaped@example.com", "password": "a long password indeed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let token = response.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Two days idle: expired under the default 24 h idle timeout.
    let mut conn = latchkey::db::connect(&server.database).expect("the database");
    let long_ago = crate::helpers::now_seconds() - chrono::TimeDelta::days(2);
    let updated = diesel::update(latchkey::db::schema::authentication_tokens::table)
        .set((
            latchkey::db::schema::authentication_tokens::created_at.eq(long_ago),
            latchkey::db::schema::authentication_tokens::last_updated_at.eq(long_ago),
        ))
        .execute(&mut conn)
        .expect("update");
    assert_eq!(updated, 1);
    let count = |conn: &mut latchkey::db::Connection| -> i64 {
        latchkey::db::schema::authentication_tokens::table
            .count()
            .get_result(conn)
            .expect("count")
    };

    // Act: wait (bounded) for the reaper to delete it and count it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = String::new();
    while Instant::now() < deadline {
        text = client
            .get(&metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metric(&text, "latchkey_sessions_reaped_total", &[]) == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let on_api = client.get(server.url("/metrics")).send().await.unwrap();

    // Assert
    assert_eq!(
        metric(&text, "latchkey_sessions_reaped_total", &[]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        count(&mut conn),
        0,
        "the reaper never deleted the expired session"
    );
    assert_eq!(on_api.status(), 404);
    assert!(!text.contains(&token));
    let response = client
        .get(server.url("/auth/status"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    drop(conn);

    server.sigterm();
    let status = server.wait_for_exit();
    let log = server.log();
    assert_eq!(
        status.code(),
        Some(0),
        "latchkey exited with {status}:\n{}",
        log.join("\n")
    );
    assert!(
        log.iter().any(|l| l.contains("reaped expired sessions")),
        "{}",
        log.join("\n")
    );
}

#[test]
fn an_invalid_database_url_is_refused_without_echoing_its_password() {
    // Arrange: a mistyped scheme, with credentials in the URL.
    let password = "hunter2-db-password";
    let url = format!("postgress://latchkey:{password}@db.internal:5432/latchkey");

    for args in [&["serve"][..], &["migrate"], &["user", "list"]] {
        // Act
        let output = crate::cli::latchkey(args, &[("DATABASE_URL", &url)], "");

        // Assert
        let stderr = crate::cli::text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("DATABASE_URL"), "{args:?}: {stderr}");
        assert!(
            !stderr.contains(password) && !crate::cli::text(&output.stdout).contains(password),
            "{args:?}: the database password is printed: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_records_the_peer_address_not_one_the_client_claims() {
    // Arrange: no trusted proxy header is configured, so clients connect
    // directly and must not choose the address the log records.
    let mut server = Server::start(&[("LATCHKEY_BCRYPT_COST", "10")]);
    let client = reqwest::Client::new();
    let claims = [
        ("x-forwarded-for", "203.0.113.66"),
        ("forwarded", "for=198.51.100.7"),
        ("x-real-ip", "192.0.2.9"),
    ];
    for (n, (header, value)) in claims.iter().enumerate() {
        // Act
        let response = client
            .get(server.url("/healthz"))
            .header(REQUEST_ID, format!("claim-{n}"))
            .header(*header, *value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    server.sigterm();
    assert_eq!(server.wait_for_exit().code(), Some(0));

    // Assert
    let log = server.log();
    let mut believed = Vec::new();
    for (n, (header, value)) in claims.iter().enumerate() {
        let id = format!("claim-{n}");
        let line = log
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| e["target"] == "latchkey::access" && e["request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no access line for {id}:\n{}", log.join("\n")));
        if line["client_ip"] != "127.0.0.1" {
            believed.push(format!("{header}: {value} -> {}", line["client_ip"]));
        }
    }
    assert!(
        believed.is_empty(),
        "the log took the client address from the request: {believed:?}"
    );
}

/// Sends `count` logins for unknown accounts at once and returns each
/// answer's request id and status.
async fn login_burst(server: &Server, count: usize) -> Vec<(String, u16)> {
    let client = reqwest::Client::new();
    let mut sent = tokio::task::JoinSet::new();
    for _ in 0..count {
        let request = client.post(server.url("/auth/login")).json(&json!({
            "email": format!("nobody-{}@example.com", uuid::Uuid::new_v4().simple()),
            "password": "not-a-password-of-anyone",
        }));
        sent.spawn(async move {
            let response = request.send().await.expect("request sent");
            (request_id_of(&response), response.status().as_u16())
        });
    }
    sent.join_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_beyond_ten_a_second_are_counted_not_logged() {
    // Arrange: one bcrypt thread and a queue of one, so that nearly all of
    // a burst of logins is refused with 503 at once.
    let server = Server::start(&[
        ("LATCHKEY_BCRYPT_THREADS", "1"),
        ("LATCHKEY_BCRYPT_QUEUE", "1"),
        ("LATCHKEY_BCRYPT_COST", "12"),
    ]);

    // Act: a burst, a pause in which the quota refills, a second burst.
    let first = login_burst(&server, 40).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = login_burst(&server, 40).await;

    // Assert
    let refused = |burst: &[(String, u16)]| -> BTreeSet<String> {
        burst
            .iter()
            .filter(|(_, status)| *status == 503)
            .map(|(id, _)| id.clone())
            .collect()
    };
    let (first_refused, second_refused) = (refused(&first), refused(&second));
    assert!(
        first_refused.len() > 20 && second_refused.len() > 20,
        "too few refusals to test with: {first:?} {second:?}"
    );
    // The answered logins' lines come last: wait for them.
    for (id, status) in first.iter().chain(&second) {
        if *status != 503 {
            server.wait_for_event(|e| e["request_id"] == id.as_str());
        }
    }
    let access = || -> Vec<Value> {
        server
            .log()
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|e| e["target"] == "latchkey::access")
            .collect()
    };
    let logged = |ids: &BTreeSet<String>| -> usize {
        access()
            .iter()
            .filter(|e| e["request_id"].as_str().is_some_and(|id| ids.contains(id)))
            .inspect(|e| assert_eq!(e["status"], 503, "{e}"))
            .count()
    };
    let (first_logged, second_logged) = (logged(&first_refused), logged(&second_refused));
    assert!(
        (10..first_refused.len()).contains(&first_logged),
        "{first_logged} of {} refusals of the first burst were logged",
        first_refused.len()
    );
    assert!(second_logged < second_refused.len());
    // Each unlogged refusal is counted once: in the next 503 line, or in a
    // line of its own within 10 s (the second burst's tail has no next 503).
    let unlogged = first_refused.len() - first_logged + second_refused.len() - second_logged;
    let deadline = Instant::now() + Duration::from_secs(20);
    let reported = loop {
        let reported: u64 = access().iter().filter_map(|e| e["unlogged"].as_u64()).sum();
        if reported as usize >= unlogged || Instant::now() >= deadline {
            break reported;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(reported as usize, unlogged, "{:#?}", access());
    assert!(
        access()
            .iter()
            .any(|e| e["message"] == "503 answers not logged"),
        "the tail's count has a line of its own"
    );
    let access = access();
    // Every other answer has its line.
    for (id, status) in first.iter().chain(&second) {
        if *status != 503 {
            assert!(
                access
                    .iter()
                    .any(|e| e["request_id"] == id.as_str() && e["status"] == *status)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_auth_line_names_the_protected_request_without_its_query() {
    // Arrange
    let mut server = Server::start(&[("LATCHKEY_BCRYPT_COST", "10")]);
    let client = reqwest::Client::new();
    let asks = [
        (
            "nginx",
            vec![
                ("x-original-method", "DELETE"),
                ("x-original-uri", "/books/42?code=SECRET-IN-QUERY"),
            ],
        ),
        (
            "traefik",
            vec![
                ("x-forwarded-method", "PUT"),
                ("x-forwarded-uri", "/books/7?token=SECRET-IN-QUERY"),
                ("x-forwarded-host", "shop.example"),
            ],
        ),
    ];
    for (id, headers) in &asks {
        // Act
        let mut request = client
            .get(server.url("/auth/verify"))
            .header(REQUEST_ID, *id);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
    }
    server.sigterm();
    assert_eq!(server.wait_for_exit().code(), Some(0));

    // Assert
    let log = server.log();
    assert!(
        !log.iter().any(|l| l.contains("SECRET-IN-QUERY")),
        "a query string was logged"
    );
    let line = |id: &str| {
        log.iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| e["target"] == "latchkey::access" && e["request_id"] == id)
            .unwrap_or_else(|| panic!("no access line for {id}:\n{}", log.join("\n")))
    };
    let nginx = line("nginx");
    assert_eq!(nginx["original_method"], "DELETE");
    assert_eq!(nginx["original_uri"], "/books/42");
    assert_eq!(nginx["route"], "/auth/verify");
    let traefik = line("traefik");
    assert_eq!(traefik["original_method"], "PUT");
    assert_eq!(traefik["original_uri"], "/books/7");
    assert_eq!(traefik["original_host"], "shop.example");
}
