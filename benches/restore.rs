//! The restore benchmark: N flows restored and published into an empty, rebuilt org (its queues,
//! prompts, data actions… under new ids, so every reference is re-pointed) against the simulated
//! org's rate limit L, latency D and operation time O, printing figures (not asserting timings:
//! these machines are shared).
//!
//! `cargo bench --bench restore` runs the standard scenario (1,000 flows, 50 requests/s, 100 ms,
//! 0.4 s); `-- --flows N --concurrency C` changes it. The source org is exported (unlimited) by the
//! `flowvault` binary, then `flowvault restore --all --apply --publish --to-other-org` runs as a
//! child process against the limited target; the wall time is the child's, plan included.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use flowvault::sim::{SimConfig, SimObjects, SimRateLimit, SimServer};
use serde_json::Value;

use common::{CLIENT_ID, CLIENT_SECRET, arg, flowvault};

/// What issue #25 measured before: one flow at a time.
const TODAY_FLOWS_PER_S: f64 = 0.43;
const TODAY_RATIO: f64 = 0.12;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flows = arg(&args, "--flows").unwrap_or(1000) as usize;
    let concurrency = arg(&args, "--concurrency");
    let (limit, latency, operation) = (50u32, Duration::from_millis(100), Duration::from_millis(400));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");

    let source = runtime
        .block_on(SimServer::start(
            SimConfig::generated(flows, 2026, CLIENT_ID, CLIENT_SECRET),
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0),
        ))
        .expect("source sim");
    let status = flowvault(&source)
        .args([
            "export",
            "--run-id",
            "src",
            "--format",
            "tar-gz",
            "--rate-limit",
            "off",
            "--log-level",
            "warn",
        ])
        .arg("--to")
        .arg(dir.path())
        .status()
        .expect("run flowvault export");
    assert!(status.success(), "the export of the source org failed");

    let mut target = SimConfig::with_flows(Vec::new(), CLIENT_ID, CLIENT_SECRET);
    target.organization["id"] = "0f0f0f0f-0000-4000-a000-0000000000be".into();
    target.objects = SimObjects::rebuilt(1);
    target.latency = latency;
    target.operation_delay = operation;
    target.rate_limit = Some(SimRateLimit {
        requests: limit,
        window: Duration::from_secs(1),
    });
    let target = runtime
        .block_on(SimServer::start(target, SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0)))
        .expect("target sim");
    let report = dir.path().join("restore.json");
    let mut cmd = flowvault(&target);
    cmd.arg("restore")
        .arg(dir.path().join("src"))
        .args([
            "--all",
            "--apply",
            "--publish",
            "--to-other-org",
            "--rate-limit",
            &format!("{limit}/s"),
        ])
        .args(["--log-level", "warn", "--output", "json", "--report"])
        .arg(&report)
        .stdout(std::process::Stdio::null());
    if let Some(c) = concurrency {
        cmd.args(["--concurrency", &c.to_string()]);
    }
    let started = Instant::now();
    let status = cmd.status().expect("run flowvault restore");
    let wall = started.elapsed().as_secs_f64();

    let stats = target.stats();
    let requests = stats.api_requests.load(Ordering::Relaxed);
    let throttled = stats.throttled.load(Ordering::Relaxed);
    let accepted = requests - throttled;
    let report: Value = serde_json::from_slice(&std::fs::read(&report).expect("the report")).expect("JSON");
    let done = report["flows"]
        .as_array()
        .map_or(0, |f| f.iter().filter(|f| f["outcome"] == "done").count());
    let published = target
        .flows()
        .iter()
        .filter(|f| f.published_version().is_some())
        .count();
    let expected = &report["expected"];
    println!(
        "flowvault restore benchmark: {flows} flows into an empty rebuilt org at L = {limit} requests/s, D = {} ms, O = {:.1} s{}",
        latency.as_millis(),
        operation.as_secs_f64(),
        concurrency.map(|c| format!(", --concurrency {c}")).unwrap_or_default()
    );
    println!(
        "exit code {:?}; {done} flows done, {published} published",
        status.code()
    );
    println!("| flows | requests (accepted) | 429s | wall | requests ÷ (L × wall) | flows/s | today | plan expected |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {flows} | {accepted} | {throttled} | {wall:.1} s | **{:.3}** | **{:.2}** | {TODAY_FLOWS_PER_S} flows/s, {TODAY_RATIO} of L | {} requests, {:.0} s |",
        accepted as f64 / (f64::from(limit) * wall),
        done as f64 / wall,
        expected["requests"],
        expected["seconds"].as_f64().unwrap_or(0.0)
    );
}
