//! The client: one `POST /auth/introspect` per question, or none when the
//! cache still holds the answer.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::Serialize;

use crate::cache::{self, Cache, CacheConfig};
use crate::{Error, Identity, Unavailable, identity};

/// How long a question to latchkey may take, unless the builder says
/// otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The realm the actix extractors name in `WWW-Authenticate`, unless the
/// builder says otherwise.
#[cfg(feature = "actix")]
pub const DEFAULT_REALM: &str = "latchkey";

/// Asks latchkey whether bearer tokens are live. Cheap to clone (the clones
/// share one connection pool and one cache); its `Debug` never shows the
/// service key.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    endpoint: Url,
    /// `Bearer <service key>`, marked sensitive.
    authorization: HeaderValue,
    timeout: Duration,
    touch: bool,
    cache: Option<Cache>,
    #[cfg(feature = "actix")]
    realm: String,
}

#[derive(Serialize)]
struct IntrospectBody<'a> {
    token: &'a str,
    touch: bool,
}

impl Client {
    /// A client with the defaults: a 5 s timeout, no cache, and questions
    /// that count as use of the session (`touch`).
    ///
    /// `base_url` is latchkey's root (`http://127.0.0.1:8080`, or a path
    /// prefix such as `https://example.com/latchkey/`); `service_key` is one
    /// of latchkey's `LATCHKEY_INTROSPECT_KEYS`.
    pub fn new(base_url: impl AsRef<str>, service_key: impl Into<String>) -> Result<Self, Error> {
        Self::builder(base_url, service_key).build()
    }

    /// A builder for a client with a timeout, a cache, or `touch` set.
    pub fn builder(base_url: impl AsRef<str>, service_key: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.as_ref().to_owned(),
            service_key: ServiceKey(service_key.into()),
            timeout: DEFAULT_TIMEOUT,
            touch: true,
            cache: None,
            #[cfg(feature = "actix")]
            realm: DEFAULT_REALM.to_owned(),
        }
    }

    /// Who `token` belongs to, if it is a live session: `Ok(None)` for any
    /// token that is not (unknown, malformed, expired, logged out, revoked).
    ///
    /// With a cache, a live answer may come from memory (see
    /// [`CacheConfig`]); a refusal always comes from latchkey.
    pub async fn introspect(&self, token: &str) -> Result<Option<Identity>, Error> {
        let cached = self
            .inner
            .cache
            .as_ref()
            .map(|cache| (cache, cache::digest(token)));
        if let Some((cache, key)) = &cached
            && let Some(identity) = cache.get(key, Instant::now())
        {
            return Ok(Some(identity));
        }
        let answer = self.ask(token).await?;
        if let (Some((cache, key)), Some(identity)) = (cached, &answer) {
            cache.insert(key, identity.clone(), Instant::now(), SystemTime::now());
        }
        Ok(answer)
    }

    async fn ask(&self, token: &str) -> Result<Option<Identity>, Error> {
        let response = self
            .inner
            .http
            .post(self.inner.endpoint.clone())
            .header(AUTHORIZATION, self.inner.authorization.clone())
            .json(&IntrospectBody {
                token,
                touch: self.inner.touch,
            })
            .send()
            .await
            .map_err(Error::transport)?;
        match response.status().as_u16() {
            200 => {}
            401 => return Err(Error::Unauthorized),
            status @ (429 | 500..=599) => {
                return Err(Error::unavailable(Unavailable::Status(status)));
            }
            status => return Err(Error::UnexpectedStatus { status }),
        }
        let body = response.bytes().await.map_err(Error::transport)?;
        identity::from_answer(&body)
    }

    #[cfg(feature = "actix")]
    pub(crate) fn realm(&self) -> &str {
        &self.inner.realm
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("Client")
            .field("endpoint", &inner.endpoint.as_str())
            .field("service_key", &"[redacted]")
            .field("timeout", &inner.timeout)
            .field("touch", &inner.touch)
            .field("cache", &inner.cache.as_ref().map(Cache::config))
            .finish()
    }
}

/// Builds a [`Client`]; see [`Client::builder`].
#[derive(Debug)]
#[must_use]
pub struct ClientBuilder {
    base_url: String,
    service_key: ServiceKey,
    timeout: Duration,
    touch: bool,
    cache: Option<CacheConfig>,
    #[cfg(feature = "actix")]
    realm: String,
}

impl ClientBuilder {
    /// How long one question to latchkey may take, connecting included;
    /// past it the answer is [`Error::Unavailable`] (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Remembers positive answers in this process (off by default). Read
    /// [`CacheConfig`] for what its TTL means for logged-out tokens.
    pub fn cache(mut self, config: CacheConfig) -> Self {
        self.cache = Some(config);
        self
    }

    /// Whether a question counts as use of the session and slides its idle
    /// expiry, as a request to latchkey itself would (default true).
    pub fn touch(mut self, touch: bool) -> Self {
        self.touch = touch;
        self
    }

