//! The driver: a setup phase (sign-up and first sign-in per worker, untimed),
//! then the timed phase in which every worker loops on its scenario until the
//! deadline, the request budget or an interrupt stops it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::client::{build_request, Conn};
use crate::guard::Target;
use crate::profile::{PreparedEndpoint, Profile, Tokens};
use crate::schedule::WeightedRoundRobin;
use crate::stats::{Op, Stats};

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
}

struct Endpoints {
    sign_up: PreparedEndpoint,
    sign_in: PreparedEndpoint,
    refresh: PreparedEndpoint,
    me: PreparedEndpoint,
}

struct Shared {
    cfg: RunConfig,
    ep: Endpoints,
    host: HeaderValue,
    sent: AtomicU64,
    setup_requests: AtomicU64,
    stop: watch::Sender<bool>,
}

impl Shared {
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

enum Answer {
    Status(StatusCode, Bytes),
    Transport(String),
    Timeout,
    Interrupted,
}

enum Flow {
    Continue,
    Stop(String),
}

#[derive(Default)]
struct RecordState {
    last_acked: Option<String>,
    acked_via: Option<&'static str>,
    acked_at_unix_ms: Option<u64>,
    rotations: u64,
    in_flight: Option<String>,
    in_flight_outcome: Option<&'static str>,
}

struct Worker {
    id: usize,
    username: String,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    conn: Option<Conn>,
    connected_once: bool,
    in_setup: bool,
    sign_in_body: Bytes,
    auth: Option<HeaderValue>,
    refresh_token: Option<String>,
    stats: Stats,
    record: RecordState,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(200)]);
    s.replace('\n', " ")
}

impl Worker {
    fn new(id: usize, shared: Arc<Shared>) -> Worker {
        let cfg = &shared.cfg;
        let username = format!("{}-{}-{id}", cfg.user_prefix, cfg.run_id);
        let sign_in = &cfg.profile.sign_in;
        let sign_in_body = shared.ep.sign_in.body(&[
            (sign_in.username_field.as_str(), username.as_str()),
            (sign_in.password_field.as_str(), cfg.password.as_str()),
        ]);
        Worker {
            id,
            username,
            stop: shared.stop.subscribe(),
            shared,
            conn: None,
            connected_once: false,
            in_setup: true,
            sign_in_body,
            auth: None,
            refresh_token: None,
            stats: Stats::default(),
            record: RecordState::default(),
        }
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    async fn ensure_conn(&mut self) -> Result<(), String> {
        if self.conn.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(());
        }
        self.conn = None;
        match Conn::connect(&self.shared.cfg.target).await {
            Ok(c) => {
                if self.connected_once {
                    self.stats.reconnects += 1;
                }
                self.connected_once = true;
                self.conn = Some(c);
                Ok(())
            }
            Err(e) => {
                self.stats.connect_errors += 1;
                Err(format!("server unreachable: {e}"))
            }
        }
    }

    /// Sends one request on the worker's connection; any failure drops the connection.
    async fn exchange(&mut self, ep: Which, body: Bytes, auth: bool) -> Answer {
        let shared = &self.shared;
        let ep = match ep {
            Which::SignUp => &shared.ep.sign_up,
            Which::SignIn => &shared.ep.sign_in,
            Which::Refresh => &shared.ep.refresh,
            Which::Me => &shared.ep.me,
        };
        let ct = (!body.is_empty()).then_some(&ep.content_type_header);
        let auth = if auth { self.auth.as_ref() } else { None };
        let req = build_request(&ep.method, &ep.uri, &shared.host, ct, auth, body);
        // Setup requests queue behind every other worker's password hash, so
        // they get the whole setup budget rather than the request timeout.
        let timeout = if self.in_setup {
            shared.cfg.setup_timeout
        } else {
            shared.cfg.request_timeout
        };
        let conn = self.conn.as_mut().expect("ensure_conn ran");
        let answer = tokio::select! {
            biased;
            _ = self.stop.changed() => Answer::Interrupted,
            r = tokio::time::timeout(timeout, conn.send(req)) => match r {
                Ok(Ok((status, body))) => Answer::Status(status, body),
                Ok(Err(e)) => Answer::Transport(e.to_string()),
                Err(_) => Answer::Timeout,
            },
        };
        if !matches!(answer, Answer::Status(..)) {
            self.conn = None;
        }
        answer
    }

    /// Budget + connection, then the exchange; `Err` stops the worker.
    async fn send(&mut self, ep: Which, body: Bytes, auth: bool) -> Result<Answer, String> {
        if self.stopped() {
            return Err("interrupted".into());
        }
        if !self.shared.take_budget() {
            return Err("max-requests".into());
        }
        self.ensure_conn().await?;
        Ok(self.exchange(ep, body, auth).await)
    }

