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
#[path = "hashing_tests.rs"]
mod tests;
