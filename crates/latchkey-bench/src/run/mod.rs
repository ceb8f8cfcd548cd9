//! The driver: a setup phase (sign-up and first sign-in per worker, untimed),
//! then the timed phase in which every worker loops on its scenario until the
//! deadline, the request budget or an interrupt stops it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::guard::Target;
use crate::profile::{PreparedEndpoint, Profile};
use crate::schedule::ArrivalSchedule;
use crate::server_cpu::{ServerCpuError, ServerCpuProbe};
use crate::stats::Stats;

mod pacer;
mod worker;

use pacer::Pacer;
use worker::Worker;

/// What the workers do in the timed phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Sign in repeatedly, each worker as its own user.
    SignIn,
    /// Rotate the refresh token in a loop, always with the newest one.
    Refresh,
    /// Authenticated `me` reads.
    Me,
    /// Sign-in, refresh and me by weighted round-robin (`--mix`).
    Mixed,
}

impl Scenario {
    /// CLI / report name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::SignIn => "sign-in",
            Scenario::Refresh => "refresh",
            Scenario::Me => "me",
            Scenario::Mixed => "mixed",
        }
    }
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Checked loopback target.
    pub target: Target,
    /// Request shapes.
    pub profile: Profile,
    /// Scenario.
    pub scenario: Scenario,
    /// Concurrent workers (one connection each).
    pub workers: usize,
    /// Length of the timed phase.
    pub duration: Duration,
    /// Cap on all requests sent (setup included).
    pub max_requests: u64,
    /// Weights sign-in : refresh : me for `mixed`.
    pub mix: [u32; 3],
    /// Prefix that makes this run's usernames unique.
    pub run_id: String,
    /// Username prefix.
    pub user_prefix: String,
    /// Password of every bench user.
    pub password: String,
    /// Longest wait for one answer.
    pub request_timeout: Duration,
    /// Longest the setup phase may take.
    pub setup_timeout: Duration,
    /// Open-loop mode: requests per second in all, on a fixed schedule
    /// (`None`: closed loop, each worker sends as soon as it is answered).
    pub rate: Option<f64>,
    /// Reads the server's CPU time around the timed phase.
    pub server_cpu: Option<ServerCpuProbe>,
}

/// Why a run could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A profile endpoint could not be prepared under the target's path.
    #[error("profile: {0}")]
    Profile(String),
    /// No worker got through setup.
    #[error("setup failed for every worker; first error: {0}")]
    Setup(String),
    /// Setup took longer than allowed.
    #[error("setup did not finish within {0:?}")]
    SetupTimeout(Duration),
    /// The open-loop pacer thread could not be started.
    #[error("starting the pacer thread: {0}")]
    Pacer(std::io::Error),
    /// Interrupted before the timed phase.
    #[error("interrupted during setup")]
    Interrupted,
}

/// The durability record of one worker (one JSON line of `--record`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WorkerRecord {
    /// Run id.
    pub run_id: String,
    /// Worker index.
    pub worker: usize,
    /// The worker's user.
    pub username: String,
    /// The newest refresh token received in a 200 answer.
    pub refresh_token: Option<String>,
    /// Which request answered it: `sign-in` or `refresh`.
    pub acked_via: Option<&'static str>,
    /// When it was received (unix ms).
    pub acked_at_unix_ms: Option<u64>,
    /// Refreshes answered 200 by this worker.
    pub rotations: u64,
    /// The refresh token presented in a request that got no answer (the
    /// server may or may not have rotated it), if the last refresh ended so.
    pub in_flight_refresh_token: Option<String>,
    /// `transport_error`, `timeout` or `interrupted`.
    pub in_flight_outcome: Option<&'static str>,
    /// Why the worker stopped.
    pub stop_reason: String,
}

/// The outcome of a run.
#[derive(Debug)]
pub struct RunOutcome {
    /// Timed-phase counters, all workers merged.
    pub stats: Stats,
    /// Workers that completed setup.
    pub users: usize,
    /// Setup errors of workers that did not.
    pub setup_failures: Vec<String>,
    /// Requests sent during setup.
    pub setup_requests: u64,
    /// Length of the setup phase.
    pub setup_elapsed: Duration,
    /// Length of the timed phase (until the last worker stopped).
    pub elapsed: Duration,
    /// Workers by stop reason.
    pub stop_reasons: BTreeMap<String, u64>,
    /// One record per worker that completed setup.
    pub records: Vec<WorkerRecord>,
    /// The server's CPU time (user + system) during the timed phase, with
    /// `--server-pid`.
    pub server_cpu: Option<Result<Duration, ServerCpuError>>,
}

/// The profile's four endpoints, prepared under the target's base path.
struct Endpoints {
    sign_up: PreparedEndpoint,
    sign_in: PreparedEndpoint,
    refresh: PreparedEndpoint,
    me: PreparedEndpoint,
}

/// What every worker of a run reads: the configuration, the request
/// budget and the stop signal.
struct Shared {
    cfg: RunConfig,
    endpoints: Endpoints,
    /// The `Host` header of every request.
    host: HeaderValue,
    /// Requests sent so far, setup included, against `--max-requests`.
    sent: AtomicU64,
    setup_requests: AtomicU64,
    stop: watch::Sender<bool>,
}

