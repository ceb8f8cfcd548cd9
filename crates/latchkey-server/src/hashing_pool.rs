//! Runs Argon2 on its own threads (one per core but one by default) in Linux's
//! `SCHED_IDLE` class: they run only when no runtime thread wants the CPU,
//! and a runtime thread that wakes preempts them at once. A sign-in flood
//! then queues for hashing and takes only the CPU time the rest of the
//! service leaves idle, so refreshes and bearer checks keep their latency;
//! with nothing else to do, hashing still gets every core. The price: under
//! load that keeps every core busy, sign-ins slow down first.
//!
//! The queue's depth and each hash's wait in it are exported
//! (`latchkey_password_hash_queue_depth`, `latchkey_password_hash_wait_seconds`).
//!
//! Each thread keeps its Argon2 working memory (19 MiB at the default cost)
//! from one hash to the next instead of allocating it every time.
//!
//! The queue is bounded: when it is full of work someone still waits for,
//! a request is refused at once ([`AuthError::Overloaded`], 503) instead of
//! waiting behind work it cannot catch up with. A job whose requester has
//! gone (the client hung up; see [`crate::detached`]) gives its place up
//! and is never run, so abandoned sign-ins cost no hashing and no queue
//! space; the attempt was counted by the throttle before it was queued.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use ::metrics::{gauge, histogram};
use async_trait::async_trait;
use latchkey_core::metrics as metric;
use latchkey_core::password::{
    Argon2Hashing, Argon2Memory, Password, PasswordCheck, PasswordHasher,
};
use latchkey_core::AuthError;
use tokio::sync::oneshot;

use crate::detached::Requester;

/// Queued jobs per hashing thread by default: at ~15 ms a hash (the
/// default cost on this machine), the last in line waits about 1 s.
pub const DEFAULT_QUEUE_PER_THREAD: usize = 64;

/// A hash to compute, unless nobody wants it any more.
trait QueuedHash: Send {
    fn wanted(&self) -> bool;
    fn run(self: Box<Self>, hashing: &Argon2Hashing, memory: &mut Argon2Memory);
}

struct Pending<F, T> {
    job: F,
    queued_at: Instant,
    done: oneshot::Sender<T>,
    requester: Option<Requester>,
}

impl<F, T> QueuedHash for Pending<F, T>
where
    F: FnOnce(&Argon2Hashing, &mut Argon2Memory) -> T + Send,
    T: Send,
{
    fn wanted(&self) -> bool {
        !self.done.is_closed() && !self.requester.as_ref().is_some_and(Requester::is_gone)
    }

    fn run(self: Box<Self>, hashing: &Argon2Hashing, memory: &mut Argon2Memory) {
        histogram!(metric::HASH_WAIT).record(self.queued_at.elapsed().as_secs_f64());
        let _ = self.done.send((self.job)(hashing, memory));
    }
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Box<dyn QueuedHash>>,
    /// Set when the pool is dropped: the threads finish what is queued and
    /// exit.
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    capacity: usize,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `job` unless the queue is full of jobs still wanted.
    fn submit(&self, job: Box<dyn QueuedHash>) -> Result<(), AuthError> {
        let mut queue = self.lock();
        if queue.jobs.len() >= self.capacity {
            queue.jobs.retain(|j| j.wanted());
        }
        if queue.jobs.len() >= self.capacity {
            return Err(AuthError::Overloaded);
        }
        queue.jobs.push_back(job);
        gauge!(metric::HASH_QUEUE_DEPTH).set(queue.jobs.len() as f64);
        drop(queue);
        self.ready.notify_one();
        Ok(())
    }

    /// The next job, waiting for one; `None` once the pool is gone.
    fn next_job(&self) -> Option<Box<dyn QueuedHash>> {
        let mut queue = self.lock();
        loop {
            if let Some(job) = queue.jobs.pop_front() {
                gauge!(metric::HASH_QUEUE_DEPTH).set(queue.jobs.len() as f64);
                return Some(job);
            }
            if queue.closed {
                return None;
            }
            queue = self.ready.wait(queue).unwrap_or_else(|p| p.into_inner());
        }
    }
}