    /// The realm the actix extractors name in their `WWW-Authenticate`
    /// challenge: usually this service's name (default `latchkey`).
    #[cfg(feature = "actix")]
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// Checks the settings and builds the client. Nothing is sent yet: a
    /// latchkey that is down shows at the first question, not here.
    pub fn build(self) -> Result<Client, Error> {
        let endpoint = introspect_endpoint(&self.base_url)?;
        let authorization = self.service_key.authorization()?;
        if self.timeout.is_zero() {
            return Err(Error::Config("the timeout must be more than zero".into()));
        }
        if let Some(config) = &self.cache
            && (config.ttl.is_zero() || config.max_entries == 0)
        {
            return Err(Error::Config(
                "a cache needs a TTL and a size above zero (or no cache at all)".into(),
            ));
        }
        #[cfg(feature = "actix")]
        if self.realm.is_empty()
            || self
                .realm
                .chars()
                .any(|c| c == '"' || c == '\\' || !(c == ' ' || c.is_ascii_graphic()))
        {
            return Err(Error::Config(
                "the realm must be printable ASCII without quotes or backslashes".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            // A redirect would carry the service key elsewhere; latchkey
            // never redirects introspection.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("latchkey-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                endpoint,
                authorization,
                timeout: self.timeout,
                touch: self.touch,
                cache: self.cache.map(Cache::new),
                #[cfg(feature = "actix")]
                realm: self.realm,
            }),
        })
    }
}

/// `<base>/auth/introspect`, keeping any path prefix of the base URL.
fn introspect_endpoint(base_url: &str) -> Result<Url, Error> {
    let mut base = Url::parse(base_url.trim())
        .map_err(|e| Error::Config(format!("latchkey's base URL is not a URL: {e}")))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(Error::Config(format!(
            "latchkey's base URL must be http or https, not {}",
            base.scheme()
        )));
    }
    if !base.username().is_empty() || base.password().is_some() {
        // It would show in every error message; the service key is the
        // credential.
        return Err(Error::Config(
            "latchkey's base URL must not hold credentials".into(),
        ));
    }
    base.set_query(None);
    base.set_fragment(None);
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    base.join("auth/introspect")
        .map_err(|e| Error::Config(format!("latchkey's base URL cannot take a path: {e}")))
}

/// The service key until it becomes a sensitive header value; its `Debug`
/// shows nothing of it.
struct ServiceKey(String);

impl ServiceKey {
    fn authorization(&self) -> Result<HeaderValue, Error> {
        let key = self.0.trim();
        if key.is_empty() {
            return Err(Error::Config("the service key is empty".into()));
        }
        // The error is not passed on: it could quote the key.
        let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
            Error::Config("the service key has characters a header cannot carry".into())
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "service-key-0123456789abcdefghijklmnopqrstuv";

    #[test]
    fn the_endpoint_is_under_the_base_url_with_or_without_a_trailing_slash() {
        for (base, endpoint) in [
            (
                "http://127.0.0.1:8080",
                "http://127.0.0.1:8080/auth/introspect",
            ),
            (
                "http://127.0.0.1:8080/",
                "http://127.0.0.1:8080/auth/introspect",
            ),
            (
                "https://example.com/latchkey",
                "https://example.com/latchkey/auth/introspect",
            ),
            (
                "https://example.com/latchkey/?x=1#y",
                "https://example.com/latchkey/auth/introspect",
            ),
        ] {
            assert_eq!(
                introspect_endpoint(base).unwrap().as_str(),
                endpoint,
                "{base}"
            );
        }
    }

    #[test]
    fn settings_it_cannot_work_with_are_config_errors() {
        let cases = [
            ("no URL", Client::builder("localhost:8080", KEY)),
            ("not http", Client::builder("ftp://example.com", KEY)),
            (
                "credentials in the URL",
                Client::builder("http://u:p@example.com", KEY),
            ),
            ("an empty key", Client::builder("http://example.com", "  ")),
            (
                "a key with a newline",
                Client::builder("http://example.com", "key\nX: y"),
            ),
            (
                "a zero timeout",
                Client::builder("http://example.com", KEY).timeout(Duration::ZERO),
            ),
            (
                "a zero TTL",
                Client::builder("http://example.com", KEY).cache(CacheConfig {
                    ttl: Duration::ZERO,
                    max_entries: 10,
                }),
            ),
            (
                "an empty cache",
                Client::builder("http://example.com", KEY).cache(CacheConfig {
                    ttl: Duration::from_secs(1),
                    max_entries: 0,
                }),
            ),
        ];
        for (case, builder) in cases {
            let error = builder.build().unwrap_err();

            assert!(matches!(error, Error::Config(_)), "{case}: {error}");
            assert!(!error.to_string().contains("key\nX"), "{case}: {error}");
        }
    }

    #[test]
    fn debug_never_shows_the_service_key() {
        let builder = Client::builder("http://127.0.0.1:8080", KEY);
        let shown_builder = format!("{builder:?}");
        let client = builder
            .cache(CacheConfig {
                ttl: Duration::from_secs(2),
                max_entries: 100,
            })
            .build()
            .unwrap();

        let shown = format!("{client:?} {client:#?}");

        for text in [&shown, &shown_builder] {
            assert!(!text.contains(KEY), "{text}");
            assert!(!text.contains("0123456789abcdef"), "{text}");
            assert!(text.contains("[redacted]"), "{text}");
        }
        assert!(
            shown.contains("http://127.0.0.1:8080/auth/introspect"),
            "{shown}"
        );
        assert!(shown.contains("max_entries: 100"), "{shown}");
    }
}