impl Shared {
    /// Takes one request from the budget; `false` once it is spent.
    fn take_budget(&self) -> bool {
        self.sent.fetch_add(1, Ordering::Relaxed) < self.cfg.max_requests
    }
}

/// A handle that stops a run early (e.g. on Ctrl-C); in-flight requests are
/// abandoned and recorded as in flight.
#[derive(Clone)]
pub struct StopHandle(Arc<Shared>);

impl StopHandle {
    /// Stops every worker.
    pub fn stop(&self) {
        self.0.stop.send_replace(true);
    }
}

/// Prepares a run; the returned handle can stop it from another task.
pub fn prepare(cfg: RunConfig) -> Result<StopHandle, RunError> {
    let p = &cfg.profile;
    let base = cfg.target.base_path.as_str();
    let prep = |ep| p.prepare(&ep, base).map_err(RunError::Profile);
    let endpoints = Endpoints {
        sign_up: prep(p.sign_up.endpoint())?,
        sign_in: prep(p.sign_in.endpoint())?,
        refresh: prep(p.refresh.endpoint())?,
        me: prep(p.me.clone())?,
    };
    let host = HeaderValue::from_str(&cfg.target.authority)
        .map_err(|e| RunError::Profile(e.to_string()))?;
    let (stop, _) = watch::channel(false);
    Ok(StopHandle(Arc::new(Shared {
        cfg,
        endpoints,
        host,
        sent: AtomicU64::new(0),
        setup_requests: AtomicU64::new(0),
        stop,
    })))
}

/// Runs setup and the timed phase.
pub async fn run(handle: &StopHandle) -> Result<RunOutcome, RunError> {
    let shared = handle.0.clone();
    let cfg = &shared.cfg;
    let needs_tokens = cfg.scenario != Scenario::SignIn;

    // Setup: every worker signs up (and signs in) concurrently.
    let setup_start = Instant::now();
    let mut set = JoinSet::new();
    for id in 0..cfg.workers {
        let shared = shared.clone();
        set.spawn(async move {
            let mut w = Worker::new(id, shared);
            let r = w.setup(needs_tokens).await;
            w.in_setup = false;
            (w, r)
        });
    }
    let mut ready = Vec::with_capacity(cfg.workers);
    let mut failures = Vec::new();
    let collect = async {
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((w, Ok(()))) => ready.push(w),
                Ok((_, Err(e))) => failures.push(e.to_string()),
                Err(e) => failures.push(format!("setup task: {e}")),
            }
        }
    };
    if tokio::time::timeout(cfg.setup_timeout, collect)
        .await
        .is_err()
    {
        handle.stop();
        return Err(RunError::SetupTimeout(cfg.setup_timeout));
    }
    if *shared.stop.borrow() {
        return Err(RunError::Interrupted);
    }
    if ready.is_empty() {
        return Err(RunError::Setup(
            failures.first().cloned().unwrap_or_default(),
        ));
    }
    ready.sort_by_key(|w| w.id);
    let setup_elapsed = setup_start.elapsed();
    let users = ready.len();

    eprintln!(
        "setup done: {users} users in {:.2} s; timed phase of {:?} starts",
        setup_elapsed.as_secs_f64(),
        cfg.duration
    );

    // Timed phase.
    let cpu_before = cfg.server_cpu.map(|probe| probe.read_ticks());
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let pacer = match cfg.rate {
        Some(rate) => Some(
            Pacer::start(rate, users, start, deadline, shared.stop.subscribe())
                .map_err(RunError::Pacer)?,
        ),
        None => None,
    };
    let mut set = JoinSet::new();
    for (slot, w) in ready.into_iter().enumerate() {
        let paced = cfg.rate.zip(pacer.as_ref()).map(|(rate, p)| {
            (
                ArrivalSchedule::new(rate, users, slot),
                p.gates[slot].clone(),
            )
        });
        set.spawn(w.run_timed(start, deadline, paced));
    }
    let mut stats = Stats::default();
    let mut records = Vec::with_capacity(users);
    let mut stop_reasons = BTreeMap::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((s, rec)) => {
                stats.merge(&s);
                *stop_reasons.entry(rec.stop_reason.clone()).or_insert(0) += 1;
                records.push(rec);
            }
            Err(e) => {
                *stop_reasons
                    .entry(format!("worker panicked: {e}"))
                    .or_insert(0) += 1
            }
        }
    }
    let elapsed = start.elapsed();
    if let Some(p) = pacer {
        // Done at the deadline at the latest.
        p.join();
    }
    let server_cpu = cfg.server_cpu.zip(cpu_before).map(|(probe, before)| {
        let after = probe.read_ticks()?;
        Ok(probe.elapsed(before?, after))
    });
    records.sort_by_key(|r| r.worker);
    Ok(RunOutcome {
        stats,
        users,
        setup_failures: failures,
        setup_requests: shared.setup_requests.load(Ordering::Relaxed),
        setup_elapsed,
        elapsed,
        stop_reasons,
        records,
        server_cpu,
    })
}
