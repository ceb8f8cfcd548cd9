//! A simple sequential latency loop (the load harness proper is a separate
//! crate): starts a server in-process with production settings (default
//! Argon2 cost, real clock, a fresh SQLite file; per-address rate limits
//! off), then times sign-ins and
//! refreshes one at a time over loopback HTTP.
//!
//! cargo run --release -p latchkey-server --example latency -- [SIGN_INS] [REFRESHES] [DATA_DIR]

use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey_core::clock::SystemClock;
use latchkey_server::rate_limit::RateLimits;
use latchkey_server::{RunningServer, Settings};
use serde_json::{json, Value};

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{name:<8} n={:<6} mean={:>8.3?} p50={:>8.3?} p99={:>8.3?} max={:>8.3?}",
        samples.len(),
        mean,
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let sign_ins: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(200);
    let refreshes: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5000);
    let tmp = tempfile::tempdir()?;
    let data_dir = args
        .next()
        .map(Into::into)
        .unwrap_or_else(|| tmp.path().join("data"));

    let mut settings = Settings::new("127.0.0.1:0".parse()?, &data_dir);
    // Every request comes from loopback: the per-address limits are off.
    settings.rate_limits = RateLimits {
        sign_up_per_minute: 0,
        tokens_per_minute: 0,
        recovery_per_minute: 0,
    };
    let server = RunningServer::start(settings, Arc::new(SystemClock)).await?;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let creds = json!({"username": "latency", "password": "correct horse battery"});
    http.post(format!("{base}/v1/sign-up"))
        .json(&creds)
        .send()
        .await?;

    let mut sign_in = Vec::with_capacity(sign_ins);
    let mut refresh_token = String::new();
    for _ in 0..sign_ins {
        let t = Instant::now();
        let r = http
            .post(format!("{base}/v1/sign-in"))
            .json(&creds)
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "sign-in: {}", r.status());
        let v: Value = r.json().await?;
        sign_in.push(t.elapsed());
        refresh_token = v["refresh_token"].as_str().unwrap_or_default().to_owned();
    }
    let mut refresh = Vec::with_capacity(refreshes);
    for _ in 0..refreshes {
        let t = Instant::now();
        let r = http
            .post(format!("{base}/v1/tokens/refresh"))
            .json(&json!({"refresh_token": refresh_token}))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "refresh: {}", r.status());
        let v: Value = r.json().await?;
        refresh.push(t.elapsed());
        refresh_token = v["refresh_token"].as_str().unwrap_or_default().to_owned();
    }
    report("sign-in", sign_in);
    report("refresh", refresh);
    server.stop().await;
    println!("database: {}", data_dir.join("latchkey.db").display());
    Ok(())
}
