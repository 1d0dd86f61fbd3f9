//! Requests of one kind, coalesced: those that arrive while the database
//! threads are busy are answered together, by one job and one query.
//!
//! A request joins the pending list, and whoever makes the list non-empty
//! queues a job on the [`DbThreads`]. That job takes up to `max` pending
//! requests (queueing another job if more remain), runs them as one batch
//! on one connection and answers each. So an idle service runs a request on
//! its own at once (nothing waits for a batch to fill), and a busy one
//! answers every request that arrived while the threads were busy with one
//! query instead of one each: in `bench/run.sh`, token checks through a
//! batch cost MariaDB and the service less per check the busier they get.
//!
//! A pending request is bounded like any queued job: after the queue's wait
//! it gets 503 + Retry-After, unless a thread has already taken it into a
//! batch, in which case it is awaited to the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anyhow::anyhow;
use tokio::sync::oneshot;

use super::threads::with_connection;
use super::{Connection, DbThreads, Pool};
use crate::error::ApiError;

/// Answers a batch of inputs on one connection: one output per input, in
/// the same order.
type Work<I, O> = dyn Fn(&mut Connection, &[I]) -> Result<Vec<O>, ApiError> + Send + Sync;

pub struct Batcher<I, O> {
    inner: Arc<Inner<I, O>>,
}

impl<I, O> Clone for Batcher<I, O> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<I, O> {
    pending: Mutex<Vec<Pending<I, O>>>,
    threads: DbThreads,
    max: usize,
    work: Box<Work<I, O>>,
}

struct Pending<I, O> {
    input: I,
    /// Set by whoever comes first: the thread taking the request into a
    /// batch, or the request giving up after the queue's bound.
    claimed: Arc<AtomicBool>,
    answer: oneshot::Sender<Result<O, ApiError>>,
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Batches of at most `max` (at least 1) inputs, answered by `work` on
    /// `threads`.
    pub fn new(
        threads: DbThreads,
        max: usize,
        work: impl Fn(&mut Connection, &[I]) -> Result<Vec<O>, ApiError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                pending: Mutex::new(Vec::new()),
                threads,
                max: max.max(1),
                work: Box::new(work),
            }),
        }
    }

    /// Answers `input` in the next batch.
    pub async fn run(&self, input: I) -> Result<O, ApiError> {
        let (answer, rx) = oneshot::channel();
        let claimed = Arc::new(AtomicBool::new(false));
        let first = {
            let mut pending = self.inner.pending();
            pending.push(Pending {
                input,
                claimed: Arc::clone(&claimed),
                answer,
            });
            pending.len() == 1
        };
        if first {
            Inner::schedule(&self.inner)?;
        }
        self.inner.threads.answer(&claimed, rx).await
    }

    /// Requests waiting to be taken into a batch (one that timed out counts
    /// until a batch reaches it and drops it).
    pub fn pending(&self) -> usize {
        self.inner.pending().len()
    }
}

impl<I: Send + 'static, O: Send + 'static> Inner<I, O> {
    fn pending(&self) -> MutexGuard<'_, Vec<Pending<I, O>>> {
        // A panic while holding the lock cannot leave the list half-changed.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn schedule(this: &Arc<Self>) -> Result<(), ApiError> {
        let inner = Arc::clone(this);
        this.threads
            .submit(move |pool| Self::run_batch(&inner, pool))
    }

    fn run_batch(this: &Arc<Self>, pool: &Pool) {
        let (taken, more) = {
            let mut pending = this.pending();
            let n = pending.len().min(this.max);
            let taken: Vec<_> = pending.drain(..n).collect();
            (taken, !pending.is_empty())
        };
        if more {
            // Another thread may take the rest while this one works.
            let _ = Self::schedule(this);
        }
        let (inputs, answers): (Vec<I>, Vec<_>) = taken
            .into_iter()
            .filter(|p| !p.claimed.swap(true, Ordering::AcqRel) && !p.answer.is_closed())
            .map(|p| (p.input, p.answer))
            .unzip();
        if inputs.is_empty() {
            return; // all timed out, or their requests are gone
        }
        match with_connection(pool, |conn| (this.work)(conn, &inputs)) {
            Ok(outputs) if outputs.len() == answers.len() => {
                for (answer, output) in answers.into_iter().zip(outputs) {
                    let _ = answer.send(Ok(output));
                }
            }
            Ok(outputs) => {
                let error = ApiError::internal(
                    "database batch",
                    anyhow!("{} answers for {} requests", outputs.len(), answers.len()),
                );
                answer_all(answers, &error);
            }
            Err(error) => answer_all(answers, &error),
        }
    }
}

