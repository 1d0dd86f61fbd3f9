//! Throttling of password guessing and sign-up floods (OWASP ASVS 2.2.1).
//!
//! Token buckets (the `governor` crate) per account and per client IP for
//! login, and per IP for registration. A throttled request is refused with
//! 429 and `Retry-After` before any database query or bcrypt run, and with
//! the same answer whether or not the account exists (the per-account bucket
//! is keyed by the normalised email, existing or not).
//!
//! The buckets live in this process: with several instances behind a load
//! balancer, the effective limit is the configured one times the number of
//! instances.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::http::header::HeaderName;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::error::ApiError;
pub use crate::settings::ThrottleSettings;

pub struct Throttle {
    login_per_account: Option<DefaultKeyedRateLimiter<String>>,
    login_per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    register_per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    recovery_per_email: Option<DefaultKeyedRateLimiter<String>>,
    recovery_per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// At most one `login_throttled` event per account a minute, however
    /// long a guessing run goes on.
    throttled_events: DefaultKeyedRateLimiter<String>,
    trusted_proxy_header: Option<HeaderName>,
}

impl Throttle {
    pub fn new(settings: &ThrottleSettings) -> Self {
        Self {
            login_per_account: limiter(settings.login_per_account_per_hour),
            login_per_ip: limiter(settings.login_per_ip_per_hour),
            register_per_ip: limiter(settings.register_per_ip_per_hour),
            recovery_per_email: limiter(settings.recovery_per_email_per_hour),
            recovery_per_ip: limiter(settings.recovery_per_ip_per_hour),
            throttled_events: DefaultKeyedRateLimiter::keyed(Quota::per_minute(NonZeroU32::MIN)),
            trusted_proxy_header: settings.trusted_proxy_header.clone(),
        }
    }

    /// Admits a request that sends a message to `email` (a password
    /// recovery, a verification mail): per address, whether or not it
    /// belongs to anyone, and per client IP.
    pub fn admit_recovery(&self, req: &HttpRequest, email: &str) -> Result<(), ApiError> {
        self.admit_code_use(req)?;
        if let Some(limiter) = &self.recovery_per_email {
            check(limiter, &email.to_owned())?;
        }
        Ok(())
    }

    /// Admits an attempt to use a one-time code (guessing is throttled per
    /// client IP; the code itself names no account to throttle).
    pub fn admit_code_use(&self, req: &HttpRequest) -> Result<(), ApiError> {
        if let (Some(limiter), Some(ip)) = (&self.recovery_per_ip, self.client_ip(req)) {
            check(limiter, &ip)?;
        }
        Ok(())
    }

    /// Whether a throttled login of `account` should be recorded as a
    /// security event now (once a minute per account).
    pub fn should_record_throttled(&self, account: &str) -> bool {
        self.throttled_events.check_key(&account.to_owned()).is_ok()
    }

    /// Admits a login attempt for `account` (a normalised email, or the raw
    /// string when it is not one) from the request's client.
    pub fn admit_login(&self, req: &HttpRequest, account: &str) -> Result<(), ApiError> {
        if let (Some(limiter), Some(ip)) = (&self.login_per_ip, self.client_ip(req)) {
            check(limiter, &ip)?;
        }
        if let Some(limiter) = &self.login_per_account {
            check(limiter, &account.to_owned())?;
        }
        Ok(())
    }

    pub fn admit_registration(&self, req: &HttpRequest) -> Result<(), ApiError> {
        if let (Some(limiter), Some(ip)) = (&self.register_per_ip, self.client_ip(req)) {
            check(limiter, &ip)?;
        }
        Ok(())
    }

