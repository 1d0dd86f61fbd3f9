//! The bookstore, started in the test process on a free port with a fresh
//! SQLite file, talking to a given latchkey.

use bookstore::books::Book;
use bookstore::db::schema::books;
use diesel::prelude::*;
use serde_json::Value;

use crate::harness::{Latchkey, SERVICE_KEY};

pub struct Bookstore {
    pub address: String,
    http: reqwest::Client,
    database: std::path::PathBuf,
    handle: actix_web::dev::ServerHandle,
    _dir: tempfile::TempDir,
}

impl Bookstore {
    /// Starts the bookstore in front of `latchkey`.
    pub async fn start(latchkey: &Latchkey) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("bookstore-test-")
            .tempdir()
            .expect("a temp dir");
        let database = dir.path().join("bookstore.sqlite3");
        let (port, server) = bookstore::build(bookstore::Config {
            bind: "127.0.0.1:0".into(),
            database: database.clone(),
            latchkey_url: latchkey.address.clone(),
            service_key: SERVICE_KEY.into(),
        })
        .await
        .expect("the bookstore starts");
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            address: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            database,
            handle,
            _dir: dir,
        }
    }

    /// Sends `method path` with the token (if any) as a bearer token and
    /// the JSON body (if any).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut request = self.http.request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("the bookstore answers")
    }

    /// Every row of the bookstore's `books` table, oldest first.
    pub async fn rows(&self) -> Vec<Book> {
        let database = self.database.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = diesel::SqliteConnection::establish(&database.to_string_lossy())
                .expect("the bookstore's database");
            books::table
                .order(books::id.asc())
                .select(Book::as_select())
                .load(&mut conn)
                .expect("the books rows")
        })
        .await
        .expect("the database task ran")
    }
}

impl Drop for Bookstore {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// The response's status and JSON body (`Null` for an empty body).
pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    if text.is_empty() {
        return (status, Value::Null);
    }
    let body =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text}"));
    (status, body)
}

/// Checks that the response is the JSON error `{"error": code, "message"}`
/// with this status.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) {
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().expect("ASCII").to_owned());
    let (actual, body) = status_and_json(response).await;
    assert_eq!(actual, status, "{body}");
    assert_eq!(content_type.as_deref(), Some("application/json"), "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}