    fn adopt(&mut self, tokens: Tokens, via: &'static str) {
        self.auth = self.shared.cfg.profile.auth_header(&tokens.access);
        if let Some(rt) = tokens.refresh {
            self.record.last_acked = Some(rt.clone());
            self.record.acked_via = Some(via);
            self.record.acked_at_unix_ms = Some(unix_ms());
            self.refresh_token = Some(rt);
        }
    }

    // ---- setup (untimed) ----

    async fn setup(&mut self, sign_in: bool) -> Result<(), String> {
        let shared = self.shared.clone();
        let cfg = &shared.cfg;
        let su = &cfg.profile.sign_up;
        let mut fields = vec![
            (su.username_field.as_str(), self.username.as_str()),
            (su.password_field.as_str(), cfg.password.as_str()),
        ];
        if let Some(confirm) = &su.password_confirm_field {
            fields.push((confirm.as_str(), cfg.password.as_str()));
        }
        let body = shared.ep.sign_up.body(&fields);
        self.shared.setup_requests.fetch_add(1, Ordering::Relaxed);
        match self.send(Which::SignUp, body, false).await? {
            Answer::Status(s, _)
                if su.success_status.contains(&s.as_u16())
                    || su.exists_status.contains(&s.as_u16()) => {}
            Answer::Status(s, b) => {
                return Err(format!(
                    "sign-up of {} answered {s}: {}",
                    self.username,
                    snippet(&b)
                ))
            }
            other => {
                return Err(format!(
                    "sign-up of {}: {}",
                    self.username,
                    describe(&other)
                ))
            }
        }
        if sign_in {
            self.shared.setup_requests.fetch_add(1, Ordering::Relaxed);
            self.sign_in_untimed().await?;
        }
        Ok(())
    }

    async fn sign_in_untimed(&mut self) -> Result<(), String> {
        let body = self.sign_in_body.clone();
        match self.send(Which::SignIn, body, false).await? {
            Answer::Status(StatusCode::OK, b) => match self.shared.cfg.profile.response.extract(&b)
            {
                Some(tokens) => {
                    self.adopt(tokens, "sign-in");
                    Ok(())
                }
                None => Err(format!(
                    "sign-in answered 200 without tokens: {}",
                    snippet(&b)
                )),
            },
            Answer::Status(s, b) => Err(format!(
                "sign-in of {} answered {s}: {}",
                self.username,
                snippet(&b)
            )),
            other => Err(format!(
                "sign-in of {}: {}",
                self.username,
                describe(&other)
            )),
        }
    }

    /// Sign in again inside the timed phase (not timed): up to 3 tries.
    async fn resign(&mut self, deadline: Instant) -> Flow {
        let mut last = String::new();
        for _ in 0..3 {
            if Instant::now() >= deadline {
                return Flow::Stop("deadline".into());
            }
            self.stats.untimed_requests += 1;
            match self.sign_in_untimed().await {
                Ok(()) => return Flow::Continue,
                Err(e)
                    if e == "interrupted"
                        || e == "max-requests"
                        || e.starts_with("server unreachable") =>
                {
                    return Flow::Stop(e)
                }
                Err(e) => last = e,
            }
        }
        Flow::Stop(format!("re-sign-in failed: {last}"))
    }

    // ---- timed phase ----

    fn count_failure(&mut self, op: Op, answer: &Answer) {
        let s = self.stats.op_mut(op);
        match answer {
            Answer::Transport(_) => s.transport_errors += 1,
            Answer::Timeout => s.timeouts += 1,
            Answer::Status(..) | Answer::Interrupted => {}
        }
    }

    /// Stop flag, budget and connection before a timed request; `Err` stops the worker.
    async fn ready(&mut self) -> Result<(), String> {
        if self.stopped() {
            return Err("interrupted".into());
        }
        if !self.shared.take_budget() {
            return Err("max-requests".into());
        }
        self.ensure_conn().await
    }

    /// A timed exchange (after [`Worker::ready`]).
    async fn timed(&mut self, op: Op, which: Which, body: Bytes, auth: bool) -> Answer {
        let t0 = Instant::now();
        let answer = self.exchange(which, body, auth).await;
        match &answer {
            Answer::Status(s, _) => self.stats.op_mut(op).answered(s.as_u16(), t0.elapsed()),
            other => self.count_failure(op, other),
        }
        answer
    }

