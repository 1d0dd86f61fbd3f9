//! Unit tests of `crate::delivery::config` (a file of their own, to keep the module short).

use super::*;

/// The Standard Webhooks specification's example secret (24 bytes).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn smtp(url: &str) -> SmtpConfig {
    SmtpConfig::parse(url, "noreply@app.example").unwrap()
}

#[test]
fn smtp_starts_plain_and_upgrades_when_offered_on_port_25() {
    let config = smtp("smtp://mail.example");
    assert_eq!(config.host(), "mail.example");
    assert_eq!(config.port(), 25);
    assert_eq!(config.security(), SmtpSecurity::StarttlsWhenOffered);
    assert!(config.credentials().is_none());
}

#[test]
fn smtps_is_tls_from_the_start_on_port_465() {
    let config = smtp("smtps://mail.example");
    assert_eq!(config.port(), 465);
    assert_eq!(config.security(), SmtpSecurity::ImplicitTls);
    assert_eq!(smtp("smtps://mail.example:2465").port(), 2465);
}

#[test]
fn tls_off_and_required_are_the_only_query_options() {
    assert_eq!(
        smtp("smtp://127.0.0.1:2525?tls=off").security(),
        SmtpSecurity::Plain
    );
    assert_eq!(
        smtp("smtp://mail.example:587?tls=required").security(),
        SmtpSecurity::StarttlsRequired
    );
    assert_eq!(
        smtp("smtps://mail.example?tls=off").security(),
        SmtpSecurity::Plain
    );
    for url in [
        "smtp://mail.example?tls=maybe",
        "smtp://mail.example?port=1",
        "smtps://mail.example?tls=required",
    ] {
        let (variable, _) = SmtpConfig::parse(url, "a@b.example").unwrap_err();
        assert_eq!(variable, "LATCHKEY_MAIL_URL", "{url}");
    }
}

#[test]
fn smtp_credentials_are_percent_decoded() {
    let config = smtp("smtp://me%40app.example:p%40ss%3Aw%2Frd@mail.example:587");
    let credentials = config.credentials().unwrap();
    assert_eq!(credentials.username, "me@app.example");
    assert_eq!(credentials.password.expose_secret(), "p@ss:w/rd");
    assert_eq!(config.port(), 587);
}

#[test]
fn smtp_passwords_never_show() {
    let config = smtp("smtp://me:hunter2secret@mail.example:587");
    let delivery = Delivery::Smtp(config);
    let (debug, described) = (format!("{delivery:?}"), delivery.describe());
    for shown in [&debug, &described] {
        assert!(!shown.contains("hunter2secret"), "{shown}");
    }
    assert_eq!(
        described,
        "smtp to mail.example:587 (STARTTLS when offered, logging in as me) from noreply@app.example"
    );
}

#[test]
fn smtp_urls_of_other_shapes_are_refused_without_echoing_them() {
    for url in [
        "http://mail.example",
        "smtp://",
        "smtp://mail.example/inbox",
        "mail.example:25",
        "smtp://me:hunter2secret@mail.example:99999",
    ] {
        let (variable, reason) = SmtpConfig::parse(url, "a@b.example").unwrap_err();
        assert_eq!(variable, "LATCHKEY_MAIL_URL", "{url}");
        assert!(!reason.contains("hunter2secret"), "{reason}");
    }
}

#[test]
fn the_from_address_must_be_a_mailbox() {
    let config = SmtpConfig::parse("smtp://mail.example", "Example <noreply@app.example>").unwrap();
    assert_eq!(config.from().name.as_deref(), Some("Example"));
    assert_eq!(config.from().email.to_string(), "noreply@app.example");
    let (variable, _) = SmtpConfig::parse("smtp://mail.example", "not an address").unwrap_err();
    assert_eq!(variable, "LATCHKEY_MAIL_FROM");
}

#[test]
fn webhook_secrets_follow_the_standard_webhooks_form() {
    let config = WebhookConfig::parse("https://hooks.example/x", SECRET).unwrap();
    assert_eq!(config.key().len(), 24);
    assert_eq!(config.url().as_str(), "https://hooks.example/x");
    let short = format!("whsec_{}", STANDARD.encode([7u8; 23]));
    let long = format!("whsec_{}", STANDARD.encode([7u8; 65]));
    let longest = format!("whsec_{}", STANDARD.encode([7u8; 64]));
    assert!(WebhookConfig::parse("https://hooks.example/x", &longest).is_ok());
    for secret in [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_not base64!",
        short.as_str(),
        long.as_str(),
        "",
    ] {
        let (variable, reason) =
            WebhookConfig::parse("https://hooks.example/x", secret).unwrap_err();
        assert_eq!(variable, "LATCHKEY_WEBHOOK_SECRET");
        assert!(reason.contains("whsec_"), "{reason}");
    }
}

#[test]
fn webhook_urls_are_http_or_https() {
    assert!(WebhookConfig::parse("http://127.0.0.1:9000/hook", SECRET).is_ok());
    for url in ["ftp://hooks.example/x", "hooks.example/x", "https://"] {
        let (variable, _) = WebhookConfig::parse(url, SECRET).unwrap_err();
        assert_eq!(variable, "LATCHKEY_WEBHOOK_URL", "{url}");
    }
}

#[test]
fn webhook_keys_and_url_credentials_never_show() {
    let delivery = Delivery::Webhook(
        WebhookConfig::parse("https://me:pw123@hooks.example:8443/x?token=t0ken", SECRET).unwrap(),
    );
    let debug = format!("{delivery:?}");
    for secret in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "pw123", "t0ken"] {
        assert!(!debug.contains(secret), "{debug}");
    }
    let described = delivery.describe();
    assert_eq!(
        described,
        "webhook to https://hooks.example:8443/x?… (Standard Webhooks signature)"
    );
}

#[test]
fn from_parts_chooses_one_delivery_or_none() {
    assert!(matches!(
        Delivery::from_parts(None, None, None, None),
        Ok(Delivery::None)
    ));
    assert!(matches!(
        Delivery::from_parts(Some(""), Some(" "), None, None),
        Ok(Delivery::None)
    ));
    assert!(matches!(
        Delivery::from_parts(Some("smtp://mail.example"), Some("a@b.example"), None, None),
        Ok(Delivery::Smtp(_))
    ));
    assert!(matches!(
        Delivery::from_parts(None, None, Some("https://hooks.example/x"), Some(SECRET)),
        Ok(Delivery::Webhook(_))
    ));
    assert!(!Delivery::None.is_active());
    assert!(!Delivery::None.describe().is_empty());
}

#[test]
fn from_parts_refuses_half_or_double_configurations() {
    let refused = |parts: [Option<&str>; 4]| {
        Delivery::from_parts(parts[0], parts[1], parts[2], parts[3])
            .unwrap_err()
            .0
    };
    let url = Some("smtp://mail.example");
    let from = Some("a@b.example");
    let hook = Some("https://hooks.example/x");
    assert_eq!(
        refused([url, from, hook, Some(SECRET)]),
        "LATCHKEY_WEBHOOK_URL"
    );
    assert_eq!(refused([url, None, None, None]), "LATCHKEY_MAIL_FROM");
    assert_eq!(refused([None, None, hook, None]), "LATCHKEY_WEBHOOK_SECRET");
    assert_eq!(
        refused([Some("smtp://"), from, None, None]),
        "LATCHKEY_MAIL_URL"
    );
}
