//! Delivery by webhook: the message's JSON, POSTed and signed the way the
//! Standard Webhooks specification says (<https://www.standardwebhooks.com>),
//! so that a receiver can verify it with any of that specification's
//! libraries:
//!
//! - `webhook-id`: the outbox row's id, the same on every retry, so a
//!   receiver can drop a message it has already handled;
//! - `webhook-timestamp`: the attempt's time in Unix seconds, signed, so a
//!   receiver can refuse old replays;
//! - `webhook-signature`: `v1,` and the base64 HMAC-SHA256, under the
//!   decoded `whsec_` key, of `{id}.{timestamp}.{body}`.
//!
//! Any 2xx answer means delivered; anything else, or no answer within the
//! timeout, is retried. Redirects are not followed: a signed code is never
//! sent anywhere but the configured URL.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::delivery::config::WebhookConfig;

const TIMEOUT: Duration = Duration::from_secs(10);

/// POSTs signed events to one URL.
pub struct WebhookPoster {
    client: reqwest::Client,
    config: WebhookConfig,
}

impl WebhookPoster {
    pub fn new(config: &WebhookConfig) -> reqwest::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("latchkey/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            config: config.clone(),
        })
    }

    /// POSTs `body` (a message's JSON) as the event `id`, signed for now.
    /// An error names neither the URL nor anything of the body.
    pub async fn post(&self, id: &str, body: &str) -> anyhow::Result<()> {
        let timestamp = chrono::Utc::now().timestamp();
        let signature = sign(self.config.key(), id, timestamp, body.as_bytes());
        let response = self
            .client
            .post(self.config.url().clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("the webhook could not be reached: {}", e.without_url())
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            anyhow::bail!("the webhook answered {status}")
        }
    }
}

/// The `webhook-signature` header's value: `v1,` and the base64 of
/// HMAC-SHA256 under `key` of `{id}.{timestamp}.{body}`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_standard_webhooks_example() {
        // The example of the specification and its reference libraries:
        // what a receiver's library computes for these inputs.
        let config = WebhookConfig::parse(
            "https://hooks.example/x",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        .unwrap();
        assert_eq!(
            sign(
                config.key(),
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn the_signature_covers_the_id_the_timestamp_and_the_body() {
        let key = [42u8; 32];
        let signed = sign(&key, "a", 1, b"{}");
        assert_ne!(signed, sign(&key, "b", 1, b"{}"));
        assert_ne!(signed, sign(&key, "a", 2, b"{}"));
        assert_ne!(signed, sign(&key, "a", 1, b"{ }"));
        assert_ne!(signed, sign(&[43u8; 32], "a", 1, b"{}"));
    }
}
