//! The threads every query runs on: one per pooled connection, fed by one
//! queue.
//!
//! A request puts its work on the queue and awaits the answer; each thread
//! takes the next job, checks a connection out of the pool, runs the job and
//! sends the result back. While the queue holds work, a thread that finishes
//! a job takes the next one without sleeping, so a busy service makes no
//! thread wake-up per query. (Before, tokio's blocking pool behind a
//! semaphore of pool-size permits woke an idle blocking thread for every
//! query: in `bench/run.sh`'s status scenario the service spent 84 µs of CPU
//! per request, 20 % of its HTTP workers' time in futex calls; with these
//! threads 49 µs, and 17,700–18,600 instead of 11,600–11,900 requests/s.)
//!
//! The wait in the queue is bounded by the pool's acquire timeout: a request
//! still queued then gets 503 + Retry-After, as a pool checkout that timed
//! out would. Work a thread has started is always awaited to the end, so a
//! client never gets 503 for a change that was made.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::anyhow;
use crossbeam_channel::Sender;
use tokio::sync::oneshot;

use super::{Connection, Pool};
use crate::error::ApiError;

type Job = Box<dyn FnOnce(&Pool) + Send>;

#[derive(Clone)]
pub struct DbThreads {
    jobs: Sender<Job>,
    wait: Duration,
}

impl DbThreads {
    /// Starts `threads` threads (at least one) working on `pool`; a job
    /// waits at most `wait` in the queue. The threads stop when the last
    /// clone of the returned value is dropped.
    pub fn start(pool: &Pool, threads: u32, wait: Duration) -> std::io::Result<Self> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            let pool = pool.clone();
            std::thread::Builder::new()
                .name(format!("latchkey-db-{i}"))
                .spawn(move || {
                    // Ends when every sender is gone: the service is stopping.
                    while let Ok(job) = queue.recv() {
                        // A panicking job fails its request with a 500 (its
                        // answer channel is dropped), not the thread.
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&pool)));
                    }
                })?;
        }
        Ok(Self { jobs, wait })
    }

    /// Jobs waiting for a thread (a job that timed out counts until a thread
    /// reaches it and drops it).
    pub fn queued(&self) -> usize {
        self.jobs.len()
    }

    /// Runs `work` with a pooled connection on one of the threads: neither
    /// the pool checkout nor the query may stall an async worker.
    pub async fn run<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, ApiError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        // Set by whoever comes first: the thread starting the job, or the
        // request giving up on the queue.
        let claimed = Arc::new(AtomicBool::new(false));
        let job_claimed = Arc::clone(&claimed);
        self.submit(move |pool: &Pool| {
            if job_claimed.swap(true, Ordering::AcqRel) || tx.is_closed() {
                return; // timed out in the queue, or the request is gone
            }
            let _ = tx.send(with_connection(pool, work));
        })?;
        self.answer(&claimed, rx).await
    }

    /// Queues `job` for the next free thread; nobody awaits it.
    pub(super) fn submit(&self, job: impl FnOnce(&Pool) + Send + 'static) -> Result<(), ApiError> {
        self.jobs
            .send(Box::new(job))
            .map_err(|_| ApiError::internal("database job", anyhow!("the threads have stopped")))
    }

    /// Awaits the answer to queued work. `claimed` is set by whoever comes
    /// first: the thread starting the work, or this request giving up after
    /// the queue's bound (503). Work a thread has started is awaited to the
    /// end.
    pub(super) async fn answer<T>(
        &self,
        claimed: &AtomicBool,
        mut rx: oneshot::Receiver<Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let dropped =
            |_| ApiError::internal("database job", anyhow!("the job ended without an answer"));
        match tokio::time::timeout(self.wait, &mut rx).await {
            Ok(answer) => answer.map_err(dropped)?,
            Err(_) if !claimed.swap(true, Ordering::AcqRel) => Err(ApiError::Unavailable(anyhow!(
                "timed out waiting for a database connection"
            ))),
            Err(_) => rx.await.map_err(dropped)?,
        }
    }
}

