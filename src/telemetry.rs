//! Structured logs: human lines on a terminal, JSON with
//! `LATCHKEY_LOG_FORMAT=json`; the level comes from `RUST_LOG` (default info).
//!
//! Every request gets one access event (target `latchkey::access`, message
//! `request`) when it ends, from [`access_log`]. Spans carry the request id
//! to the events logged while the request runs, but are not logged
//! themselves: span timing and close events cost more CPU than the query on
//! the token-check path (bench/RESULTS.md).

use std::io::IsTerminal as _;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument as _;
use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Log lines wait here for the writer thread; beyond it, the threads that
/// log wait too (an access log that drops lines under load is no log).
const BUFFERED_LINES: usize = 16 * 1024;

/// Keeps the log writer thread running; dropping it flushes what is queued.
/// Hold it until the process has nothing more to log.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Installs the subscriber. Lines are formatted where they are logged and
/// written by one background thread through a buffer, so an HTTP worker never
/// waits on stderr and a burst of lines costs one write, not one each.
pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("latchkey-log")
        .finish(std::io::BufWriter::new(std::io::stderr()));
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
        _writer: result.is_ok().then_some(guard),
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
    tracing::info!(
        target: "latchkey::access",
        request_id = %id,
        method = %method,
        route = route.as_deref().unwrap_or("UNMATCHED"),
        status = status.as_u16(),
        latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        client_ip = client_ip.as_ref().map(tracing::field::display),
        error = error.as_deref(),
        "request"
    );
    let mut res = result?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    Ok(res)
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