pub struct HashingPool {
    shared: Arc<Shared>,
}

impl HashingPool {
    /// `threads` hashing threads sharing a queue of `queue` waiting jobs.
    pub fn new(hashing: Argon2Hashing, threads: usize, queue: usize) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            capacity: queue.max(1),
        });
        let hashing = Arc::new(hashing);
        for n in 0..threads.max(1) {
            let shared = shared.clone();
            let hashing = hashing.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("latchkey-hash-{n}"))
                .spawn(move || {
                    lower_own_priority();
                    let mut memory = Argon2Memory::default();
                    // The lock is held only while taking the next job,
                    // never while hashing.
                    while let Some(job) = shared.next_job() {
                        if job.wanted() {
                            job.run(&hashing, &mut memory);
                        }
                    }
                });
            if let Err(e) = spawned {
                // Fewer threads than asked is slower, not wrong; with none,
                // every job fails with an internal error.
                tracing::error!("could not start hashing thread {n}: {e}");
            }
        }
        Self { shared }
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Argon2Hashing, &mut Argon2Memory) -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let (done, result) = oneshot::channel();
        self.shared.submit(Box::new(Pending {
            job,
            queued_at: Instant::now(),
            done,
            requester: Requester::current(),
        }))?;
        // A job is dropped unrun only when its requester had gone: the
        // answer reaches nobody, and nothing went wrong.
        result.await.map_err(|_| AuthError::Overloaded)
    }
}

impl Drop for HashingPool {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

/// Puts the calling thread in the `SCHED_IDLE` class (on Linux the policy
/// belongs to the thread when `sched_setscheduler` is given thread id 0).
#[cfg(target_os = "linux")]
fn lower_own_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param that outlives the call; the
    // call only changes the calling thread's policy and reports failure
    // through errno.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc != 0 {
        tracing::warn!(
            "could not lower the hashing threads' priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_own_priority() {}

#[async_trait]
impl PasswordHasher for HashingPool {
    async fn hash(&self, password: Password) -> Result<String, AuthError> {
        self.run(move |h, memory| h.hash_in(&password, memory))
            .await?
    }

    async fn verify(
        &self,
        password: Password,
        phc: Option<String>,
    ) -> Result<PasswordCheck, AuthError> {
        self.run(move |h, memory| h.verify_in(&password, phc.as_deref(), memory))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use latchkey_core::password::Argon2Cost;

    use super::*;

    fn pool(queue: usize) -> HashingPool {
        let cost = Argon2Cost {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        };
        HashingPool::new(
            Argon2Hashing::with_pepper(cost, None).expect("argon2"),
            1,
            queue,
        )
    }

    #[tokio::test]
    async fn a_full_queue_refuses_but_abandoned_jobs_give_their_place_up() {
        let pool = Arc::new(pool(1));
        // Keep the one thread busy.
        let busy = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.run(|_, _| std::thread::sleep(Duration::from_millis(300)))
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A job whose requester leaves: queued, then abandoned.
        let (ran_tx, ran_rx) = std::sync::mpsc::channel();
        let abandoned = pool.run(move |_, _| {
            let _ = ran_tx.send(());
        });
        let abandoned = tokio::time::timeout(Duration::from_millis(10), abandoned).await;
        assert!(abandoned.is_err(), "still queued behind the busy job");
        // Its place is free again for one that is wanted ...
        let wanted = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(|_, _| 7).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        // ... and with that one queued, the queue is full.
        assert!(matches!(
            pool.run(|_, _| ()).await,
            Err(AuthError::Overloaded)
        ));
        assert!(busy.await.expect("task").is_ok());
        assert_eq!(wanted.await.expect("task").ok(), Some(7));
        assert!(ran_rx.try_recv().is_err(), "the abandoned job never ran");
    }
}
