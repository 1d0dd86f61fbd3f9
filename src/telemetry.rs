//! Structured logs: human lines on a terminal, JSON with
//! `LATCHKEY_LOG_FORMAT=json`; the level comes from `RUST_LOG` (default info).
//!
//! Every request gets one access event (target `latchkey::access`, message
//! `request`) when it ends, from [`access_log`]; of 503 answers, only
//! [`REFUSAL_LINES_PER_SECOND`] a second ([`RefusalLines`]). Spans carry the request id
//! to the events logged while the request runs, but are not logged
//! themselves: span timing and close events cost more CPU than the query on
//! the token-check path (bench/RESULTS.md).

use std::io::{BufWriter, IsTerminal as _, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::cli::LogFormat;
pub use crate::refusal_lines::{REFUSAL_LINES_PER_SECOND, RefusalLines, UNLOGGED_REPORT_EVERY};

/// Log lines collect in a buffer this big before they are written out.
const LOG_BUFFER_BYTES: usize = 64 * 1024;
/// ...and are written out at least this often.
const LOG_FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Keeps the log flusher running; dropping it writes out what is buffered.
/// Hold it until the process has nothing more to log.
#[must_use = "dropping the guard stops the log flusher"]
pub struct LogGuard {
    _flusher: Option<Flusher>,
}

/// Installs the subscriber. Lines are formatted where they are logged and
/// copied into one buffer ([`BatchedWriter`]), written to stderr when it fills
/// and every [`LOG_FLUSH_EVERY`].
pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = BatchedWriter::new(std::io::stderr(), LOG_BUFFER_BYTES);
    let flusher = writer.flush_every(LOG_FLUSH_EVERY);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // Colour codes only for a person at a terminal, never into files.
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A second initialisation (tests) keeps the first subscriber.
    LogGuard {
        _flusher: result.is_ok().then_some(flusher),
    }
}

/// A log sink shared by every thread that logs: a line is copied into one
/// buffer under a lock, and the buffer is written out when it fills or when
/// the [`Flusher`] comes by. A line thus costs no `write(2)` and wakes no
/// thread. (tracing-appender's non-blocking writer, used before, handed each
/// line to its writer thread through a channel, waking it for nearly every
/// line: at 10,000 requests/s that was about 10 µs of CPU per request, with
/// lines formatting included, measured as RUST_LOG=info against warn in
/// bench/run.sh's status scenario.) When the sink is slow the thread that
/// fills the buffer waits for it: lines are never dropped.
pub struct BatchedWriter<W: Write> {
    buffer: Arc<Mutex<BufWriter<W>>>,
}

impl<W: Write> Clone for BatchedWriter<W> {
    fn clone(&self) -> Self {
        Self {
            buffer: Arc::clone(&self.buffer),
        }
    }
}

