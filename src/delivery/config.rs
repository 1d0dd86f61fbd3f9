//! How one-time codes leave latchkey, as configured: by SMTP, by a signed
//! webhook, or not at all. Parsed once at start-up from the four
//! environment values; after that the types carry the guarantees (a mail
//! URL with a host, a From mailbox, a webhook key of a size the Standard
//! Webhooks specification accepts).
//!
//! A leaf module: it imports nothing from the rest of latchkey, so that
//! `settings` and `cli` can name it without pulling in the sender.
//! Passwords and keys are `secrecy` types: `Debug` and [`Delivery::describe`]
//! never show them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use lettre::message::Mailbox;
use lettre::transport::smtp::client::TlsParameters;
use reqwest::Url;
use secrecy::{ExposeSecret as _, SecretSlice, SecretString};

/// The prefix of a Standard Webhooks signing secret.
const WEBHOOK_SECRET_PREFIX: &str = "whsec_";
/// Key sizes the Standard Webhooks specification allows (192 to 512 bits).
const WEBHOOK_KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;
const SMTP_PORT: u16 = 25;
const SMTPS_PORT: u16 = 465;

/// How one-time codes (password reset, email verification) reach users.
#[derive(Debug, Clone, Default)]
pub enum Delivery {
    /// Nothing is sent; the endpoints that would send a code say so.
    #[default]
    None,
    Smtp(SmtpConfig),
    Webhook(WebhookConfig),
}

impl Delivery {
    /// From `LATCHKEY_MAIL_URL`, `LATCHKEY_MAIL_FROM`, `LATCHKEY_WEBHOOK_URL`
    /// and `LATCHKEY_WEBHOOK_SECRET` (an empty value counts as unset). On
    /// error: the variable to fix and why.
    pub fn from_parts(
        mail_url: Option<&str>,
        mail_from: Option<&str>,
        webhook_url: Option<&str>,
        webhook_secret: Option<&str>,
    ) -> Result<Delivery, (&'static str, String)> {
        fn given(value: Option<&str>) -> Option<&str> {
            value.map(str::trim).filter(|v| !v.is_empty())
        }
        match (
            given(mail_url),
            given(mail_from),
            given(webhook_url),
            given(webhook_secret),
        ) {
            (Some(_), _, Some(_), _) => Err((
                "LATCHKEY_WEBHOOK_URL",
                "cannot be set together with LATCHKEY_MAIL_URL: choose mail or a webhook".into(),
            )),
            (Some(url), Some(from), None, _) => SmtpConfig::parse(url, from).map(Delivery::Smtp),
            (Some(_), None, None, _) => Err((
                "LATCHKEY_MAIL_FROM",
                "must be set when LATCHKEY_MAIL_URL is, e.g. \"Example <noreply@app.example>\""
                    .into(),
            )),
            (None, _, Some(url), Some(secret)) => {
                WebhookConfig::parse(url, secret).map(Delivery::Webhook)
            }
            (None, _, Some(_), None) => Err((
                "LATCHKEY_WEBHOOK_SECRET",
                "must be set when LATCHKEY_WEBHOOK_URL is: whsec_ and the base64 of 24 to 64 random bytes"
                    .into(),
            )),
            (None, _, None, _) => Ok(Delivery::None),
        }
    }

    /// Whether codes are sent at all.
    pub fn is_active(&self) -> bool {
        !matches!(self, Delivery::None)
    }

    /// One line for the start-up log: where messages go. Never a password,
    /// a key, or the parts of a webhook URL that may carry credentials.
    pub fn describe(&self) -> String {
        match self {
            Delivery::None => {
                "none: password reset and email verification codes are not sent".to_owned()
            }
            Delivery::Smtp(smtp) => smtp.describe(),
            Delivery::Webhook(webhook) => webhook.describe(),
        }
    }
}

/// Whether and how the SMTP connection is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: plain, upgraded with STARTTLS when the server offers it.
    StarttlsWhenOffered,
    /// `smtp://…?tls=required`: STARTTLS or no mail at all.
    StarttlsRequired,
    /// `smtps://`: TLS from the first byte.
    ImplicitTls,
    /// `smtp://…?tls=off`: never encrypted (a relay on the same host).
    Plain,
}

impl SmtpSecurity {
    fn describe(self) -> &'static str {
        match self {
            Self::StarttlsWhenOffered => "STARTTLS when offered",
            Self::StarttlsRequired => "STARTTLS required",
            Self::ImplicitTls => "implicit TLS",
            Self::Plain => "no TLS",
        }
    }
}

/// An SMTP server to send mail through, and the From address.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    host: String,
    port: u16,
    security: SmtpSecurity,
    credentials: Option<SmtpCredentials>,
    from: Mailbox,
}

/// A login on the SMTP server; the password is never shown.
#[derive(Debug, Clone)]
pub struct SmtpCredentials {
    pub username: String,
    pub password: SecretString,
}

