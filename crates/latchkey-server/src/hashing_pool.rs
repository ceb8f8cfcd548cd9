//! Runs Argon2 on its own threads (one per core but one by default) in Linux's
//! `SCHED_IDLE` class: they run only when no runtime thread wants the CPU,
//! and a runtime thread that wakes preempts them at once. A sign-in flood
//! then queues for hashing and takes only the CPU time the rest of the
//! service leaves idle, so refreshes and bearer checks keep their latency;
//! with nothing else to do, hashing still gets every core. The price: under
//! load that keeps every core busy, sign-ins slow down first.
//!
//! Each thread keeps its Argon2 working memory (19 MiB at the default cost)
//! from one hash to the next instead of allocating it every time.
//!
//! The queue is bounded: when it is full a request is refused at once
//! ([`AuthError::Overloaded`], 503) instead of waiting behind work it cannot
//! catch up with. A job whose requester has gone (the client hung up and its
//! request was dropped) is skipped, so abandoned sign-ins cost no hashing;
//! the attempt was counted by the throttle before it was queued.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use latchkey_core::password::{
    Argon2Hashing, Argon2Memory, Password, PasswordCheck, PasswordHasher,
};
use latchkey_core::AuthError;
use tokio::sync::oneshot;

use crate::detached::Requester;

type Job = Box<dyn FnOnce(&Argon2Hashing, &mut Argon2Memory) + Send>;

pub struct HashingPool {
    // Workers exit when this sender is dropped with the pool.
    jobs: mpsc::SyncSender<Job>,
}

/// Queued jobs per hashing thread by default: at ~50 ms a hash, the last in
/// line waits about 3 s.
pub const DEFAULT_QUEUE_PER_THREAD: usize = 64;

impl HashingPool {
    /// `threads` hashing threads sharing a queue of `queue` waiting jobs.
    pub fn new(hashing: Argon2Hashing, threads: usize, queue: usize) -> Self {
        let (jobs, queue) = mpsc::sync_channel::<Job>(queue.max(1));
        let queue = Arc::new(Mutex::new(queue));
        let hashing = Arc::new(hashing);
        for n in 0..threads.max(1) {
            let queue = queue.clone();
            let hashing = hashing.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("latchkey-hash-{n}"))
                .spawn(move || {
                    lower_own_priority();
                    let mut memory = Argon2Memory::default();
                    loop {
                        // The lock is held only while waiting for the next
                        // job, never while hashing.
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&hashing, &mut memory),
                            Err(mpsc::RecvError) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                // Fewer threads than asked is slower, not wrong; with none,
                // every job fails with an internal error.
                tracing::error!("could not start hashing thread {n}: {e}");
            }
        }
        Self { jobs }
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Argon2Hashing, &mut Argon2Memory) -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let (done, result) = oneshot::channel();
        let requester = Requester::current();
        let job: Job = Box::new(move |hashing, memory| {
            // Nobody wants this any more: the client hung up.
            let gone = done.is_closed() || requester.is_some_and(|r| r.is_gone());
            if !gone {
                let _ = done.send(job(hashing, memory));
            }
        });
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => AuthError::Overloaded,
            mpsc::TrySendError::Disconnected(_) => {
                AuthError::Internal("hashing pool stopped".into())
            }
        })?;
        result
            .await
            .map_err(|_| AuthError::Internal("hashing job dropped".into()))
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