impl<W: Write + Send + 'static> BatchedWriter<W> {
    pub fn new(sink: W, capacity: usize) -> Self {
        Self {
            buffer: Arc::new(Mutex::new(BufWriter::with_capacity(capacity, sink))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BufWriter<W>> {
        // A thread that panicked while logging leaves whole lines behind.
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes out what is buffered.
    pub fn flush(&self) -> std::io::Result<()> {
        self.lock().flush()
    }

    /// Starts a thread that writes the buffer out every `period`, and once
    /// more when the returned [`Flusher`] is dropped.
    pub fn flush_every(&self, period: Duration) -> Flusher {
        let (stop, stopped) = mpsc::channel::<()>();
        let writer = self.clone();
        let thread = std::thread::Builder::new()
            .name("latchkey-log".into())
            .spawn(move || {
                loop {
                    let stopping = match stopped.recv_timeout(period) {
                        Err(RecvTimeoutError::Timeout) => false,
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
                    };
                    // Nowhere left to report a failing stderr.
                    let _ = writer.flush();
                    if stopping {
                        return;
                    }
                }
            })
            .ok();
        Flusher {
            stop: Some(stop),
            thread,
        }
    }
}

impl<'a, W: Write + 'a> MakeWriter<'a> for BatchedWriter<W> {
    type Writer = BufferedLine<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        BufferedLine(self.buffer.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// One log line's access to the shared buffer.
pub struct BufferedLine<'a, W: Write>(MutexGuard<'a, BufWriter<W>>);

impl<W: Write> Write for BufferedLine<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.write(bytes)
    }

    /// Left to the buffer filling up and to the [`Flusher`].
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The thread of [`BatchedWriter::flush_every`]; dropping it stops the
/// thread after a last flush.
pub struct Flusher {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The header a request id travels in, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
const MAX_REQUEST_ID_LEN: usize = 128;

/// Middleware, outermost: settles the request id (the caller's
/// `X-Request-Id` when it is a sane token, so one id follows a request across
/// services, a new UUID otherwise), runs the request inside a span carrying
/// it, logs the access event and returns the id in `X-Request-Id`. Headers
/// and bodies are never logged.
pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_acceptable_request_id(v))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let method = req.method().clone();
    let client_ip = client_ip(&req);
    let original = OriginalRequest::of(&req);
    let span = tracing::info_span!("request", request_id = %id);
    let result = next.call(req).instrument(span).await;

    let (status, route, error) = match &result {
        Ok(res) => (
            res.status(),
            res.request().match_pattern(),
            res.response().error().map(ToString::to_string),
        ),
        Err(e) => (
            e.as_response_error().status_code(),
            None,
            Some(e.to_string()),
        ),
    };
    // `Some(refusals unlogged before this one)` when this line is logged.
    let unlogged = match &result {
        Ok(res) if status == actix_web::http::StatusCode::SERVICE_UNAVAILABLE => res
            .request()
            .app_data::<actix_web::web::Data<crate::state::AppState>>()
            .map_or(Some(0), |state| state.refusal_lines.admit()),
        _ => Some(0),
    };
    if let Some(unlogged) = unlogged {
        tracing::info!(
            target: "latchkey::access",
            request_id = %id,
            method = %method,
            route = route.as_deref().unwrap_or("UNMATCHED"),
            status = status.as_u16(),
            latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            client_ip = client_ip.as_ref().map(tracing::field::display),
            original_method = original.method.as_deref(),
            original_uri = original.path.as_deref(),
            original_host = original.host.as_deref(),
            error = error.as_deref(),
            unlogged = (unlogged > 0).then_some(unlogged),
            "request"
        );
    }
    let mut res = result?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    Ok(res)
}

/// The request a proxy asked latchkey about (forward authentication): what
/// nginx (`X-Original-Method`, `X-Original-URI`) or Traefik and Caddy
/// (`X-Forwarded-Method`, `X-Forwarded-Uri`, `X-Forwarded-Host`) pass, so
/// that an access line shows which protected URL was asked for. Only the
/// path is kept, never the query string (it may carry a code or a token),
/// cut to [`MAX_ORIGINAL_CHARS`].
struct OriginalRequest {
    method: Option<String>,
    path: Option<String>,
    host: Option<String>,
}

/// The longest original path or host an access line keeps.
const MAX_ORIGINAL_CHARS: usize = 256;

impl OriginalRequest {
    fn of(req: &ServiceRequest) -> Self {
        let header = |names: [&str; 2]| {
            names.iter().find_map(|name| {
                req.headers()
                    .get(*name)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.chars().take(MAX_ORIGINAL_CHARS).collect::<String>())
            })
        };
        let uri = header(["x-original-uri", "x-forwarded-uri"]);
        Self {
            method: header(["x-original-method", "x-forwarded-method"]),
            path: uri.map(|u| u.split(['?', '#']).next().unwrap_or_default().to_owned()),
            host: header(["x-forwarded-host", "x-original-host"]),
        }
    }
}

fn is_acceptable_request_id(id: &str) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The address to log: what the throttle believes (the TCP peer unless a
/// trusted proxy header is configured), never `X-Forwarded-For` as sent.
fn client_ip(request: &ServiceRequest) -> Option<std::net::IpAddr> {
    match request.app_data::<actix_web::web::Data<crate::state::AppState>>() {
        Some(state) => state.throttle.client_ip(request.request()),
        None => request.peer_addr().map(|addr| addr.ip()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(writer: &BatchedWriter<Vec<u8>>) -> String {
        String::from_utf8(writer.lock().get_ref().clone()).unwrap()
    }

    #[test]
    fn lines_wait_in_the_buffer_until_it_fills_or_is_flushed() {
        let writer = BatchedWriter::new(Vec::new(), 64);
        writer.make_writer().write_all(b"one line\n").unwrap();
        writer.make_writer().flush().unwrap();
        assert_eq!(contents(&writer), "");
        writer.flush().unwrap();
        assert_eq!(contents(&writer), "one line\n");
        // A buffer's worth goes out by itself, in order.
        let long = "x".repeat(100) + "\n";
        writer.make_writer().write_all(long.as_bytes()).unwrap();
        assert_eq!(contents(&writer), format!("one line\n{long}"));
    }

    #[test]
    fn the_flusher_writes_out_periodically_and_when_dropped() {
        let writer = BatchedWriter::new(Vec::new(), 1024);
        let flusher = writer.flush_every(Duration::from_millis(10));
        writer.make_writer().write_all(b"periodic\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while contents(&writer).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(contents(&writer), "periodic\n");

        let writer = BatchedWriter::new(Vec::new(), 1024);
        let flusher_of_a_long_period = writer.flush_every(Duration::from_secs(3600));
        writer.make_writer().write_all(b"last words\n").unwrap();
        drop(flusher_of_a_long_period);
        assert_eq!(contents(&writer), "last words\n");
        drop(flusher);
    }

    #[test]
    fn sane_request_ids_are_kept_and_others_replaced() {
        assert!(is_acceptable_request_id("abc-123_X.y"));
        assert!(is_acceptable_request_id(&"a".repeat(128)));
        assert!(!is_acceptable_request_id(""));
        assert!(!is_acceptable_request_id(&"a".repeat(129)));
        assert!(!is_acceptable_request_id("a b"));
        assert!(!is_acceptable_request_id("a\"b"));
    }
}
