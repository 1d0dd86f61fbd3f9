//! `Client::introspect` without a cache: every question is latchkey's answer.

use std::time::{Duration, Instant};

use latchkey_client::{Client, Error, Unavailable};

use crate::harness::{Backend, Latchkey, SERVICE_KEY, closed_address};
use crate::on_both_backends;

on_both_backends!(
    a_live_token_is_the_identity_of_its_user_and_session,
    an_admins_token_carries_the_admin_flag,
    unknown_and_garbage_tokens_are_none,
    a_logged_out_token_is_none_while_the_users_other_sessions_stay_live,
    a_wrong_service_key_is_unauthorized_not_none,
    a_base_url_that_is_not_latchkey_is_an_unexpected_status,
    a_stopped_latchkey_is_unavailable,
);

fn client_for(latchkey: &Latchkey) -> Client {
    Client::new(&latchkey.address, SERVICE_KEY).expect("a client")
}

async fn a_live_token_is_the_identity_of_its_user_and_session(backend: Backend) {
    // Arrange
    let latchkey = Latchkey::start(backend).await;
    let user = latchkey.register_user().await;
    let client = client_for(&latchkey);

    // Act
    let identity = client.introspect(&user.token).await.expect("an answer");

    // Assert
    let identity = identity.expect("the token is live");
    let (iat, exp) = latchkey.session_claims(&user.session_id).await;
    assert_eq!(identity.user_id, user.user_id);
    assert_eq!(identity.email, user.email);
    assert!(!identity.admin);
    assert_eq!(identity.session_id, user.session_id);
    assert_eq!(identity.issued_at.timestamp(), iat);
    assert_eq!(identity.expires_at.timestamp(), exp);
    assert!(identity.expires_at > identity.issued_at);
}

async fn an_admins_token_carries_the_admin_flag(backend: Backend) {
    // Arrange
    let latchkey = Latchkey::start(backend).await;
    let admin = latchkey.register_admin().await;

    // Act
    let identity = client_for(&latchkey).introspect(&admin.token).await;

    // Assert
    let identity = identity.expect("an answer").expect("the token is live");
    assert!(identity.admin);
    assert_eq!(identity.user_id, admin.user_id);
}

async fn unknown_and_garbage_tokens_are_none(backend: Backend) {
    // Arrange
    let latchkey = Latchkey::start(backend).await;
    let client = client_for(&latchkey);
    let user = latchkey.register_user().await;
    // The user's token with its last character changed: it fails latchkey's
    // checksum, or names no session.
    let mut altered = user.token.clone();
    let last = altered.pop().expect("a token");
    altered.push(if last == 'A' { 'B' } else { 'A' });
    let unknown = format!("lk_{}", "A".repeat(48));

    for token in [
        altered.as_str(),
        unknown.as_str(),
        "not a token at all",
        "",
        "\"}{",
    ] {
        // Act
        let answer = client.introspect(token).await;

        // Assert
        assert!(matches!(answer, Ok(None)), "{token:?}: {answer:?}");
    }
}

async fn a_logged_out_token_is_none_while_the_users_other_sessions_stay_live(backend: Backend) {
    // Arrange
    let latchkey = Latchkey::start(backend).await;
    let client = client_for(&latchkey);
    let user = latchkey.register_user().await;
    let other_token = latchkey.login(&user.email).await;
    assert!(
        client
            .introspect(&user.token)
            .await
            .expect("an answer")
            .is_some()
    );

    // Act
    latchkey.logout(&user.token).await;

    // Assert
    assert_eq!(
        client.introspect(&user.token).await.expect("an answer"),
        None
    );
    let other = client.introspect(&other_token).await.expect("an answer");
    assert_eq!(other.expect("still live").user_id, user.user_id);
}

async fn a_wrong_service_key_is_unauthorized_not_none(backend: Backend) {
    // Arrange
    let latchkey = Latchkey::start(backend).await;
    let user = latchkey.register_user().await;
    let wrong_key = "service-key-wrong-wrong-wrong-wrong-wrong-wrong";
    let client = Client::new(&latchkey.address, wrong_key).expect("a client");

    // Act
    let error = client
        .introspect(&user.token)
        .await
        .expect_err("not an answer");

    // Assert
    assert!(matches!(error, Error::Unauthorized), "{error:?}");
    assert!(!error.is_unavailable());
    let shown = format!("{error} {error:?}");
    assert!(
        !shown.contains(wrong_key) && !shown.contains(&user.token),
        "{shown}"
    );
}

async fn a_base_url_that_is_not_latchkey_is_an_unexpected_status(backend: Backend) {
    // Arrange: latchkey answers 404 under a path it does not serve.
    let latchkey = Latchkey::start(backend).await;
    let user = latchkey.register_user().await;
    let client = Client::new(latchkey.url("/not-latchkey/"), SERVICE_KEY).expect("a client");

    // Act
    let error = client
        .introspect(&user.token)
        .await
        .expect_err("not an answer");

    // Assert
    assert!(
        matches!(error, Error::UnexpectedStatus { status: 404 }),
        "{error:?}"
    );
}

async fn a_stopped_latchkey_is_unavailable(backend: Backend) {
    // Arrange: the client has talked to latchkey, so it holds a connection.
    let latchkey = Latchkey::start(backend).await;
    let user = latchkey.register_user().await;
    let client = client_for(&latchkey);
    assert!(
        client
            .introspect(&user.token)
            .await
            .expect("an answer")
            .is_some()
    );

    // Act
    latchkey.stop().await;
    let answer = client.introspect(&user.token).await;

    // Assert
    assert!(
        matches!(
            answer,
            Err(Error::Unavailable {
                reason: Unavailable::Unreachable,
                ..
            })
        ),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_latchkey_that_is_down_is_unavailable_not_none() {
    // Arrange
    let client = Client::new(closed_address(), SERVICE_KEY).expect("a client");

    // Act
    let answer = client.introspect("lk_anything").await;

    // Assert
    let error = answer.expect_err("not an answer");
    assert!(
        matches!(
            error,
            Error::Unavailable {
                reason: Unavailable::Unreachable,
                source: Some(_),
            }
        ),
        "{error:?}"
    );
    assert!(error.is_unavailable());
    assert!(!format!("{error:?}").contains(SERVICE_KEY));
}

#[tokio::test]
async fn a_latchkey_that_never_answers_is_unavailable_after_the_timeout() {
    // Arrange: the kernel accepts the connection; nobody ever reads it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = format!("http://{}", silent.local_addr().expect("its address"));
    let client = Client::builder(address, SERVICE_KEY)
        .timeout(Duration::from_millis(300))
        .build()
        .expect("a client");
    let started = Instant::now();

    // Act
    let answer = client.introspect("lk_anything").await;

    // Assert
    assert!(
        matches!(
            answer,
            Err(Error::Unavailable {
                reason: Unavailable::Timeout,
                ..
            })
        ),
        "{answer:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
