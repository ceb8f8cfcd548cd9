//! One worker: its connection, its user's tokens and its durability record;
//! the untimed setup (sign-up, first sign-in) and the timed loop over its
//! scenario's operations.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use tokio::sync::{watch, Semaphore};

use super::{Scenario, Shared, WorkerRecord};
use crate::client::{build_request, Conn};
use crate::profile::Tokens;
use crate::schedule::{latency_from_due, ArrivalSchedule, WeightedRoundRobin};
use crate::stats::{Op, Stats};

/// Tries of a setup sign-in answered 429, and the pause between them.
const SETUP_SIGN_IN_TRIES: u32 = 30;
const SETUP_SIGN_IN_PAUSE: Duration = Duration::from_secs(1);

/// How one request ended.
enum Answer {
    Status(StatusCode, Bytes),
    Transport(String),
    Timeout,
    Interrupted,
}

/// Whether a worker goes on after a step.
enum Flow {
    Continue,
    Stop(StopReason),
}

/// Why a worker stops, or why its request could not be made; its text is
/// the record's `stop_reason` and the report's tally key.
#[derive(Debug)]
pub(super) enum StopReason {
    Interrupted,
    MaxRequests,
    Deadline,
    /// The connection could not be (re)opened.
    Unreachable(String),
    /// Anything else: an unexpected answer, a failed re-sign-in.
    Failed(String),
    /// A sign-in answered 429 (the server's throttle).
    Throttled(String),
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Interrupted => f.write_str("interrupted"),
            StopReason::MaxRequests => f.write_str("max-requests"),
            StopReason::Deadline => f.write_str("deadline"),
            StopReason::Unreachable(e) => write!(f, "server unreachable: {e}"),
            StopReason::Failed(message) | StopReason::Throttled(message) => f.write_str(message),
        }
    }
}

/// What becomes the worker's [`WorkerRecord`].
#[derive(Default)]
struct RecordState {
    last_acked: Option<String>,
    acked_via: Option<&'static str>,
    acked_at_unix_ms: Option<u64>,
    rotations: u64,
    in_flight: Option<String>,
    in_flight_outcome: Option<&'static str>,
}

/// One worker: one keep-alive connection, one user.
pub(super) struct Worker {
    pub(super) id: usize,
    username: String,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    conn: Option<Conn>,
    connected_once: bool,
    pub(super) in_setup: bool,
    sign_in_body: Bytes,
    auth: Option<HeaderValue>,
    refresh_token: Option<String>,
    stats: Stats,
    record: RecordState,
}

/// Now as unix milliseconds, for the durability record.
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The start of an answer's body, on one line, for error messages.
fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(200)]);
    s.replace('\n', " ")
}

