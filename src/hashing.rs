//! Password hashing on a bounded pool of its own threads.
//!
//! bcrypt is deliberately slow (≈ 0.1–0.3 s at cost 12). Running it on the
//! async workers would stall token checks, and running it on the threads
//! that run queries would let a login flood crowd out database work. So it gets
//! one thread per core and a bounded queue: when the queue is full the
//! request is refused at once (503 + Retry-After) instead of waiting. The
//! wait in the queue is bounded too (`LATCHKEY_BCRYPT_MAX_WAIT`): a check
//! that waited longer is refused when a thread reaches it, and one whose
//! request is gone is skipped.
//!
//! Before bcrypt, each password is HMAC-SHA256'd with the optional pepper and
//! base64-encoded (44 bytes): bcrypt ignores everything past 72 bytes, and
//! this way two long passwords that differ late are still different.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use hmac::{Hmac, Mac as _};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::domain::Password;
use crate::error::ApiError;
use crate::settings::HashingSettings;

type Job = Box<dyn FnOnce() + Send>;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("too many password checks are waiting")]
    Busy,
    #[error("the password hashing pool has stopped")]
    Stopped,
    #[error("bcrypt failed: {0}")]
    Bcrypt(#[from] bcrypt::BcryptError),
}

impl From<HashError> for ApiError {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Busy => Self::Overloaded,
            other => Self::internal("password hashing failed", other),
        }
    }
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, PartialEq, Eq)]
pub enum Verification {
    Mismatch,
    /// The password matches; `upgraded_hash` is set when the stored hash used
    /// a lower cost than configured and should be replaced by it.
    Match {
        upgraded_hash: Option<String>,
    },
}

#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: Sender<Job>,
    /// One per password check allowed in flight: the threads' work plus the
    /// queue. Taken before any other work is done for a request.
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    /// Where the time spent waiting for a thread is recorded, if anywhere.
    wait_seconds: Option<prometheus::Histogram>,
    cost: u32,
    pepper: Option<SecretString>,
    max_wait: Duration,
    /// Verified against when the email is unknown, so that "no such user"
    /// costs the same time as "wrong password".
    dummy_hash: String,
}

impl PasswordHasher {
    /// Starts the threads. Computes one dummy hash up front (one bcrypt run).
    pub fn start(
        settings: &HashingSettings,
        wait_seconds: Option<prometheus::Histogram>,
    ) -> Result<Self, HashError> {
        let threads = match settings.threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let queue = settings.queue.max(1);
        // The slots bound the checks in flight; the channel never holds more.
        let (jobs, receiver) = crossbeam_channel::bounded::<Job>(threads + queue);
        for i in 0..threads {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("latchkey-bcrypt-{i}"))
                .spawn(move || work(&receiver))
                .map_err(|_| HashError::Stopped)?;
        }
        let pepper = settings.pepper.clone();
        let dummy_hash = bcrypt::hash(
            prehash(pepper.as_ref(), "latchkey dummy password"),
            settings.bcrypt_cost,
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                jobs,
                slots: Arc::new(Semaphore::new(threads + queue)),
                waiting: AtomicUsize::new(0),
                wait_seconds,
                cost: settings.bcrypt_cost,
                pepper,
                max_wait: settings.max_wait,
                dummy_hash,
            }),
        })
    }

    /// Reserves room for password checks before anything else is done for
    /// a request: when every thread is busy and the queue is full, the
    /// request is refused at once, before it costs a database query.
    pub fn reserve(&self) -> Result<HashSlot, HashError> {
        let permit = Arc::clone(&self.inner.slots)
            .try_acquire_owned()
            .map_err(|_| HashError::Busy)?;
        Ok(HashSlot {
            hasher: self.clone(),
            _permit: permit,
        })
    }

    /// Hashes a new password with the configured cost (reserving a slot).
    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        self.reserve()?.hash(password).await
    }

    /// Checks a password (reserving a slot); see [`HashSlot::verify`].
    pub async fn verify(
        &self,
        password: Password,
        stored: Option<String>,
    ) -> Result<Verification, HashError> {
        self.reserve()?.verify(password, stored).await
    }

    async fn hash_in_slot(&self, password: Password) -> Result<String, HashError> {
        let inner = Arc::clone(&self.inner);
        self.run(move || {
            bcrypt::hash(
                prehash(inner.pepper.as_ref(), password.expose()),
                inner.cost,
            )
            .map_err(HashError::from)
        })
        .await?
    }

    /// Checks a password against a stored hash, or against the dummy hash
    /// when there is none, so both cases take the same time.
    async fn verify_in_slot(
        &self,
        password: Password,
        stored: Option<String>,
    ) -> Result<Verification, HashError> {
        let inner = Arc::clone(&self.inner);
        self.run(move || {
            let candidate = prehash(inner.pepper.as_ref(), password.expose());
            let (hash, known) = match &stored {
                Some(hash) => (hash.as_str(), true),
                None => (inner.dummy_hash.as_str(), false),
            };
            // A malformed stored hash counts as a mismatch, never a 500 that
            // would tell an attacker something about the account.
            let matches = bcrypt::verify(&candidate, hash).unwrap_or(false) && known;
            if !matches {
                return Ok(Verification::Mismatch);
            }
            let upgraded_hash = if cost_of(hash).is_some_and(|cost| cost < inner.cost) {
                Some(bcrypt::hash(&candidate, inner.cost)?)
            } else {
                None
            };
            Ok(Verification::Match { upgraded_hash })
        })
        .await?
    }

    /// Password checks queued or running right now.
    pub fn waiting(&self) -> usize {
        self.inner.waiting.load(Ordering::Relaxed)
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (tx, rx) = oneshot::channel();
        let inner = Arc::clone(&self.inner);
        inner.waiting.fetch_add(1, Ordering::Relaxed);
        let guard = WaitingGuard(Arc::clone(&inner));
        let queued_at = Instant::now();
        let wait_histogram = self.inner.wait_seconds.clone();
        let max_wait = self.inner.max_wait;
        let boxed: Job = Box::new(move || {
            let waited = queued_at.elapsed();
            if let Some(histogram) = wait_histogram {
                histogram.observe(waited.as_secs_f64());
            }
            // No bcrypt run for a request that is gone (its client hung up
            // while it waited), nor for one that waited past the bound: in
            // bench/run.sh's login flood queued logins otherwise waited up
            // to 17 s, far longer than clients wait for an answer.
            if tx.is_closed() {
                return;
            }
            let _ = tx.send(if waited > max_wait {
                Err(HashError::Busy)
            } else {
                Ok(job())
            });
        });
        match self.inner.jobs.try_send(boxed) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(HashError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(HashError::Stopped),
        }
        let result = rx.await.map_err(|_| HashError::Stopped);
        drop(guard);
        result?
    }
}

