//! The Architect objects benchmark (issue 26): an org of 1,000 flows, 300 prompts (900 audio
//! files), 50 data tables (20,000 rows), 40 schedules and 100 IVRs (plus the standard catalogue's
//! schedule groups, emergency groups, outcomes and milestones), exported at the rate limit by the
//! release binary; prints the flows' and the Architect phase's requests and wall time side by
//! side, what `plan` expected, and how the audio was paced. Figures, not assertions: these
//! machines are shared.
//!
//! `cargo bench --bench architect` (`-- --limit L --latency-ms D` to vary the pace). The org is
//! the simulated one in this process: a sliding-window limit of L requests/s (429 + Retry-After
//! beyond it) and latency D on every API response; the presigned audio URLs are outside the limit,
//! as Genesys's are. Two runs: `--kinds flows` (today's run), then the default (every kind).

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use flowvault::manifest::{Content, Manifest};
use flowvault::sim::{ArchitectSizes, SimConfig, SimObjects, SimRateLimit, SimServer};
use serde_json::Value;

use common::{CLIENT_ID, CLIENT_SECRET, arg, flowvault};

const FLOWS: usize = 1000;

/// The benchmark's org: 1,000 generated flows over the bench-sized catalogue.
fn config(limit: u32, latency: Duration) -> SimConfig {
    let mut config = SimConfig::generated(FLOWS, 2026, CLIENT_ID, CLIENT_SECRET);
    config.objects = SimObjects::sized(&ArchitectSizes::bench()).with_flows(&config.flows);
    config.latency = latency;
    config.rate_limit = Some(SimRateLimit {
        requests: limit,
        window: Duration::from_secs(1),
    });
    config
}

/// What one export came to.
struct Figures {
    wall: f64,
    requests: u64,
    throttled: u64,
    /// The Architect phase: its API requests (the manifest's, per kind) and the seconds from its
    /// first accepted request to the process's exit.
    architect_requests: u64,
    architect_wall: f64,
    /// From the phase's first to its last accepted API request.
    architect_api_span: f64,
    per_kind: Vec<(String, u64, u64)>,
    /// Seconds from the first kind's listing to each kind's (from the run's `listed N KIND` log
    /// lines), and to the run's last log line.
    kind_starts: Vec<(String, f64)>,
    audio_files: u64,
    audio_bytes: u64,
    objects: u64,
}

fn export(sim: &SimServer, rate: &str, dir: &std::path::Path, run: &str, kinds: &[&str]) -> Figures {
    let before = stats(sim);
    let accepted_before = accepted_times(sim).len();
    let started = Instant::now();
    let status = flowvault(sim)
        .args([
            "export",
            "--run-id",
            run,
            "--rate-limit",
            rate,
            "--log-level",
            "info",
            "--log-format",
            "text",
        ])
        .args(kinds)
        .arg("--to")
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{run}.log"))).expect("log file"))
        .status()
        .expect("run flowvault export");
    let ended = tokio::time::Instant::now();
    let wall = started.elapsed().as_secs_f64();
    assert!(status.success(), "export {run} exited with {status}");
    let m =
        Manifest::from_slice(&std::fs::read(dir.join(run).join("manifest.json")).expect("manifest")).expect("manifest");
    let after = stats(sim);
    let counter = |name: &str| after[name].as_u64().unwrap_or(0) - before[name].as_u64().unwrap_or(0);
    let per_kind: Vec<(String, u64, u64)> = m
        .architect
        .iter()
        .flat_map(|a| &a.kinds)
        .map(|k| (k.kind.clone(), k.exported, k.requests))
        .collect();
    let architect_requests: u64 = per_kind.iter().map(|(_, _, r)| r).sum();
    let accepted = accepted_times(sim);
    let run_accepted = &accepted[accepted_before..];
    let first = run_accepted
        .len()
        .checked_sub(architect_requests as usize)
        .and_then(|i| run_accepted.get(i))
        .filter(|_| architect_requests > 0);
    let architect_wall = first.map_or(0.0, |first| (ended - *first).as_secs_f64());
    let architect_api_span = match (first, run_accepted.last()) {
        (Some(a), Some(b)) => (*b - *a).as_secs_f64(),
        _ => 0.0,
    };
    let audio: Vec<u64> = m
        .objects
        .iter()
        .flat_map(|o| &o.documents)
        .filter(|d| d.holds(Content::Audio))
        .map(|d| d.bytes)
        .collect();
    let log = std::fs::read_to_string(dir.join(format!("{run}.log"))).unwrap_or_default();
    Figures {
        kind_starts: kind_starts(&log),
        wall,
        requests: counter("api_requests"),
        throttled: counter("throttled"),
        architect_requests,
        architect_wall,
        architect_api_span,
        per_kind,
        audio_files: audio.len() as u64,
        audio_bytes: audio.iter().sum(),
        objects: m.objects.len() as u64,
    }
}

/// Seconds of the day of a log line's RFC 3339 timestamp (`…T22:12:01.271434Z …`).
fn seconds_of(line: &str) -> Option<f64> {
    let t = line.split_whitespace().next()?.split('T').nth(1)?.trim_end_matches('Z');
    let mut parts = t.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}

