//! Unit tests of `crate::hashing` (a file of their own, to keep the module short).

use super::*;

fn hasher(cost: u32, pepper: Option<&str>) -> PasswordHasher {
    PasswordHasher::start(
        &HashingSettings {
            bcrypt_cost: cost,
            pepper: pepper.map(|p| SecretString::from(p.to_owned())),
            threads: 1,
            queue: 8,
            max_wait: Duration::MAX,
        },
        None,
    )
    .unwrap()
}

fn pw(s: &str) -> Password {
    Password::candidate(s.to_owned())
}

#[tokio::test]
async fn a_hash_verifies_its_password_only() {
    let h = hasher(4, None);
    let hash = h.hash(pw("correct horse battery")).await.unwrap();
    assert!(hash.starts_with("$2b$04$"));
    assert_eq!(
        h.verify(pw("correct horse battery"), Some(hash.clone()))
            .await
            .unwrap(),
        Verification::Match {
            upgraded_hash: None
        }
    );
    assert_eq!(
        h.verify(pw("wrong"), Some(hash)).await.unwrap(),
        Verification::Mismatch
    );
}

#[tokio::test]
async fn passwords_that_differ_after_72_bytes_are_different() {
    let h = hasher(4, None);
    let common = "a".repeat(80);
    let hash = h.hash(pw(&format!("{common}1"))).await.unwrap();
    assert_eq!(
        h.verify(pw(&format!("{common}2")), Some(hash))
            .await
            .unwrap(),
        Verification::Mismatch
    );
}

#[tokio::test]
async fn the_pepper_is_part_of_the_hash() {
    let hash = hasher(4, Some("pepper-one"))
        .hash(pw("correct horse battery"))
        .await
        .unwrap();
    let other = hasher(4, Some("pepper-two"));
    assert_eq!(
        other
            .verify(pw("correct horse battery"), Some(hash))
            .await
            .unwrap(),
        Verification::Mismatch
    );
}

#[tokio::test]
async fn unknown_users_never_match_even_the_dummy_password() {
    let h = hasher(4, None);
    assert_eq!(
        h.verify(pw("latchkey dummy password"), None).await.unwrap(),
        Verification::Mismatch
    );
}

#[tokio::test]
async fn a_lower_cost_hash_is_upgraded_on_match() {
    let old = hasher(4, None)
        .hash(pw("correct horse battery"))
        .await
        .unwrap();
    let h = hasher(5, None);
    let Verification::Match {
        upgraded_hash: Some(new),
    } = h
        .verify(pw("correct horse battery"), Some(old))
        .await
        .unwrap()
    else {
        panic!("expected an upgraded hash");
    };
    assert!(new.starts_with("$2b$05$"));
}

#[tokio::test]
async fn a_malformed_stored_hash_is_a_mismatch() {
    let h = hasher(4, None);
    assert_eq!(
        h.verify(pw("x"), Some("not a hash".into())).await.unwrap(),
        Verification::Mismatch
    );
}

#[tokio::test]
async fn a_check_that_waited_past_the_bound_is_refused_without_running() {
    let settings = HashingSettings {
        bcrypt_cost: 4,
        pepper: None,
        threads: 1,
        queue: 8,
        max_wait: Duration::from_millis(500),
    };
    let h = PasswordHasher::start(&settings, None).unwrap();
    let stored = bcrypt::hash(prehash(None, "the right password"), 4).unwrap();

    // A job holds the only thread until released. It is itself refused
    // if the thread (under SCHED_IDLE) picks it up only after the bound,
    // as on a machine kept busy by other work: then queue another.
    let mut attempts = 0;
    let (blocker, release) = loop {
        attempts += 1;
        assert!(attempts <= 100, "no blocking job ever started");
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (started, has_started) = oneshot::channel::<()>();
        let blocker = tokio::spawn({
            let h = h.clone();
            async move {
                h.run(move || {
                    let _ = started.send(());
                    let _ = released.recv();
                })
                .await
            }
        });
        if has_started.await.is_ok() {
            break (blocker, release);
        }
        assert!(matches!(blocker.await.unwrap(), Err(HashError::Busy)));
    };
    // The check queues behind it and waits past the bound.
    let check = tokio::spawn({
        let h = h.clone();
        async move { h.verify(pw("the right password"), Some(stored)).await }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    release.send(()).unwrap();

    blocker.await.unwrap().unwrap();
    let second = check.await.unwrap();
    assert!(matches!(second, Err(HashError::Busy)), "{second:?}");
    assert_eq!(h.waiting(), 0);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn bcrypt_threads_run_only_on_cpu_time_nothing_else_wants() {
    use thread_priority::{NormalThreadSchedulePolicy, ThreadSchedulePolicy};
    let h = hasher(4, None);
    let policy = h.run(thread_priority::thread_schedule_policy).await;
    assert_eq!(
        policy.unwrap().unwrap(),
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle)
    );
    // The caller's own thread is left as it was.
    assert_eq!(
        thread_priority::thread_schedule_policy().unwrap(),
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other)
    );
}

#[test]
fn slots_run_out_at_threads_plus_queue_and_come_back_when_released() {
    let h = hasher(4, None); // 1 thread, a queue of 8
    let slots: Vec<_> = (0..9).map(|_| h.reserve().unwrap()).collect();
    assert!(matches!(h.reserve(), Err(HashError::Busy)));
    drop(slots);
    assert!(h.reserve().is_ok());
}

#[test]
fn the_cost_is_read_from_the_hash() {
    assert_eq!(cost_of("$2b$12$abcdefghijklmnopqrstuv"), Some(12));
    assert_eq!(cost_of("garbage"), None);
}