/// Room reserved for the password checks of one request.
pub struct HashSlot {
    hasher: PasswordHasher,
    _permit: OwnedSemaphorePermit,
}

impl HashSlot {
    /// Hashes a new password with the configured cost.
    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        self.hasher.hash_in_slot(password).await
    }

    /// Checks a password against a stored hash, or against the dummy hash
    /// when there is none, so both cases take the same time.
    pub async fn verify(
        &self,
        password: Password,
        stored: Option<String>,
    ) -> Result<Verification, HashError> {
        self.hasher.verify_in_slot(password, stored).await
    }
}

struct WaitingGuard(Arc<Inner>);

impl Drop for WaitingGuard {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// bcrypt threads run only on CPU time nothing else wants: on Linux under
/// `SCHED_IDLE`, elsewhere (or where that is refused) at the lowest nice
/// level. Idle cores still run them at full speed, so logins are as fast as
/// ever on a machine with room; under full load token checks come first,
/// and a login flood cannot take the CPU from them. A woken thread preempts
/// a `SCHED_IDLE` one at once, but may wait for a nice one: in
/// bench/run.sh's flood (8 s runs, alternating) bcrypt took 0.11-0.18 of
/// the 2 cores at nice 19 and 0.04-0.15 under `SCHED_IDLE`, and the checks
/// kept 0.29-0.40 (mean 0.35, 6 runs) and 0.32-0.44 (mean 0.38, 8 runs) of
/// their status throughput. (At nice 10: 0.26-0.32.)
fn work(receiver: &Receiver<Job>) {
    lower_this_threads_priority();
    // Ends when every sender is gone: the service is stopping.
    while let Ok(job) = receiver.recv() {
        job();
    }
}

fn lower_this_threads_priority() {
    use thread_priority::{ThreadPriority, set_current_thread_priority};
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
            thread_native_id,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        if set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle).is_ok() {
            return;
        }
    }
    if set_current_thread_priority(ThreadPriority::Min).is_err() {
        tracing::debug!("could not lower the bcrypt threads' priority");
    }
}

/// HMAC-SHA256(pepper, password), base64: 44 bytes, under bcrypt's 72.
fn prehash(pepper: Option<&SecretString>, password: &str) -> String {
    let key = pepper.map_or(&[][..], |p| p.expose_secret().as_bytes());
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(password.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The cost recorded in a `$2b$12$...` hash.
fn cost_of(hash: &str) -> Option<u32> {
    hash.split('$').nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
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
}