/// Gives every request of a failed batch the batch's error.
fn answer_all<O>(answers: Vec<oneshot::Sender<Result<O, ApiError>>>, error: &ApiError) {
    for answer in answers {
        let copy = match error {
            ApiError::Unavailable(e) => ApiError::Unavailable(anyhow!("{e:#}")),
            other => ApiError::internal("database batch", anyhow!("{other:#}")),
        };
        let _ = answer.send(Err(copy));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::db::threads::tests::{occupy_the_thread, sqlite_pool};

    /// A batcher that answers each input with itself doubled and records
    /// the size of every batch.
    fn doubling(threads: &DbThreads, max: usize) -> (Batcher<u32, u32>, Arc<Mutex<Vec<usize>>>) {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&sizes);
        let batcher = Batcher::new(threads.clone(), max, move |_, inputs: &[u32]| {
            recorded.lock().unwrap().push(inputs.len());
            Ok(inputs.iter().map(|i| i * 2).collect())
        });
        (batcher, sizes)
    }

    /// Queues `inputs` behind the busy thread and waits until all are pending.
    async fn queue_behind_busy_thread(
        batcher: &Batcher<u32, u32>,
        inputs: impl IntoIterator<Item = u32>,
    ) -> Vec<tokio::task::JoinHandle<Result<u32, ApiError>>> {
        let handles: Vec<_> = inputs
            .into_iter()
            .map(|i| {
                let batcher = batcher.clone();
                tokio::spawn(async move { batcher.run(i).await })
            })
            .collect();
        while batcher.pending() < handles.len() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        handles
    }

    #[tokio::test]
    async fn a_lone_request_is_answered_at_once_in_a_batch_of_its_own() {
        let (_dir, pool) = sqlite_pool(1);
        let threads = DbThreads::start(&pool, 1, Duration::from_secs(5)).unwrap();
        let (batcher, sizes) = doubling(&threads, 64);
        assert_eq!(batcher.run(21).await.unwrap(), 42);
        assert_eq!(batcher.run(5).await.unwrap(), 10);
        assert_eq!(*sizes.lock().unwrap(), [1, 1]);
    }

    /// Queues five requests behind a busy thread with batches of at most
    /// `max`, checks every answer and returns the sizes of the batches.
    async fn five_requests_behind_a_busy_thread(max: usize) -> Vec<usize> {
        let (_dir, pool) = sqlite_pool(1);
        let threads = DbThreads::start(&pool, 1, Duration::from_secs(5)).unwrap();
        let (batcher, sizes) = doubling(&threads, max);
        let (busy, release) = occupy_the_thread(&threads).await;
        let handles = queue_behind_busy_thread(&batcher, 1..=5).await;
        release.store(true, Ordering::SeqCst);
        busy.await.unwrap().unwrap();
        for (handle, input) in handles.into_iter().zip(1..=5) {
            assert_eq!(handle.await.unwrap().unwrap(), input * 2);
        }
        assert_eq!(batcher.pending(), 0);
        sizes.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn requests_that_arrive_while_the_threads_are_busy_share_one_batch() {
        assert_eq!(five_requests_behind_a_busy_thread(64).await, [5]);
    }

    #[tokio::test]
    async fn a_batch_takes_at_most_max_requests_and_leaves_the_rest_to_the_next() {
        assert_eq!(five_requests_behind_a_busy_thread(2).await, [2, 2, 1]);
    }

    #[tokio::test]
    async fn a_request_that_timed_out_while_pending_is_left_out_of_the_batch() {
        let (_dir, pool) = sqlite_pool(1);
        let threads = DbThreads::start(&pool, 1, Duration::from_millis(100)).unwrap();
        let (batcher, sizes) = doubling(&threads, 64);
        let (busy, release) = occupy_the_thread(&threads).await;
        let timed_out = batcher.run(1).await;
        assert!(
            matches!(timed_out, Err(ApiError::Unavailable(_))),
            "{timed_out:?}"
        );
        release.store(true, Ordering::SeqCst);
        busy.await.unwrap().unwrap();
        assert_eq!(batcher.run(2).await.unwrap(), 4);
        // The timed-out request was dropped, never run.
        assert_eq!(*sizes.lock().unwrap(), [1]);
    }

    #[tokio::test]
    async fn every_request_of_a_failed_batch_gets_the_error() {
        let (_dir, pool) = sqlite_pool(1);
        let threads = DbThreads::start(&pool, 1, Duration::from_secs(5)).unwrap();
        let batcher: Batcher<u32, u32> = Batcher::new(threads.clone(), 64, |_, _| {
            Err(ApiError::Unavailable(anyhow!("the database went away")))
        });
        let (busy, release) = occupy_the_thread(&threads).await;
        let handles = queue_behind_busy_thread(&batcher, 1..=3).await;
        release.store(true, Ordering::SeqCst);
        busy.await.unwrap().unwrap();
        for handle in handles {
            let answer = handle.await.unwrap();
            assert!(
                matches!(answer, Err(ApiError::Unavailable(_))),
                "{answer:?}"
            );
        }
    }
}
