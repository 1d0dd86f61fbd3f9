//! Delivery by mail: a plain-text message through the configured SMTP
//! server. lettre speaks the protocol (and TLS, over rustls); the transport
//! is built once and opens a connection per message, so a server that was
//! down at one attempt is simply reached at the next.
//!
//! The wording is fixed and short: what the code is for, the code alone on
//! its line (easy to copy), the link alone on its line when there is one,
//! when it stops working, and what to do if it was not asked for. No HTML:
//! nothing to render, nothing to track.

use std::time::Duration;

use anyhow::Context as _;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
use secrecy::ExposeSecret as _;

use crate::delivery::config::{SmtpConfig, SmtpSecurity};
use crate::delivery::message::{Message, MessageKind};

/// How long lettre waits to connect and for each answer of the server.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Sends messages as mails through one SMTP server.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// Fails only if the host cannot be used for TLS, which
    /// [`SmtpConfig::parse`] has already ruled out.
    pub fn new(config: &SmtpConfig) -> Result<Self, lettre::transport::smtp::Error> {
        let tls = |host: &str| TlsParameters::new(host.to_owned());
        let tls = match config.security() {
            SmtpSecurity::StarttlsWhenOffered => Tls::Opportunistic(tls(config.host())?),
            SmtpSecurity::StarttlsRequired => Tls::Required(tls(config.host())?),
            SmtpSecurity::ImplicitTls => Tls::Wrapper(tls(config.host())?),
            SmtpSecurity::Plain => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host())
            .port(config.port())
            .tls(tls)
            .timeout(Some(TIMEOUT));
        if let Some(login) = config.credentials() {
            builder = builder.credentials(Credentials::new(
                login.username.clone(),
                login.password.expose_secret().to_owned(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
            from: config.from().clone(),
        })
    }

    /// Hands the mail to the server. An error never quotes the mail.
    pub async fn send(&self, message: &Message) -> anyhow::Result<()> {
        let mail = compose(&self.from, message)?;
        self.transport
            .send(mail)
            .await
            .context("sending the mail by SMTP failed")?;
        Ok(())
    }
}

/// The mail for `message`, from `from`.
pub fn compose(from: &Mailbox, message: &Message) -> anyhow::Result<lettre::Message> {
    let to: Mailbox = message
        .user
        .email
        .parse()
        .context("the recipient is not an address the SMTP client accepts")?;
    lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject(message.kind))
        .header(ContentType::TEXT_PLAIN)
        .body(body(message))
        .context("failed to build the mail")
}

pub fn subject(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::PasswordReset => "Reset your password",
        MessageKind::EmailVerification => "Confirm your email address",
    }
}

/// The text of the mail. The code and the link each stand alone on their
/// line, so that a reader (or a test) can take them without parsing prose.
pub fn body(message: &Message) -> String {
    let (purpose, unasked) = match message.kind {
        MessageKind::PasswordReset => (
            format!(
                "Someone asked to reset the password of the account {}.\n\
                 To choose a new password, enter this code:",
                message.user.email
            ),
            "If you did not ask for this, ignore this mail: your password stays as it is.",
        ),
        MessageKind::EmailVerification => (
            format!(
                "To confirm that {} is your email address, enter this code:",
                message.user.email
            ),
            "If you did not ask for this, ignore this mail.",
        ),
    };
    let link = match &message.link {
        Some(link) => format!("Or open this link:\n\n{link}\n\n"),
        None => String::new(),
    };
    format!(
        "{purpose}\n\n{code}\n\n{link}The code works until {expires}.\n\n{unasked}\n",
        code = message.code,
        expires = readable_expiry(&message.expires_at),
    )
}

/// `2026-12-04T12:30:00Z` as `2026-12-04 12:30 UTC`; as given if it is not
/// RFC 3339 (it always is: the outbox writes it).
fn readable_expiry(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|at| {
            at.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M UTC")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::message::MessageUser;

    fn message(kind: MessageKind, link: Option<&str>) -> Message {
        Message {
            kind,
            user: MessageUser {
                id: "u1".into(),
                email: "ada@example.com".into(),
            },
            code: "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5".into(),
            link: link.map(str::to_owned),
            expires_at: "2026-12-04T12:30:00.123456Z".into(),
        }
    }

    #[test]
    fn the_code_and_the_link_stand_alone_on_their_lines() {
        let link = "https://app.example/reset?code=Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5";
        let text = body(&message(MessageKind::PasswordReset, Some(link)));
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines.contains(&"Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5"),
            "{text}"
        );
        assert!(lines.contains(&link), "{text}");
        assert!(text.contains("2026-12-04 12:30 UTC"), "{text}");
        assert!(text.contains("did not ask"), "{text}");
    }

    #[test]
    fn without_a_link_the_mail_does_not_mention_one() {
        let text = body(&message(MessageKind::EmailVerification, None));
        assert!(!text.contains("link"), "{text}");
        assert!(text.contains("ada@example.com"), "{text}");
    }

    #[test]
    fn each_kind_has_its_own_subject() {
        assert_eq!(subject(MessageKind::PasswordReset), "Reset your password");
        assert_eq!(
            subject(MessageKind::EmailVerification),
            "Confirm your email address"
        );
    }

    #[test]
    fn a_mail_is_plain_text_from_the_configured_address() {
        let from: Mailbox = "Example <noreply@app.example>".parse().unwrap();
        let mail = compose(&from, &message(MessageKind::PasswordReset, None)).unwrap();
        let text = String::from_utf8(mail.formatted()).unwrap();
        assert!(
            text.contains("From: Example <noreply@app.example>"),
            "{text}"
        );
        assert!(text.contains("To: ada@example.com"), "{text}");
        assert!(text.contains("Subject: Reset your password"), "{text}");
        assert!(text.contains("Content-Type: text/plain"), "{text}");
    }
}