    /// Forgets buckets that are full again, so memory follows the number of
    /// recently active keys, not every key ever seen.
    pub fn forget_idle(&self) {
        for l in [&self.login_per_account, &self.recovery_per_email]
            .into_iter()
            .flatten()
            .chain([&self.throttled_events])
        {
            l.retain_recent();
            l.shrink_to_fit();
        }
        for l in [
            &self.login_per_ip,
            &self.register_per_ip,
            &self.recovery_per_ip,
        ]
        .into_iter()
        .flatten()
        {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// The client's address: the TCP peer, or with a trusted proxy header
    /// configured, the address that proxy wrote. Never a header a client
    /// could set itself.
    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        if let Some(header) = &self.trusted_proxy_header {
            let forwarded = req
                .headers()
                .get(header)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|ip| ip.trim().parse().ok());
            if forwarded.is_some() {
                return forwarded;
            }
        }
        req.peer_addr().map(|addr| addr.ip())
    }
}

/// `per_hour` attempts an hour, of which a tenth (at least one) may come
/// at once.
fn limiter<K: std::hash::Hash + Eq + Clone>(per_hour: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    let per_hour = NonZeroU32::new(per_hour)?;
    let burst = NonZeroU32::new(per_hour.get() / 10).unwrap_or(NonZeroU32::MIN);
    Some(DefaultKeyedRateLimiter::keyed(
        Quota::per_hour(per_hour).allow_burst(burst),
    ))
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Result<(), ApiError> {
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::TooManyRequests {
            retry_after: wait.max(Duration::from_secs(1)),
        }
    })
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn settings(account: u32, ip: u32) -> ThrottleSettings {
        ThrottleSettings {
            login_per_account_per_hour: account,
            login_per_ip_per_hour: ip,
            register_per_ip_per_hour: 0,
            recovery_per_email_per_hour: 0,
            recovery_per_ip_per_hour: 0,
            trusted_proxy_header: None,
        }
    }

    fn request_from(ip: &str) -> HttpRequest {
        TestRequest::default()
            .peer_addr(format!("{ip}:40000").parse().unwrap())
            .to_http_request()
    }

    #[test]
    fn an_account_is_throttled_after_its_burst() {
        // 100 an hour: a burst of 10, then one every 36 s.
        let throttle = Throttle::new(&settings(100, 0));
        let req = request_from("10.0.0.1");
        for _ in 0..10 {
            throttle.admit_login(&req, "alice@example.com").unwrap();
        }
        let Err(ApiError::TooManyRequests { retry_after }) =
            throttle.admit_login(&req, "alice@example.com")
        else {
            panic!("the 11th attempt was admitted");
        };
        assert!(retry_after >= Duration::from_secs(1) && retry_after <= Duration::from_secs(36));
        // Another account is unaffected.
        throttle.admit_login(&req, "bob@example.com").unwrap();
    }

    #[test]
    fn an_ip_is_throttled_across_accounts() {
        let throttle = Throttle::new(&settings(0, 20));
        let req = request_from("10.0.0.2");
        throttle.admit_login(&req, "a@example.com").unwrap();
        throttle.admit_login(&req, "b@example.com").unwrap();
        assert!(throttle.admit_login(&req, "c@example.com").is_err());
        throttle
            .admit_login(&request_from("10.0.0.3"), "c@example.com")
            .unwrap();
    }

    #[test]
    fn zero_disables_a_limit() {
        let throttle = Throttle::new(&settings(0, 0));
        let req = request_from("10.0.0.4");
        for _ in 0..1_000 {
            throttle.admit_login(&req, "alice@example.com").unwrap();
        }
    }

    #[test]
    fn the_trusted_proxy_header_names_the_client() {
        let mut s = settings(0, 10);
        s.trusted_proxy_header = Some(HeaderName::from_static("x-forwarded-for"));
        let throttle = Throttle::new(&s);
        let via_proxy = |client: &str| {
            TestRequest::default()
                .peer_addr("127.0.0.1:40000".parse().unwrap())
                .insert_header(("x-forwarded-for", format!("203.0.113.9, {client}")))
                .to_http_request()
        };
        throttle
            .admit_login(&via_proxy("198.51.100.1"), "a@example.com")
            .unwrap();
        assert!(
            throttle
                .admit_login(&via_proxy("198.51.100.1"), "a@example.com")
                .is_err()
        );
        // A different client behind the same proxy has its own bucket.
        throttle
            .admit_login(&via_proxy("198.51.100.2"), "a@example.com")
            .unwrap();
    }
}
