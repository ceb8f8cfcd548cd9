//! The open-loop pacer: one OS thread that lets each request go at its due
//! time. tokio's timers tick once a millisecond, which would make every
//! request up to 1 ms late and charge that to the server; a thread sleeping
//! with `std::thread::sleep` wakes within tens of µs. Each worker has a
//! gate (a semaphore): the pacer adds one permit per due request, and a
//! worker that is behind finds its overdue permits waiting and sends them
//! at once.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};

use crate::schedule::ArrivalSchedule;

/// Longest single sleep, so that a stop is noticed soon at low rates.
const MAX_NAP: Duration = Duration::from_millis(10);

/// The pacer thread and the workers' gates.
pub(super) struct Pacer {
    /// One gate per worker, in slot order.
    pub(super) gates: Vec<Arc<Semaphore>>,
    thread: JoinHandle<()>,
}

impl Pacer {
    /// Starts pacing `rate` requests per second in all over `workers`
    /// gates, from `start` until `deadline` or a stop.
    pub(super) fn start(
        rate: f64,
        workers: usize,
        start: Instant,
        deadline: Instant,
        stop: watch::Receiver<bool>,
    ) -> std::io::Result<Pacer> {
        let gates: Vec<Arc<Semaphore>> = (0..workers.max(1))
            .map(|_| Arc::new(Semaphore::new(0)))
            .collect();
        let thread_gates = gates.clone();
        let thread = std::thread::Builder::new()
            .name("open-loop-pacer".into())
            .spawn(move || pace(rate, start, deadline, &stop, &thread_gates))?;
        Ok(Pacer { gates, thread })
    }

    /// Waits for the pacer thread (it ends by the deadline or a stop).
    pub(super) fn join(self) {
        // The thread does not panic; if it did, its gates are still closed
        // by nobody, but every worker also stops at the deadline.
        let _ = self.thread.join();
    }
}

/// Sleeps until `until`, in naps of at most [`MAX_NAP`]; `false` on a stop.
fn sleep_until(until: Instant, stop: &watch::Receiver<bool>) -> bool {
    loop {
        if *stop.borrow() {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(MAX_NAP));
    }
}

/// Linux lets a sleeping thread wake up to 50 µs late by default (timer
/// slack); the pacer asks for 1 µs, as that lateness counts in every latency.
#[cfg(target_os = "linux")]
fn reduce_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and only changes
    // the calling thread's timer slack. A failure leaves the default slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong);
    }
}

#[cfg(not(target_os = "linux"))]
fn reduce_timer_slack() {}

fn pace(
    rate: f64,
    start: Instant,
    deadline: Instant,
    stop: &watch::Receiver<bool>,
    gates: &[Arc<Semaphore>],
) {
    reduce_timer_slack();
    // Global slot s is due at s / rate and belongs to worker s mod workers,
    // whose own schedule counts it as its (s div workers)-th request.
    let slots = ArrivalSchedule::new(rate, 1, 0);
    let mut slot = 0u64;
    loop {
        let due = start + slots.offset_of(slot);
        if due >= deadline || !sleep_until(due, stop) {
            break;
        }
        gates[(slot % gates.len() as u64) as usize].add_permits(1);
        slot += 1;
    }
    // Workers that are behind keep their overdue permits until the deadline.
    sleep_until(deadline, stop);
    for gate in gates {
        gate.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_every_slot_before_the_deadline_round_robin_then_closes() {
        let (_stop_tx, stop) = watch::channel(false);
        let start = Instant::now();
        // 1000/s for 40 ms: slots 0..40, ten per gate.
        let pacer = Pacer::start(1000.0, 4, start, start + Duration::from_millis(40), stop)
            .expect("pacer thread");
        let gates = pacer.gates.clone();
        pacer.join();
        assert!(start.elapsed() >= Duration::from_millis(40));
        for gate in &gates {
            assert!(gate.is_closed());
            assert_eq!(gate.available_permits(), 10);
        }
    }

    #[test]
    fn stops_when_asked() {
        let (stop_tx, stop) = watch::channel(false);
        let start = Instant::now();
        let pacer = Pacer::start(10.0, 1, start, start + Duration::from_secs(60), stop)
            .expect("pacer thread");
        stop_tx.send_replace(true);
        let gates = pacer.gates.clone();
        pacer.join();
        // Generous: the pacer naps at most 10 ms between looks at the flag.
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(gates[0].is_closed());
    }
}
