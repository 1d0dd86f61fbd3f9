//! The account lifecycle's flags: one-time codes, their delivery, the
//! verified-email rule and the event trail. Shared by `serve` and by the
//! commands that issue codes (`latchkey user reset-link`).

use std::time::Duration;

use clap::Args;

use crate::delivery::config::Delivery;
use crate::settings::{
    self, AccountSettings, ConfigError, parse_duration, parse_link_template, to_delta,
};

#[derive(Debug, Clone, Args)]
pub struct AccountArgs {
    /// How long a password reset code works.
    #[arg(long, env = "LATCHKEY_RESET_TTL", value_name = "LATCHKEY_RESET_TTL",
        default_value = settings::DEFAULT_RESET_TTL, value_parser = parse_duration)]
    pub reset_ttl: Duration,

    /// How long an email verification code works.
    #[arg(long, env = "LATCHKEY_VERIFY_TTL", value_name = "LATCHKEY_VERIFY_TTL",
        default_value = settings::DEFAULT_VERIFY_TTL, value_parser = parse_duration)]
    pub verify_ttl: Duration,

    /// The reset link sent to users, with {code} where the code goes.
    #[arg(long, env = "LATCHKEY_RESET_LINK", value_name = "LATCHKEY_RESET_LINK",
        value_parser = parse_link_template)]
    pub reset_link: Option<String>,

    /// The verification link sent to users, with {code} where the code goes.
    #[arg(long, env = "LATCHKEY_VERIFY_LINK", value_name = "LATCHKEY_VERIFY_LINK",
        value_parser = parse_link_template)]
    pub verify_link: Option<String>,

    /// Refuse logins of accounts whose email is not verified (403 email_unverified).
    #[arg(long, env = "LATCHKEY_REQUIRE_VERIFIED_EMAIL", value_name = "LATCHKEY_REQUIRE_VERIFIED_EMAIL",
        default_value_t = false, action = clap::ArgAction::Set)]
    pub require_verified_email: bool,

    /// How long security events are kept.
    #[arg(long, env = "LATCHKEY_EVENT_RETENTION", value_name = "LATCHKEY_EVENT_RETENTION",
        default_value = settings::DEFAULT_EVENT_RETENTION, value_parser = parse_duration)]
    pub event_retention: Duration,

    /// SMTP server for the mails: smtp://USER:PASS@HOST:PORT (STARTTLS when
    /// offered; ?tls=off for none) or smtps://… (TLS from the start).
    #[arg(
        long,
        env = "LATCHKEY_MAIL_URL",
        value_name = "LATCHKEY_MAIL_URL",
        hide_env_values = true
    )]
    pub mail_url: Option<String>,

    /// The mails' From address, e.g. "Example <noreply@app.example>".
    #[arg(long, env = "LATCHKEY_MAIL_FROM", value_name = "LATCHKEY_MAIL_FROM")]
    pub mail_from: Option<String>,

    /// Instead of mail: POST each message as a signed JSON event here.
    #[arg(
        long,
        env = "LATCHKEY_WEBHOOK_URL",
        value_name = "LATCHKEY_WEBHOOK_URL"
    )]
    pub webhook_url: Option<String>,

    /// The webhook signing secret, whsec_<base64> (Standard Webhooks).
    #[arg(
        long,
        env = "LATCHKEY_WEBHOOK_SECRET",
        value_name = "LATCHKEY_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub webhook_secret: Option<String>,
}

impl AccountArgs {
    pub fn to_settings(&self) -> AccountSettings {
        AccountSettings {
            reset_ttl: to_delta(self.reset_ttl),
            verify_ttl: to_delta(self.verify_ttl),
            reset_link: self.reset_link.clone(),
            verify_link: self.verify_link.clone(),
            require_verified_email: self.require_verified_email,
            event_retention: to_delta(self.event_retention),
        }
    }

    pub fn delivery(&self) -> Result<Delivery, ConfigError> {
        Delivery::from_parts(
            self.mail_url.as_deref(),
            self.mail_from.as_deref(),
            self.webhook_url.as_deref(),
            self.webhook_secret.as_deref(),
        )
        .map_err(|(variable, reason)| ConfigError { variable, reason })
    }
}
