//! `latchkey-bench` command line: see the crate documentation of
//! [`latchkey_bench`] and `latchkey-bench --help`.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Parser;
use latchkey_bench::guard::parse_target;
use latchkey_bench::profile::Profile;
use latchkey_bench::report::{Params, Report};
use latchkey_bench::run::{self, RunConfig, Scenario};
use latchkey_bench::schedule::parse_mix;
use latchkey_bench::server_cpu::ServerCpuProbe;

/// Load harness for Latchkey and peer token services (loopback targets only).
#[derive(Debug, Parser)]
#[command(name = "latchkey-bench", version)]
struct Args {
    /// Scenario to run.
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Server base URL; must be 127.0.0.0/8, [::1] or localhost.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// Concurrent workers, one keep-alive connection each.
    #[arg(long, default_value_t = 16)]
    workers: usize,
    /// Length of the timed phase (seconds or humantime, e.g. 10s, 2m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Stop after this many requests in all (setup included).
    #[arg(long, default_value_t = 5_000_000)]
    max_requests: u64,
    /// `latchkey`, `simplejwt`, or a profile TOML file.
    #[arg(long, default_value = "latchkey")]
    profile: String,
    /// Weights SIGN_IN:REFRESH:ME for the mixed scenario.
    #[arg(long, default_value = "1:20:500")]
    mix: String,
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write one JSON line per worker with its newest acknowledged and its
    /// in-flight refresh token (refresh and mixed scenarios).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// The server's password-hash bound (hashes/s); prints achieved/bound for sign-ins.
    #[arg(long, value_name = "N")]
    argon2_bound_per_sec: Option<f64>,
    /// Run id in usernames (default: random).
    #[arg(long)]
    run_id: Option<String>,
    /// Username prefix.
    #[arg(long, default_value = "bench")]
    user_prefix: String,
    /// Password of the bench users.
    #[arg(long, default_value = "Bench-passphrase-7319!")]
    password: String,
    /// Longest wait for one answer.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    request_timeout: Duration,
    /// Longest the setup phase (sign-ups, first sign-ins) may take.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    setup_timeout: Duration,
    /// Load-generator runtime threads (default: number of CPUs).
    #[arg(long)]
    threads: Option<usize>,
    /// Open loop: N requests per second in all, on a fixed schedule spread
    /// evenly over the workers; latency counts from each request's due time.
    #[arg(long, value_name = "N")]
    rate: Option<f64>,
    /// Report this server process's CPU time (from /proc/PID/stat) over the
    /// timed phase, and per successful request.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
    }
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

fn random_run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 32) ^ ((nanos >> 64) as u64);
    // splitmix64 finaliser, then 10 hex digits
    let mut z = mixed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    format!("{:010x}", z & 0xff_ffff_ffff)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let target = parse_target(&args.target)?;
    let profile = Profile::load(&args.profile)?;
    let mix = parse_mix(&args.mix)?;
    if args.workers == 0 {
        bail!("--workers must be at least 1");
    }
    if args.duration.is_zero() {
        bail!("--duration must be positive");
    }
    if args.record.is_some() && !matches!(args.scenario, Scenario::Refresh | Scenario::Mixed) {
        bail!("--record applies to the refresh and mixed scenarios");
    }
    if args.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        bail!("--rate must be a positive number of requests per second");
    }
    let server_cpu = args
        .server_pid
        .map(ServerCpuProbe::new)
        .transpose()
        .context("--server-pid")?;
    let run_id = args.run_id.clone().unwrap_or_else(random_run_id);
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let params = Params {
        target: args.target.clone(),
        profile: profile.name.clone(),
        scenario: args.scenario.name(),
        workers: args.workers,
        duration_s: args.duration.as_secs_f64(),
        max_requests: args.max_requests,
        mix: (args.scenario == Scenario::Mixed).then_some(mix),
        threads,
        run_id: run_id.clone(),
        request_timeout_s: args.request_timeout.as_secs_f64(),
        rate: args.rate,
        server_pid: args.server_pid,
    };
    let cfg = RunConfig {
        target,
        profile,
        scenario: args.scenario,
        workers: args.workers,
        duration: args.duration,
        max_requests: args.max_requests,
        mix,
        run_id,
        user_prefix: args.user_prefix.clone(),
        password: args.password.clone(),
        request_timeout: args.request_timeout,
        setup_timeout: args.setup_timeout,
        rate: args.rate,
        server_cpu,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let outcome = rt.block_on(async {
        let handle = run::prepare(cfg)?;
        let on_signal = handle.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: stopping workers");
                on_signal.stop();
            }
        });
        anyhow::Ok(run::run(&handle).await?)
    })?;
    // Records first: they matter most after a crash.
    if let Some(path) = &args.record {
        let mut out = String::new();
        for r in &outcome.records {
            out.push_str(&serde_json::to_string(r)?);
            out.push('\n');
        }
        std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))?;
    }
    let report = Report::new(params, &outcome, args.argon2_bound_per_sec);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(report.table().as_bytes())?;
    stdout.flush()?;
    Ok(())
}