impl Worker {
    pub(super) fn new(id: usize, shared: Arc<Shared>) -> Worker {
        let cfg = &shared.cfg;
        let username = format!("{}-{}-{id}", cfg.user_prefix, cfg.run_id);
        let sign_in = &cfg.profile.sign_in;
        let sign_in_body = shared.endpoints.sign_in.body(&[
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

    async fn ensure_conn(&mut self) -> Result<(), StopReason> {
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
                Err(StopReason::Unreachable(e.to_string()))
            }
        }
    }

    /// Sends one request on the worker's connection; any failure drops the connection.
    async fn exchange(&mut self, kind: EndpointKind, body: Bytes, auth: bool) -> Answer {
        let shared = &self.shared;
        let ep = match kind {
            EndpointKind::SignUp => &shared.endpoints.sign_up,
            EndpointKind::SignIn => &shared.endpoints.sign_in,
            EndpointKind::Refresh => &shared.endpoints.refresh,
            EndpointKind::Me => &shared.endpoints.me,
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

    /// Stop flag, budget and connection, then the exchange; `Err` stops the
    /// worker.
    async fn send(
        &mut self,
        kind: EndpointKind,
        body: Bytes,
        auth: bool,
    ) -> Result<Answer, StopReason> {
        self.ready().await?;
        Ok(self.exchange(kind, body, auth).await)
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

    pub(super) async fn setup(&mut self, sign_in: bool) -> Result<(), StopReason> {
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
        let body = shared.endpoints.sign_up.body(&fields);
        self.shared.setup_requests.fetch_add(1, Ordering::Relaxed);
        match self.send(EndpointKind::SignUp, body, false).await? {
            Answer::Status(s, _)
                if su.success_status.contains(&s.as_u16())
                    || su.exists_status.contains(&s.as_u16()) => {}
            Answer::Status(s, b) => {
                return Err(StopReason::Failed(format!(
                    "sign-up of {} answered {s}: {}",
                    self.username,
                    snippet(&b)
                )))
            }
            other => {
                return Err(StopReason::Failed(format!(
                    "sign-up of {}: {}",
                    self.username,
                    describe(&other)
                )))
            }
        }
        if sign_in {
            self.sign_in_setup().await?;
        }
        Ok(())
    }

    /// The first sign-in. The server counts every sign-in attempt per
    /// address before it checks the password, so many workers signing in
    /// at once from 127.0.0.1 can be answered 429 for a moment; those wait
    /// and try again (bounded by the setup timeout and [`SETUP_SIGN_IN_TRIES`]).
    async fn sign_in_setup(&mut self) -> Result<(), StopReason> {
        let mut tries = 0;
        loop {
            tries += 1;
            self.shared.setup_requests.fetch_add(1, Ordering::Relaxed);
            match self.sign_in_untimed().await {
                Err(StopReason::Throttled(_)) if tries < SETUP_SIGN_IN_TRIES => {
                    tokio::select! {
                        biased;
                        _ = self.stop.changed() => return Err(StopReason::Interrupted),
                        _ = tokio::time::sleep(SETUP_SIGN_IN_PAUSE) => {}
                    }
                }
                other => return other,
            }
        }
    }

    async fn sign_in_untimed(&mut self) -> Result<(), StopReason> {
        let body = self.sign_in_body.clone();
        match self.send(EndpointKind::SignIn, body, false).await? {
            Answer::Status(StatusCode::OK, b) => match self.shared.cfg.profile.response.extract(&b)
            {
                Some(tokens) => {
                    self.adopt(tokens, "sign-in");
                    Ok(())
                }
                None => Err(StopReason::Failed(format!(
                    "sign-in answered 200 without tokens: {}",
                    snippet(&b)
                ))),
            },
            Answer::Status(s, b) => {
                let message = format!("sign-in of {} answered {s}: {}", self.username, snippet(&b));
                Err(if s == StatusCode::TOO_MANY_REQUESTS {
                    StopReason::Throttled(message)
                } else {
                    StopReason::Failed(message)
                })
            }
            other => Err(StopReason::Failed(format!(
                "sign-in of {}: {}",
                self.username,
                describe(&other)
            ))),
        }
    }

    /// Sign in again inside the timed phase (not timed): up to 3 tries.
    async fn resign(&mut self, deadline: Instant) -> Flow {
        let mut last = String::new();
        for _ in 0..3 {
            if Instant::now() >= deadline {
                return Flow::Stop(StopReason::Deadline);
            }
            self.stats.untimed_requests += 1;
            match self.sign_in_untimed().await {
                Ok(()) => return Flow::Continue,
                // Refused or garbled: worth another try.
                Err(StopReason::Failed(e) | StopReason::Throttled(e)) => last = e,
                Err(reason) => return Flow::Stop(reason),
            }
        }
        Flow::Stop(StopReason::Failed(format!("re-sign-in failed: {last}")))
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

    /// Stop flag, budget and connection before a request; `Err` stops the
    /// worker.
    async fn ready(&mut self) -> Result<(), StopReason> {
        if self.stopped() {
            return Err(StopReason::Interrupted);
        }
        if !self.shared.take_budget() {
            return Err(StopReason::MaxRequests);
        }
        self.ensure_conn().await
    }

    /// A timed exchange (after [`Worker::ready`]). In the open-loop mode
    /// `due` is when the request was due, and its latency counts from then.
    async fn timed(
        &mut self,
        op: Op,
        kind: EndpointKind,
        body: Bytes,
        auth: bool,
        due: Option<Instant>,
    ) -> Answer {
        let sent = Instant::now();
        if let Some(due) = due {
            self.stats
                .schedule
                .sent(sent.saturating_duration_since(due));
        }
        let answer = self.exchange(kind, body, auth).await;
        let latency = latency_from_due(due.unwrap_or(sent), Instant::now());
        match &answer {
            Answer::Status(s, _) => self.stats.op_mut(op).answered(s.as_u16(), latency),
            other => self.count_failure(op, other),
        }
        answer
    }

    /// One operation; `due` as for [`Worker::timed`].
    async fn step(&mut self, op: Op, deadline: Instant, due: Option<Instant>) -> Flow {
        match op {
            Op::SignIn => {
                if let Err(reason) = self.ready().await {
                    return Flow::Stop(reason);
                }
                let body = self.sign_in_body.clone();
                match self.timed(op, EndpointKind::SignIn, body, false, due).await {
                    Answer::Status(StatusCode::OK, b) => {
                        match self.shared.cfg.profile.response.extract(&b) {
                            Some(t) => self.adopt(t, "sign-in"),
                            None => self.stats.op_mut(op).bad_responses += 1,
                        }
                        Flow::Continue
                    }
                    Answer::Interrupted => Flow::Stop(StopReason::Interrupted),
                    _ => Flow::Continue,
                }
            }
            Op::Refresh => {
                let Some(token) = self.refresh_token.clone() else {
                    return self.resign(deadline).await;
                };
                let field = self.shared.cfg.profile.refresh.refresh_token_field.as_str();
                let body = self
                    .shared
                    .endpoints
                    .refresh
                    .body(&[(field, token.as_str())]);
                if let Err(reason) = self.ready().await {
                    // Not sent: an earlier unanswered refresh stays on record.
                    return Flow::Stop(reason);
                }
                self.record.in_flight = Some(token);
                self.record.in_flight_outcome = None;
                match self
                    .timed(op, EndpointKind::Refresh, body, false, due)
                    .await
                {
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
                        Flow::Stop(StopReason::Interrupted)
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
                match self
                    .timed(op, EndpointKind::Me, Bytes::new(), true, due)
                    .await
                {
                    Answer::Status(StatusCode::UNAUTHORIZED, _) => self.resign(deadline).await,
                    Answer::Interrupted => Flow::Stop(StopReason::Interrupted),
                    _ => Flow::Continue,
                }
            }
        }
    }

    /// Waits for the pacer to let the next request go: `Some(true)` when it
    /// may, `Some(false)` when the pacing has ended, `None` on a stop.
    async fn pass_gate(&mut self, gate: &Semaphore) -> Option<bool> {
        tokio::select! {
            biased;
            _ = self.stop.changed() => None,
            permit = gate.acquire() => Some(permit.map(|p| p.forget()).is_ok()),
        }
    }

    /// The timed loop from `start` to `deadline`. In the open-loop mode
    /// (`paced`: this worker's schedule and its pacer gate) each request
    /// waits for its due time, or goes at once when it is already overdue.
    pub(super) async fn run_timed(
        mut self,
        start: Instant,
        deadline: Instant,
        mut paced: Option<(ArrivalSchedule, Arc<Semaphore>)>,
    ) -> (Stats, WorkerRecord) {
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
                break StopReason::Interrupted;
            }
            let mut due = None;
            if let Some((schedule, gate)) = paced.as_mut() {
                match self.pass_gate(gate).await {
                    Some(true) => {}
                    Some(false) => break StopReason::Deadline,
                    None => break StopReason::Interrupted,
                }
                due = Some(start + schedule.due_offset());
            }
            if Instant::now() >= deadline {
                break StopReason::Deadline;
            }
            if let Some((schedule, _)) = paced.as_mut() {
                schedule.advance();
            }
            let op = rr.next_item();
            if let Flow::Stop(reason) = self.step(op, deadline, due).await {
                break reason;
            }
        };
        if let (StopReason::Deadline, Some((s, _))) = (&reason, &paced) {
            self.stats.schedule.unsent = s.unsent_before(deadline - start);
        }
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
            stop_reason: reason.to_string(),
        };
        (self.stats, record)
    }
}

/// Which of the profile's endpoints a request goes to.
#[derive(Clone, Copy)]
enum EndpointKind {
    SignUp,
    SignIn,
    Refresh,
    Me,
}

/// An answer that was not the one hoped for, for error messages.
fn describe(a: &Answer) -> String {
    match a {
        Answer::Status(s, _) => format!("answered {s}"),
        Answer::Transport(e) => format!("transport error: {e}"),
        Answer::Timeout => "timed out".into(),
        Answer::Interrupted => "interrupted".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::StopReason;

    /// The texts are the `stop_reason` of `--record` lines and the keys of
    /// the report's `stop_reasons`.
    #[test]
    fn stop_reasons_read_as_the_records_write_them() {
        let texts = [
            (StopReason::Interrupted, "interrupted"),
            (StopReason::MaxRequests, "max-requests"),
            (StopReason::Deadline, "deadline"),
            (
                StopReason::Unreachable("connection refused".into()),
                "server unreachable: connection refused",
            ),
            (
                StopReason::Failed("re-sign-in failed: x".into()),
                "re-sign-in failed: x",
            ),
            (
                StopReason::Throttled("sign-in of u answered 429 Too Many Requests: y".into()),
                "sign-in of u answered 429 Too Many Requests: y",
            ),
        ];
        for (reason, text) in texts {
            assert_eq!(reason.to_string(), text);
        }
    }
}
