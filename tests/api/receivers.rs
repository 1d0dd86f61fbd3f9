//! What latchkey's messages are delivered to in the tests: a real SMTP
//! server and a real HTTP server on loopback ports, each recording what it
//! received. Neither shares code with latchkey: the webhook receiver checks
//! signatures with its own implementation of the Standard Webhooks
//! algorithm, so a mistake in latchkey's signing cannot cancel out.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use mailin_embedded::{Handler, Response, Server, response};
use serde_json::Value;
use sha2::Sha256;

/// A Standard Webhooks secret for the tests: `whsec_` and the base64 of the
/// 32 bytes 0x01..=0x20.
pub const WEBHOOK_SECRET: &str = "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

/// How often the receivers are polled while a test waits.
const POLL: Duration = Duration::from_millis(50);

/// A port on 127.0.0.1 that nothing listens on (now): for a receiver
/// started later, while latchkey already sends to it.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock must not hide the
    // recordings from the assertions that follow.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------- SMTP ---

/// A mail as the SMTP receiver got it, its body decoded.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The `From` header.
    pub from: String,
    /// The `To` header.
    pub to: String,
    pub subject: String,
    /// The text, with the transfer encoding undone and `\n` line ends.
    pub body: String,
    /// The envelope: `MAIL FROM` and `RCPT TO`.
    pub envelope_from: String,
    pub envelope_to: Vec<String>,
}

/// A real SMTP server (mailin-embedded, no TLS, no login) on a loopback
/// port. mailin-embedded cannot be stopped, so it listens on a private
/// port behind a small relay that owns the public one: [`SmtpReceiver::stop`]
/// (or dropping it) closes the public port and cuts open sessions, as a
/// mail server going down would.
pub struct SmtpReceiver {
    port: u16,
    inbox: Arc<Mutex<Vec<ReceivedMail>>>,
    stopping: Arc<AtomicBool>,
    sessions: Arc<Mutex<Vec<TcpStream>>>,
    relay: Option<JoinHandle<()>>,
}

impl SmtpReceiver {
    /// On a free port.
    pub fn start() -> Self {
        Self::listen(TcpListener::bind("127.0.0.1:0").expect("a loopback port for SMTP"))
    }

    /// On `port` (e.g. one latchkey was configured with while nothing
    /// listened there).
    pub fn start_on(port: u16) -> Self {
        Self::listen(
            TcpListener::bind(("127.0.0.1", port))
                .unwrap_or_else(|e| panic!("cannot listen for SMTP on port {port}: {e}")),
        )
    }