impl SmtpConfig {
    /// `smtp://[user:pass@]host[:port][?tls=off|required]` or
    /// `smtps://[user:pass@]host[:port]`; `from` as `noreply@app.example` or
    /// `Example <noreply@app.example>`. On error: the variable and why.
    pub fn parse(url: &str, from: &str) -> Result<SmtpConfig, (&'static str, String)> {
        const VARIABLE: &str = "LATCHKEY_MAIL_URL";
        let invalid = |reason: String| (VARIABLE, reason);
        // Never echo the URL: it may carry the password.
        let parsed = Url::parse(url.trim()).map_err(|e| {
            invalid(format!(
                "must be a URL like smtp://user:password@mail.example:587 ({e})"
            ))
        })?;
        let (default_port, mut security) = match parsed.scheme() {
            "smtp" => (SMTP_PORT, SmtpSecurity::StarttlsWhenOffered),
            "smtps" => (SMTPS_PORT, SmtpSecurity::ImplicitTls),
            other => {
                return Err(invalid(format!(
                    "the scheme must be smtp or smtps, not {other}"
                )));
            }
        };
        let host = parsed
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| invalid("has no host, e.g. smtp://mail.example:587".into()))?;
        // An IPv6 literal comes bracketed, lettre wants it bare.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if !matches!(parsed.path(), "" | "/") || parsed.fragment().is_some() {
            return Err(invalid(
                "must not have a path or fragment, only an optional ?tls=off or ?tls=required"
                    .into(),
            ));
        }
        for (key, value) in parsed.query_pairs() {
            match (key.as_ref(), value.as_ref(), security) {
                ("tls", "off", _) => security = SmtpSecurity::Plain,
                ("tls", "required", SmtpSecurity::StarttlsWhenOffered) => {
                    security = SmtpSecurity::StarttlsRequired;
                }
                ("tls", "required", _) => {
                    return Err(invalid(
                        "tls=required is for smtp:// (STARTTLS); smtps:// is always TLS".into(),
                    ));
                }
                _ => {
                    return Err(invalid(
                        "the only query parameter understood is tls=off or tls=required".into(),
                    ));
                }
            }
        }
        let credentials = if parsed.username().is_empty() {
            None
        } else {
            let username = percent_decode(parsed.username()).ok_or_else(|| {
                invalid("the user name is not valid percent-encoded UTF-8".into())
            })?;
            let password = percent_decode(parsed.password().unwrap_or_default())
                .ok_or_else(|| invalid("the password is not valid percent-encoded UTF-8".into()))?;
            Some(SmtpCredentials {
                username,
                password: SecretString::from(password),
            })
        };
        // Checked now rather than at the first mail: a host that TLS cannot
        // verify a certificate for would fail every delivery.
        if security != SmtpSecurity::Plain {
            TlsParameters::new(host.clone()).map_err(|e| {
                invalid(format!(
                    "the host is not a name a TLS certificate can be checked against ({e})"
                ))
            })?;
        }
        let from = from.trim().parse::<Mailbox>().map_err(|e| {
            (
                "LATCHKEY_MAIL_FROM",
                format!(
                    "must be a mail address like noreply@app.example or \"Example <noreply@app.example>\" ({e})"
                ),
            )
        })?;
        Ok(SmtpConfig {
            host,
            port: parsed.port().unwrap_or(default_port),
            security,
            credentials,
            from,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn security(&self) -> SmtpSecurity {
        self.security
    }

    pub fn credentials(&self) -> Option<&SmtpCredentials> {
        self.credentials.as_ref()
    }

    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    fn describe(&self) -> String {
        let login = match &self.credentials {
            Some(credentials) => format!(", logging in as {}", credentials.username),
            None => String::new(),
        };
        format!(
            "smtp to {}:{} ({}{login}) from {}",
            self.host,
            self.port,
            self.security.describe(),
            self.from.email
        )
    }
}

/// Where webhook events are POSTed, and the key that signs them.
#[derive(Clone)]
pub struct WebhookConfig {
    url: Url,
    key: SecretSlice<u8>,
}

impl WebhookConfig {
    /// An http(s) URL, and a Standard Webhooks secret: `whsec_` followed by
    /// the base64 of 24 to 64 random bytes. On error: the variable and why.
    pub fn parse(url: &str, secret: &str) -> Result<WebhookConfig, (&'static str, String)> {
        let invalid_url = |reason: String| ("LATCHKEY_WEBHOOK_URL", reason);
        let url = Url::parse(url.trim()).map_err(|e| {
            invalid_url(format!(
                "must be a URL like https://hooks.app.example/latchkey ({e})"
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid_url(format!(
                "the scheme must be https or http, not {}",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid_url("has no host".into()));
        }
        let key =
            parse_webhook_secret(secret).map_err(|reason| ("LATCHKEY_WEBHOOK_SECRET", reason))?;
        Ok(WebhookConfig { url, key })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The decoded signing key (the bytes after `whsec_`).
    pub fn key(&self) -> &[u8] {
        self.key.expose_secret()
    }

    fn describe(&self) -> String {
        format!(
            "webhook to {} (Standard Webhooks signature)",
            self.shown_url()
        )
    }

    /// The URL without user info and query, which may carry credentials.
    fn shown_url(&self) -> String {
        let url = &self.url;
        let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
        if let Some(port) = url.port() {
            shown.push_str(&format!(":{port}"));
        }
        shown.push_str(url.path());
        if url.query().is_some() {
            shown.push_str("?…");
        }
        shown
    }
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.shown_url())
            .field("key", &"[redacted]")
            .finish()
    }
}

fn parse_webhook_secret(secret: &str) -> Result<SecretSlice<u8>, String> {
    const EXPECTED: &str = "must be whsec_ followed by the base64 of 24 to 64 random bytes, e.g. \
                            whsec_$(openssl rand -base64 32)";
    let encoded = secret
        .trim()
        .strip_prefix(WEBHOOK_SECRET_PREFIX)
        .ok_or_else(|| EXPECTED.to_owned())?;
    // Never echo the secret, nor the decoder's error (it quotes a byte).
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| format!("is not valid base64 after whsec_: {EXPECTED}"))?;
    if !WEBHOOK_KEY_BYTES.contains(&key.len()) {
        return Err(format!(
            "decodes to {} bytes, the Standard Webhooks specification allows 24 to 64: {EXPECTED}",
            key.len()
        ));
    }
    Ok(SecretSlice::from(key))
}

/// `%XX` escapes to bytes, the result read as UTF-8; `None` if it is not.
fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
