//! Group commit: one thread owns the write connection and runs every write
//! request that is waiting into one transaction, then acknowledges them all
//! once that transaction is durable. Under load this turns thousands of
//! fsyncs into a few, without acknowledging anything early.

use std::thread::JoinHandle;
use std::time::Instant;

use latchkey_core::metrics as metric;
use latchkey_core::store::StoreError;
use metrics::histogram;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::store_error;

/// A write step; it runs inside its own savepoint, so one failing request
/// does not undo the others in its batch.
type Op<T> = Box<dyn FnOnce(&Connection) -> rusqlite::Result<T> + Send>;
/// Runs an op and returns how to answer it once the batch's fate is known.
type Job = Box<dyn FnOnce(&Connection) -> Ack + Send>;
type Ack = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// How many writes one transaction takes at most; bounds its latency.
const MAX_BATCH: usize = 512;

pub struct Writer {
    jobs: Option<mpsc::UnboundedSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub fn start(conn: Connection) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("latchkey-sqlite-writer".into())
            .spawn(move || run(conn, rx))?;
        Ok(Self {
            jobs: Some(tx),
            thread: Some(thread),
        })
    }

    /// Runs `op` in the next batch; resolves after that batch commits.
    pub async fn write<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let op: Op<T> = Box::new(op);
        let job: Job = Box::new(move |conn| {
            let result = in_savepoint(conn, op);
            Box::new(move |committed| {
                let _ = reply.send(committed.and_then(|_| result.map_err(store_error)));
            })
        });
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("store is closed".into()))?;
        jobs.send(job)
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("write not performed".into()))?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel lets the thread finish its last batch and exit.
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn in_savepoint<T>(conn: &Connection, op: Op<T>) -> rusqlite::Result<T> {
    conn.execute_batch("SAVEPOINT op")?;
    match op(conn) {
        Ok(v) => {
            conn.execute_batch("RELEASE op")?;
            Ok(v)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO op; RELEASE op")?;
            Err(e)
        }
    }
}

fn run(conn: Connection, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let size = batch.len();
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let err = store_error(e);
            tracing::error!(error = %err, "cannot begin write transaction");
            for job in batch.drain(..) {
                // Never run: answer with the error without touching the db.
                drop(job);
            }
            continue;
        }
        let acks: Vec<Ack> = batch.drain(..).map(|job| job(&conn)).collect();
        let committed = conn.execute_batch("COMMIT").map_err(store_error);
        match &committed {
            Ok(()) => {
                // Recorded before the acknowledgements, so a writer that
                // sees its answer finds its commit counted.
                histogram!(metric::STORE_COMMIT_BATCH_SIZE).record(size as f64);
                histogram!(metric::STORE_COMMIT).record(started.elapsed().as_secs_f64());
            }
            Err(e) => {
                tracing::error!(error = %e, "write transaction failed; batch rolled back");
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
        for ack in acks {
            ack(committed.clone());
        }
    }
}