    fn listen(public: TcpListener) -> Self {
        let port = public.local_addr().expect("a bound address").port();
        let inbox = Arc::new(Mutex::new(Vec::new()));
        let server_addr = start_mail_server(Arc::clone(&inbox));
        let stopping = Arc::new(AtomicBool::new(false));
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let relay = {
            let (stopping, sessions) = (Arc::clone(&stopping), Arc::clone(&sessions));
            std::thread::spawn(move || relay(public, server_addr, &stopping, &sessions))
        };
        Self {
            port,
            inbox,
            stopping,
            sessions,
            relay: Some(relay),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `LATCHKEY_MAIL_URL` for this receiver.
    pub fn mail_url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=off", self.port)
    }

    /// Every mail received so far.
    pub fn mails(&self) -> Vec<ReceivedMail> {
        lock(&self.inbox).clone()
    }

    /// The first mail to `to`, waiting for it up to `timeout`.
    pub async fn wait_for_mail(&self, to: &str, timeout: Duration) -> ReceivedMail {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .mails()
                .into_iter()
                .find(|mail| mail.to.contains(to) || mail.envelope_to.iter().any(|t| t == to));
            if let Some(mail) = found {
                return mail;
            }
            assert!(
                Instant::now() < deadline,
                "no mail to {to} within {timeout:?}; received: {:?}",
                self.mails()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Closes the port and cuts the open sessions.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        let Some(relay) = self.relay.take() else {
            return;
        };
        self.stopping.store(true, Ordering::SeqCst);
        // The relay is blocked in accept(): this connection wakes it.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        let _ = relay.join();
        for session in lock(&self.sessions).drain(..) {
            let _ = session.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Starts mailin on a private loopback port; returns its address. The
/// thread lives as long as the test process (mailin has no stop).
fn start_mail_server(inbox: Arc<Mutex<Vec<ReceivedMail>>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port for mailin");
    let addr = listener.local_addr().expect("a bound address");
    let mut server = Server::new(Recorder {
        inbox,
        envelope_from: String::new(),
        envelope_to: Vec::new(),
        data: Vec::new(),
    });
    server
        .with_name("receiver.test")
        .with_num_threads(2)
        .with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    addr
}

/// Passes each connection on the public port through to mailin, until
/// asked to stop; then returns, which closes the public port.
fn relay(
    public: TcpListener,
    server: SocketAddr,
    stopping: &AtomicBool,
    sessions: &Mutex<Vec<TcpStream>>,
) {
    for client in public.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let Ok(upstream) = TcpStream::connect(server) else {
            continue;
        };
        let (Ok(client_copy), Ok(upstream_copy), Ok(tracked)) =
            (client.try_clone(), upstream.try_clone(), client.try_clone())
        else {
            continue;
        };
        lock(sessions).push(tracked);
        std::thread::spawn(move || pump(client, upstream));
        std::thread::spawn(move || pump(upstream_copy, client_copy));
    }
}

/// Copies one direction of a relayed session; passes on its end.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

/// mailin's callbacks for one session: collects the mail, then files it.
#[derive(Clone)]
struct Recorder {
    inbox: Arc<Mutex<Vec<ReceivedMail>>>,
    envelope_from: String,
    envelope_to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Recorder {
    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.envelope_from = from.to_owned();
        self.envelope_to = to.to_vec();
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let text = String::from_utf8_lossy(&self.data).replace("\r\n", "\n");
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let headers = unfolded_headers(head);
        let header = |name: &str| {
            headers
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.clone())
                .unwrap_or_default()
        };
        let body = decode_body(&header("Content-Transfer-Encoding"), body);
        lock(&self.inbox).push(ReceivedMail {
            from: header("From"),
            to: header("To"),
            subject: header("Subject"),
            body,
            envelope_from: self.envelope_from.clone(),
            envelope_to: self.envelope_to.clone(),
        });
        response::OK
    }
}

/// `Name: value` pairs, with folded continuation lines joined.
fn unfolded_headers(head: &str) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    headers
}

/// Undoes the transfer encoding lettre chose (7bit, quoted-printable or
/// base64, whichever suits the text).
fn decode_body(encoding: &str, body: &str) -> String {
    match encoding.to_ascii_lowercase().as_str() {
        "quoted-printable" => decode_quoted_printable(body),
        "base64" => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = STANDARD.decode(compact).expect("a base64 mail body");
            String::from_utf8(bytes)
                .expect("a UTF-8 mail body")
                .replace("\r\n", "\n")
        }
        _ => body.to_owned(),
    }
}

fn decode_quoted_printable(body: &str) -> String {
    let mut bytes = Vec::with_capacity(body.len());
    for line in body.split('\n') {
        let line = line.trim_end_matches([' ', '\t']);
        let (line, soft_break) = match line.strip_suffix('=') {
            Some(line) => (line, true),
            None => (line, false),
        };
        let raw = line.as_bytes();
        let mut i = 0;
        while i < raw.len() {
            let escaped = (raw[i] == b'=')
                .then(|| line.get(i + 1..i + 3))
                .flatten()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok());
            match escaped {
                Some(byte) => {
                    bytes.push(byte);
                    i += 3;
                }
                None => {
                    bytes.push(raw[i]);
                    i += 1;
                }
            }
        }
        if !soft_break {
            bytes.push(b'\n');
        }
    }
    // The split above adds a line end after the last line.
    bytes.pop();
    String::from_utf8(bytes).expect("a UTF-8 mail body")
}