/// Checks a connection out of `pool` and runs `work` with it.
pub(super) fn with_connection<T>(
    pool: &Pool,
    work: impl FnOnce(&mut Connection) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    pool.get().map_err(ApiError::from).and_then(|mut conn| {
        let result = work(&mut conn);
        // A connection whose server went away would fail again for the next
        // request: have the pool close it instead.
        if matches!(result, Err(ApiError::Unavailable(_))) {
            conn.mark_lost();
        }
        result
    })
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::db::{DatabaseUrl, PoolOptions, build_pool};

    /// A pool on a fresh SQLite file, removed with the returned directory.
    pub(in crate::db) fn sqlite_pool(size: u32) -> (tempfile::TempDir, Pool) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = DatabaseUrl::Sqlite(dir.path().join("t.sqlite3").display().to_string());
        let options = PoolOptions {
            max_size: size,
            min_idle: Some(0),
            acquire_timeout: Duration::from_secs(5),
        };
        (dir, build_pool(&url, &options))
    }

    #[tokio::test]
    async fn a_job_runs_on_a_pooled_connection_and_returns_its_value() {
        let (_dir, pool) = sqlite_pool(1);
        let threads = DbThreads::start(&pool, 1, Duration::from_secs(5)).unwrap();
        let value = threads
            .run(|conn| Ok(crate::db::ping(conn).map(|()| 42)?))
            .await
            .unwrap();
        assert_eq!(value, 42);
    }

    #[tokio::test]
    async fn a_panicking_job_fails_its_request_and_the_thread_goes_on() {
        let (_dir, pool) = sqlite_pool(1);
        let threads = DbThreads::start(&pool, 1, Duration::from_secs(5)).unwrap();
        let failed = threads
            .run(|_| -> Result<(), ApiError> { panic!("a bug in a query") })
            .await;
        assert!(
            matches!(failed, Err(ApiError::Internal { .. })),
            "{failed:?}"
        );
        assert_eq!(threads.run(|_| Ok(7)).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_queued_job_times_out_but_a_started_one_is_awaited_to_the_end() {
        // One thread, busy for longer than the queue's bound.
        let (_dir, pool) = sqlite_pool(1);
        let threads = DbThreads::start(&pool, 1, Duration::from_millis(100)).unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let busy = {
            let threads = threads.clone();
            tokio::spawn(async move {
                threads
                    .run(|_| {
                        std::thread::sleep(Duration::from_millis(400));
                        Ok("done")
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let counter = Arc::clone(&ran);
        let queued = threads
            .run(move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert!(
            matches!(queued, Err(ApiError::Unavailable(_))),
            "{queued:?}"
        );
        assert_eq!(busy.await.unwrap().unwrap(), "done");
        // The timed-out job is dropped when the thread reaches it, not run.
        assert_eq!(threads.run(|_| Ok(())).await.unwrap(), ());
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }

    /// Occupies the (single) thread with a job that runs until the returned
    /// flag is set; returns once the thread has taken it off the queue.
    pub(in crate::db) async fn occupy_the_thread(
        threads: &DbThreads,
    ) -> (
        tokio::task::JoinHandle<Result<(), ApiError>>,
        Arc<AtomicBool>,
    ) {
        let (started, release) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let busy = tokio::spawn({
            let threads = threads.clone();
            let (started, release) = (Arc::clone(&started), Arc::clone(&release));
            async move {
                threads
                    .run(move |_| {
                        started.store(true, Ordering::SeqCst);
                        while !release.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Ok(())
                    })
                    .await
            }
        });
        while !started.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (busy, release)
    }

    #[tokio::test]
    async fn jobs_behind_a_busy_thread_are_counted_as_queued() {
        let (_dir, pool) = sqlite_pool(1);
        let threads = DbThreads::start(&pool, 1, Duration::from_secs(5)).unwrap();
        assert_eq!(threads.queued(), 0);
        // The thread has taken the first job off the queue before the
        // second is queued, so exactly one waits.
        let (busy, release) = occupy_the_thread(&threads).await;
        let waiting = tokio::spawn({
            let threads = threads.clone();
            async move { threads.run(|_| Ok(())).await }
        });
        while threads.queued() < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(threads.queued(), 1);
        release.store(true, Ordering::SeqCst);
        busy.await.unwrap().unwrap();
        waiting.await.unwrap().unwrap();
        assert_eq!(threads.queued(), 0);
    }

    #[tokio::test]
    async fn a_job_whose_request_is_gone_is_not_run() {
        let (_dir, pool) = sqlite_pool(1);
        let threads = DbThreads::start(&pool, 1, Duration::from_secs(5)).unwrap();
        let (busy, release) = occupy_the_thread(&threads).await;
        // A request queued behind it, then abandoned (its client hung up).
        let ran = Arc::new(AtomicBool::new(false));
        let counter = Arc::clone(&ran);
        let abandoned = threads.run(move |_| {
            counter.store(true, Ordering::SeqCst);
            Ok(())
        });
        let _ = tokio::time::timeout(Duration::from_millis(20), abandoned).await;
        release.store(true, Ordering::SeqCst);
        busy.await.unwrap().unwrap();
        threads.run(|_| Ok(())).await.unwrap();
        assert!(!ran.load(Ordering::SeqCst), "the abandoned job ran");
    }
}
