//! The cache of positive answers: what reaches latchkey, and for how long a
//! logged-out token is still accepted.

use std::time::Duration;

use latchkey_client::{CacheConfig, Client};

use crate::harness::{Backend, Latchkey, SERVICE_KEY};
use crate::on_both_backends;

on_both_backends!(
    without_a_cache_every_question_reaches_latchkey,
    with_the_cache_a_second_question_for_a_live_token_does_not_reach_latchkey,
    a_cached_answer_is_given_while_latchkey_is_down,
    a_logged_out_token_is_accepted_from_the_cache_until_the_ttl_then_refused,
    refusals_are_never_cached,
);

fn cached_client(latchkey: &Latchkey, ttl: Duration) -> Client {
    Client::builder(&latchkey.address, SERVICE_KEY)
        .cache(CacheConfig {
            ttl,
            max_entries: 100,
        })
        .build()
        .expect("a client")
}

async fn without_a_cache_every_question_reaches_latchkey(backend: Backend) {
    // Arrange
    let latchkey = Latchkey::start(backend).await;
    let user = latchkey.register_user().await;
    let client = Client::new(&latchkey.address, SERVICE_KEY).expect("a client");

    // Act
    for _ in 0..2 {
        assert!(
            client
                .introspect(&user.token)
                .await
                .expect("an answer")
                .is_some()
        );
    }

    // Assert
    assert_eq!(latchkey.introspections_served().await, 2);
}

async fn with_the_cache_a_second_question_for_a_live_token_does_not_reach_latchkey(
    backend: Backend,
) {
    // Arrange
    let latchkey = Latchkey::start(backend).await;
    let user = latchkey.register_user().await;
    let client = cached_client(&latchkey, Duration::from_secs(60));

    // Act
    let first = client.introspect(&user.token).await.expect("an answer");
    let second = client.introspect(&user.token).await.expect("an answer");
    // A clone shares the cache.
    let third = client
        .clone()
        .introspect(&user.token)
        .await
        .expect("an answer");

    // Assert
    assert_eq!(latchkey.introspections_served().await, 1);
    let first = first.expect("the token is live");
    assert_eq!(first.user_id, user.user_id);
    assert_eq!(second.as_ref(), Some(&first));
    assert_eq!(third.as_ref(), Some(&first));
}

async fn a_cached_answer_is_given_while_latchkey_is_down(backend: Backend) {
    // Arrange
    let latchkey = Latchkey::start(backend).await;
    let user = latchkey.register_user().await;
    let other = latchkey.register_user().await;
    let client = cached_client(&latchkey, Duration::from_secs(60));
    assert!(
        client
            .introspect(&user.token)
            .await
            .expect("an answer")
            .is_some()
    );

    // Act
    latchkey.stop().await;
    let cached = client.introspect(&user.token).await;
    let uncached = client.introspect(&other.token).await;

    // Assert
    assert_eq!(
        cached.expect("from the cache").expect("live").user_id,
        user.user_id
    );
    let error = uncached.expect_err("not in the cache, and latchkey is down");
    assert!(error.is_unavailable(), "{error:?}");
}

async fn a_logged_out_token_is_accepted_from_the_cache_until_the_ttl_then_refused(
    backend: Backend,
) {
    // Arrange
    let ttl = Duration::from_secs(1);
    let latchkey = Latchkey::start(backend).await;
    let user = latchkey.register_user().await;
    let client = cached_client(&latchkey, ttl);
    assert!(
        client
            .introspect(&user.token)
            .await
            .expect("an answer")
            .is_some()
    );

    // Act
    latchkey.logout(&user.token).await;
    let within_ttl = client.introspect(&user.token).await.expect("an answer");
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let after_ttl = client.introspect(&user.token).await.expect("an answer");

    // Assert
    assert!(within_ttl.is_some(), "the cached answer stands for the TTL");
    assert_eq!(after_ttl, None, "past the TTL latchkey's word counts");
    assert_eq!(latchkey.introspections_served().await, 2);
}

async fn refusals_are_never_cached(backend: Backend) {
    // Arrange
    let latchkey = Latchkey::start(backend).await;
    let client = cached_client(&latchkey, Duration::from_secs(60));
    let unknown = format!("lk_{}", "A".repeat(48));

    // Act
    for _ in 0..2 {
        assert_eq!(client.introspect(&unknown).await.expect("an answer"), None);
    }

    // Assert
    assert_eq!(latchkey.introspections_served().await, 2);
}