/// The one-time code in a mail: the line that is nothing but a base64url
/// code (the mail puts the code alone on its line).
pub fn code_in(body: &str) -> String {
    body.lines()
        .map(str::trim)
        .find(|line| {
            line.len() >= 16
                && line
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .unwrap_or_else(|| panic!("no line with only a code in:\n{body}"))
        .to_owned()
}

// ------------------------------------------------------------- webhook ---

/// One POST as the webhook receiver got it.
#[derive(Debug, Clone)]
pub struct ReceivedEvent {
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Whether the Standard Webhooks signature checked out.
    pub signature_valid: bool,
    /// What the receiver answered.
    pub status: u16,
}

impl ReceivedEvent {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON event body")
    }
}

#[derive(Default)]
struct WebhookLog {
    events: Vec<ReceivedEvent>,
    fail_next: usize,
}

struct WebhookState {
    key: Vec<u8>,
    log: Mutex<WebhookLog>,
}

/// A real HTTP server (actix-web, one worker) on a loopback port that
/// records every POST, answers 204 to a correctly signed one and 400
/// otherwise, or 500 while told to fail.
pub struct WebhookReceiver {
    address: String,
    state: Arc<WebhookState>,
    handle: actix_web::dev::ServerHandle,
}

impl WebhookReceiver {
    /// On a free port, verifying with `secret` (`whsec_…`). Must be called
    /// inside a tokio runtime (the server runs as a task of it).
    pub fn start(secret: &str) -> Self {
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
            .expect("a base64 secret");
        let state = Arc::new(WebhookState {
            key,
            log: Mutex::new(WebhookLog::default()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port for webhooks");
        let port = listener.local_addr().expect("a bound address").port();
        let shared = web::Data::from(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("the webhook receiver listens")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            address: format!("http://127.0.0.1:{port}"),
            state,
            handle,
        }
    }

    /// `LATCHKEY_WEBHOOK_URL` for this receiver.
    pub fn url(&self) -> String {
        format!("{}/hooks/latchkey", self.address)
    }

    /// Answer 500 to the next `n` requests, whatever they carry.
    pub fn fail_next(&self, n: usize) {
        lock(&self.state.log).fail_next = n;
    }

    /// Every POST received so far, answered or failed.
    pub fn events(&self) -> Vec<ReceivedEvent> {
        lock(&self.state.log).events.clone()
    }

    /// The body of the first correctly signed event of type `kind` for
    /// `email`, waiting for it up to `timeout`.
    pub async fn wait_for_event(&self, kind: &str, email: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .events()
                .into_iter()
                .filter(|event| event.signature_valid && event.status == 204)
                .map(|event| event.json())
                .find(|json| json["type"] == kind && json["user"]["email"] == email);
            if let Some(json) = found {
                return json;
            }
            assert!(
                Instant::now() < deadline,
                "no signed {kind} event for {email} within {timeout:?}; received: {:?}",
                self.events()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn receive(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<WebhookState>,
) -> HttpResponse {
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    };
    let signature_valid = request.method() == actix_web::http::Method::POST
        && verify_standard_webhook(
            &state.key,
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
            &body,
        );
    let mut log = lock(&state.log);
    let status = if log.fail_next > 0 {
        log.fail_next -= 1;
        500
    } else if signature_valid {
        204
    } else {
        400
    };
    log.events.push(ReceivedEvent {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        signature_valid,
        status,
    });
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("a valid status"))
        .finish()
}

/// The Standard Webhooks check, as the specification publishes it: the
/// timestamp within five minutes, and one of the space-separated `v1,`
/// signatures equal (in constant time) to the HMAC-SHA256 under the key of
/// `{id}.{timestamp}.{body}`.
fn verify_standard_webhook(
    key: &[u8],
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
) -> bool {
    const TOLERANCE_SECONDS: i64 = 5 * 60;
    let Ok(sent_at) = timestamp.parse::<i64>() else {
        return false;
    };
    if id.is_empty() || (chrono::Utc::now().timestamp() - sent_at).abs() > TOLERANCE_SECONDS {
        return false;
    }
    signatures
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .any(|signature| signature_matches(key, id, timestamp, body, &signature))
}

/// Whether `signature` is the HMAC-SHA256 under `key` of
/// `{id}.{timestamp}.{body}` (compared in constant time).
fn signature_matches(key: &[u8], id: &str, timestamp: &str, body: &[u8], signature: &[u8]) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    mac.verify_slice(signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receivers_check_accepts_the_specifications_example() {
        let key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = STANDARD
            .decode("g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
            .unwrap();
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        assert!(signature_matches(&key, id, "1614265330", body, &signature));
        assert!(!signature_matches(&key, id, "1614265331", body, &signature));
        assert!(!signature_matches(
            &key,
            id,
            "1614265330",
            b"{}",
            &signature
        ));
        // Signed in 2021: outside the five minutes a receiver accepts.
        let header = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert!(!verify_standard_webhook(
            &key,
            id,
            "1614265330",
            header,
            body
        ));
    }

    #[test]
    fn a_stopped_smtp_receiver_no_longer_listens_and_frees_its_port() {
        let receiver = SmtpReceiver::start();
        let port = receiver.port();
        let mut session = TcpStream::connect(("127.0.0.1", port)).expect("it listens");
        let mut greeting = [0u8; 3];
        io::Read::read_exact(&mut session, &mut greeting).expect("a greeting");
        assert_eq!(&greeting, b"220");
        receiver.stop();
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
        drop(SmtpReceiver::start_on(port));
    }

    #[test]
    fn quoted_printable_bodies_are_decoded() {
        assert_eq!(
            decode_quoted_printable("a=3Db\nlong=\nline\n"),
            "a=b\nlongline\n"
        );
    }
}