/// When each kind's objects started (its `listed N KIND` line) and the run's last line, in
/// seconds after the first kind's.
fn kind_starts(log: &str) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = log
        .lines()
        .filter(|l| l.contains(" listed ") && l.contains("kind="))
        .filter_map(|l| {
            let kind = l.split("kind=").nth(1)?.split_whitespace().next()?.to_string();
            Some((kind, seconds_of(l)?))
        })
        .collect();
    if let Some(end) = log.lines().rev().find_map(seconds_of) {
        out.push(("(last log line)".into(), end));
    }
    let first = out.first().map(|(_, t)| *t).unwrap_or(0.0);
    out.into_iter().map(|(k, t)| (k, t - first)).collect()
}

fn stats(sim: &SimServer) -> Value {
    sim.stats().to_json()
}

fn accepted_times(sim: &SimServer) -> Vec<tokio::time::Instant> {
    sim.stats().limited.lock().map(|l| l.0.clone()).unwrap_or_default()
}

fn plan(sim: &SimServer, rate: &str, dir: &std::path::Path) -> Value {
    let out = flowvault(sim)
        .args(["plan", "--json", "--rate-limit", rate, "--log-level", "warn", "--to"])
        .arg(dir)
        .output()
        .expect("run flowvault plan");
    assert!(out.status.success(), "plan: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("plan --json")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let limit = arg(&args, "--limit").unwrap_or(50) as u32;
    let latency = Duration::from_millis(arg(&args, "--latency-ms").unwrap_or(100));
    let rate = format!("{limit}/s");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let sim = runtime
        .block_on(SimServer::start(
            config(limit, latency),
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0),
        ))
        .expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    println!(
        "Architect objects at the rate limit: {FLOWS} flows + the bench catalogue, L = {limit}/s sliding 1 s window, D = {} ms; release build",
        latency.as_millis()
    );
    let planned = plan(&sim, &rate, dir.path());
    let flows = export(&sim, &rate, dir.path(), "flows", &["--kinds", "flows"]);
    let all = export(&sim, &rate, dir.path(), "all", &[]);
    println!();
    println!(
        "| run | requests (sent) | 429s | wall | objects | Architect requests | Architect phase wall | audio files | audio MB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, f) in [("`--kinds flows`", &flows), ("default (every kind)", &all)] {
        println!(
            "| {name} | {} | {} | {:.1} s | {} | {} | {:.1} s | {} | {:.1} |",
            f.requests,
            f.throttled,
            f.wall,
            f.objects,
            f.architect_requests,
            f.architect_wall,
            f.audio_files,
            f.audio_bytes as f64 / 1e6
        );
    }
    println!();
    println!("| kind | objects | requests (export) | requests (plan) |");
    println!("|---|---|---|---|");
    for (kind, objects, requests) in &all.per_kind {
        let planned_requests = planned["estimate"]["architect"]
            .as_array()
            .and_then(|ks| ks.iter().find(|k| k["kind"] == kind.as_str()))
            .and_then(|k| k["requests"].as_u64())
            .unwrap_or(0);
        println!("| {kind} | {objects} | {requests} | {planned_requests} |");
    }
    println!();
    let starts: Vec<String> = all.kind_starts.iter().map(|(k, t)| format!("{k} +{t:.1} s")).collect();
    println!("each kind's objects started (after its listing): {}", starts.join(", "));
    let flows_phase = all.wall - all.architect_wall;
    println!();
    println!(
        "plan expected {} requests ({} flows', {} Architect) and {:.1} s at the limit, {} audio downloads",
        planned["estimate"]["requests"],
        planned["estimate"]["flow_requests"],
        planned["estimate"]["requests"].as_u64().unwrap_or(0)
            - planned["estimate"]["flow_requests"].as_u64().unwrap_or(0),
        planned["estimate"]["seconds_at_rate"].as_f64().unwrap_or(0.0),
        planned["estimate"]["audio_downloads"]
    );
    println!(
        "ratios: Architect phase ÷ flows phase: requests {:.3}, wall {:.3}; full run ÷ flows-only run: requests {:.3}, wall {:.3}",
        all.architect_requests as f64 / (all.requests - all.architect_requests).max(1) as f64,
        all.architect_wall / flows_phase.max(f64::EPSILON),
        all.requests as f64 / flows.requests.max(1) as f64,
        all.wall / flows.wall
    );
    println!(
        "Architect phase: its API requests span {:.1} s (first to last accepted; {:.3} of L over that span), then {:.1} s to the process's exit (seal)",
        all.architect_api_span,
        all.architect_requests.saturating_sub(1) as f64 / all.architect_api_span.max(f64::EPSILON) / limit as f64,
        all.architect_wall - all.architect_api_span
    );
    println!(
        "Architect phase pace: {:.1} requests/s = {:.3} of L, with {} audio files ({:.1} MB) downloaded in the same {:.1} s",
        all.architect_requests as f64 / all.architect_wall.max(f64::EPSILON),
        all.architect_requests as f64 / all.architect_wall.max(f64::EPSILON) / limit as f64,
        all.audio_files,
        all.audio_bytes as f64 / 1e6,
        all.architect_wall
    );
    runtime.block_on(sim.shutdown());
}