    async fn step(&mut self, op: Op, deadline: Instant) -> Flow {
        match op {
            Op::SignIn => {
                if let Err(reason) = self.ready().await {
                    return Flow::Stop(reason);
                }
                let body = self.sign_in_body.clone();
                match self.timed(op, Which::SignIn, body, false).await {
                    Answer::Status(StatusCode::OK, b) => {
                        match self.shared.cfg.profile.response.extract(&b) {
                            Some(t) => self.adopt(t, "sign-in"),
                            None => self.stats.op_mut(op).bad_responses += 1,
                        }
                        Flow::Continue
                    }
                    Answer::Interrupted => Flow::Stop("interrupted".into()),
                    _ => Flow::Continue,
                }
            }
            Op::Refresh => {
                let Some(token) = self.refresh_token.clone() else {
                    return self.resign(deadline).await;
                };
                let field = self.shared.cfg.profile.refresh.refresh_token_field.as_str();
                let body = self.shared.ep.refresh.body(&[(field, token.as_str())]);
                if let Err(reason) = self.ready().await {
                    // Not sent: an earlier unanswered refresh stays on record.
                    return Flow::Stop(reason);
                }
                self.record.in_flight = Some(token);
                self.record.in_flight_outcome = None;
                match self.timed(op, Which::Refresh, body, false).await {
                    Answer::Status(StatusCode::OK, b) => {
                        self.record.in_flight = None;
                        match self.shared.cfg.profile.response.extract(&b) {
                            Some(t) if t.refresh.is_some() => {
                                self.record.rotations += 1;
                                self.adopt(t, "refresh");
                                Flow::Continue
                            }
                            _ => {
                                // Not rotated: never reuse it, start a new session.
                                self.stats.op_mut(op).bad_responses += 1;
                                self.refresh_token = None;
                                self.resign(deadline).await
                            }
                        }
                    }
                    Answer::Status(..) => {
                        self.record.in_flight = None;
                        self.refresh_token = None;
                        self.resign(deadline).await
                    }
                    Answer::Transport(_) => {
                        self.record.in_flight_outcome = Some("transport_error");
                        Flow::Continue
                    }
                    Answer::Timeout => {
                        self.record.in_flight_outcome = Some("timeout");
                        Flow::Continue
                    }
                    Answer::Interrupted => {
                        self.record.in_flight_outcome = Some("interrupted");
                        Flow::Stop("interrupted".into())
                    }
                }
            }
            Op::Me => {
                if self.auth.is_none() {
                    return self.resign(deadline).await;
                }
                if let Err(reason) = self.ready().await {
                    return Flow::Stop(reason);
                }
                match self.timed(op, Which::Me, Bytes::new(), true).await {
                    Answer::Status(StatusCode::UNAUTHORIZED, _) => self.resign(deadline).await,
                    Answer::Interrupted => Flow::Stop("interrupted".into()),
                    _ => Flow::Continue,
                }
            }
        }
    }

    async fn run_timed(mut self, deadline: Instant) -> (Stats, WorkerRecord) {
        let cfg = &self.shared.cfg;
        let mut rr = match cfg.scenario {
            Scenario::SignIn => WeightedRoundRobin::new([(Op::SignIn, 1)]),
            Scenario::Refresh => WeightedRoundRobin::new([(Op::Refresh, 1)]),
            Scenario::Me => WeightedRoundRobin::new([(Op::Me, 1)]),
            Scenario::Mixed => WeightedRoundRobin::new([
                (Op::SignIn, cfg.mix[0]),
                (Op::Refresh, cfg.mix[1]),
                (Op::Me, cfg.mix[2]),
            ]),
        }
        .expect("weights validated by the CLI");
        // Spread the workers over the cycle so their sign-ins do not coincide.
        rr.skip(self.id as u64 * rr.cycle_len() / cfg.workers.max(1) as u64);
        let reason = loop {
            if self.stopped() {
                break "interrupted".to_owned();
            }
            if Instant::now() >= deadline {
                break "deadline".to_owned();
            }
            let op = rr.next_item();
            if let Flow::Stop(reason) = self.step(op, deadline).await {
                break reason;
            }
        };
        let record = WorkerRecord {
            run_id: self.shared.cfg.run_id.clone(),
            worker: self.id,
            username: self.username.clone(),
            refresh_token: self.record.last_acked.take(),
            acked_via: self.record.acked_via,
            acked_at_unix_ms: self.record.acked_at_unix_ms,
            rotations: self.record.rotations,
            in_flight_refresh_token: self
                .record
                .in_flight
                .take()
                .filter(|_| self.record.in_flight_outcome.is_some()),
            in_flight_outcome: self.record.in_flight_outcome,
            stop_reason: reason,
        };
        (self.stats, record)
    }
}

#[derive(Clone, Copy)]
enum Which {
    SignUp,
    SignIn,
    Refresh,
    Me,
}

fn describe(a: &Answer) -> String {
    match a {
        Answer::Status(s, _) => format!("answered {s}"),
        Answer::Transport(e) => format!("transport error: {e}"),
        Answer::Timeout => "timed out".into(),
        Answer::Interrupted => "interrupted".into(),
    }
}

/// Prepares a run; the returned handle can stop it from another task.
pub fn prepare(cfg: RunConfig) -> Result<StopHandle, RunError> {
    let p = &cfg.profile;
    let base = cfg.target.base_path.as_str();
    let prep = |ep| p.prepare(&ep, base).map_err(RunError::Profile);
    let ep = Endpoints {
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
        ep,
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
                Ok((_, Err(e))) => failures.push(e),
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
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let mut set = JoinSet::new();
    for w in ready {
        set.spawn(w.run_timed(deadline));
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
    })
}
