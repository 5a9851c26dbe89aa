//! The export benchmark: flowvault against the simulated org's rate limit, side by side with the
//! tutorial's strategy, printing figures (not asserting timings: these machines are shared).
//!
//! `cargo bench --bench export` runs the standard scenarios; `-- --quick` a short subset.
//! Each scenario starts the simulated org in this process with a sliding-window limit L
//! (429 + Retry-After beyond it) and latency D, runs the release `flowvault export` binary as a
//! child process, and reads its peak RSS from `wait4`. `-- --fidelity` runs issue 27's scenario
//! (1,000 flows with no drafts, 50/s sliding window, 100 ms) told the limit and not told, to
//! local disk and to SeaweedFS, with the org's request timeline.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use flowvault::manifest::{Manifest, Outcome};
use flowvault::sim::{SimConfig, SimRateLimit, SimServer};

#[path = "../tests/it/support/mod.rs"]
mod support;
use support::targets::{Place, Target};

const CLIENT_ID: &str = "bench";
const CLIENT_SECRET: &str = "bench-secret";

#[derive(Clone, Copy)]
struct Scenario {
    flows: usize,
    /// Requests per second; `None` = unlimited.
    limit: Option<u32>,
    latency_ms: u64,
    /// Also run the tutorial's strategy on the first `baseline` flows.
    baseline: usize,
    /// Run flowvault with `--rate-limit off`: it must find the server's limit from its 429s.
    client_off: bool,
}

struct Figures {
    requests: u64,
    throttled: u64,
    wall: Duration,
    floor: Option<Duration>,
    ratio: Option<f64>,
    /// Achieved ÷ L between the first and the last accepted request (pacing alone).
    paced_ratio: Option<f64>,
    /// Achieved ÷ L from the end of the first throttled window on, and the 429s in that time.
    learned: Option<(f64, u64)>,
    lost: i64,
    peak_rss_mib: f64,
    archive_bytes: u64,
    document_bytes: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--scenario N/L/D[/off]` runs one scenario, e.g. `1000/50/500` (L = `inf` for unlimited;
    // `/off` runs flowvault with `--rate-limit off` against the limit L).
    let only = args
        .iter()
        .position(|a| a == "--scenario")
        .and_then(|i| args.get(i + 1))
        .map(|spec| {
            let parts: Vec<&str> = spec.split('/').collect();
            let num = |i: usize| parts.get(i).and_then(|p| p.parse::<u64>().ok());
            Scenario {
                client_off: parts.get(3) == Some(&"off"),
                ..sc(
                    num(0).unwrap_or(1000) as usize,
                    num(1).map(|l| l as u32),
                    num(2).unwrap_or(0),
                    50,
                )
            }
        });
    let scenarios: Vec<Scenario> = if let Some(s) = only {
        vec![s]
    } else if quick {
        vec![sc(1000, Some(50), 100, 100), sc(10_000, None, 0, 0)]
    } else {
        vec![
            sc(1000, Some(50), 0, 100),
            sc(1000, Some(50), 100, 100),
            sc(1000, Some(50), 500, 50),
            sc(5000, Some(50), 500, 0),
            sc(500, Some(5), 100, 30),
            sc(1000, None, 0, 100),
            sc(1000, None, 100, 50),
            sc(10000, Some(200), 100, 0),
            sc(10000, None, 0, 0),
            sc(50000, None, 0, 0),
            Scenario {
                client_off: true,
                ..sc(1000, Some(50), 100, 0)
            },
        ]
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let incremental_only = args.iter().any(|a| a == "--incremental");
    if args.iter().any(|a| a == "--fidelity") {
        fidelity(&runtime);
        return;
    }
    println!(
        "flowvault export benchmark ({} scenarios); machine: {}",
        scenarios.len(),
        machine()
    );
    if !incremental_only {
        println!();
        println!(
            "| N | L (req/s) | D | requests | 429s | wall | floor | achieved ÷ L (wall) | achieved ÷ L (configuration span) | after the first 429 window: ÷ L, 429s | lost | peak RSS | archive | gzip MB/s | tutorial ÷ L | tutorial lost |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    }
    for s in scenarios.into_iter().filter(|_| !incremental_only) {
        let f = runtime.block_on(run_flowvault(s));
        let (tut_ratio, tut_lost) = if s.baseline > 0 {
            runtime.block_on(run_tutorial(s))
        } else {
            (None, None)
        };
        let gzip = gzip_mb_per_s(f.document_bytes);
        println!(
            "| {} | {} | {} ms | {} | {} | {:.1} s | {} | {} | {} | {} | {} | {:.1} MiB | {:.1} MB | {:.0} | {} | {} |",
            s.flows,
            s.limit
                .map(|l| if s.client_off {
                    format!("{l} (flowvault: `off`)")
                } else {
                    l.to_string()
                })
                .unwrap_or_else(|| "∞".into()),
            s.latency_ms,
            f.requests,
            f.throttled,
            f.wall.as_secs_f64(),
            f.floor
                .map(|d| format!("{:.1} s", d.as_secs_f64()))
                .unwrap_or_else(|| "–".into()),
            f.ratio.map(|r| format!("**{r:.3}**")).unwrap_or_else(|| "–".into()),
            f.paced_ratio.map(|r| format!("{r:.3}")).unwrap_or_else(|| "–".into()),
            f.learned
                .map(|(r, t)| format!("{r:.3}, {t}"))
                .unwrap_or_else(|| "–".into()),
            f.lost,
            f.peak_rss_mib,
            f.archive_bytes as f64 / 1e6,
            gzip,
            tut_ratio.map(|r| format!("{r:.3}")).unwrap_or_else(|| "–".into()),
            tut_lost
                .map(|l| format!("{l} of {}", s.baseline))
                .unwrap_or_else(|| "–".into()),
        );
    }
    if incremental_only || (!quick && only.is_none()) {
        println!();
        incremental(&runtime);
    }
}

fn sc(flows: usize, limit: Option<u32>, latency_ms: u64, baseline: usize) -> Scenario {
    Scenario {
        flows,
        limit,
        latency_ms,
        baseline,
        client_off: false,
    }
}

fn sim_config(s: Scenario) -> SimConfig {
    let mut config = SimConfig::generated(s.flows, 2026, CLIENT_ID, CLIENT_SECRET);
    config.latency = Duration::from_millis(s.latency_ms);
    config.rate_limit = s.limit.map(|l| SimRateLimit {
        requests: l,
        window: Duration::from_secs(1),
    });
    config
}

async fn run_flowvault(s: Scenario) -> Figures {
    let sim = SimServer::start(sim_config(s), SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0))
        .await
        .expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let rate = s
        .limit
        .filter(|_| !s.client_off)
        .map(|l| format!("{l}/s"))
        .unwrap_or_else(|| "off".into());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowvault"));
    cmd.args([
        "export",
        "--run-id",
        "bench",
        "--rate-limit",
        &rate,
        "--log-level",
        "warn",
    ])
    .arg("--to")
    .arg(dir.path())
    .env("GENESYSCLOUD_OAUTHCLIENT_ID", CLIENT_ID)
    .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", CLIENT_SECRET)
    .env("FLOWVAULT_API_URL", sim.url())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    let started = Instant::now();
    // Reaped by `wait4` below (waitpid), which also samples its peak memory.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().expect("spawn flowvault");
    let pid = child.id() as libc::pid_t;
    let (code, maxrss_kib) = tokio::task::spawn_blocking(move || wait4(pid)).await.expect("wait");
    let wall = started.elapsed();
    assert_eq!(code, 0, "flowvault exited with {code}");
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(dir.path().join("bench/manifest.json")).expect("manifest"))
            .expect("parse");
    let handled = manifest
        .flows
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Exported | Outcome::NotFound))
        .count();
    let requests = sim.stats().api_requests.load(Ordering::Relaxed);
    let throttled = sim.stats().throttled.load(Ordering::Relaxed);
    let accepted = requests - throttled;
    let floor = s.limit.map(|l| Duration::from_secs_f64(accepted as f64 / l as f64));
    let ratio = s.limit.map(|l| (accepted as f64 / wall.as_secs_f64()) / l as f64);
    let span = sim.stats().configuration_span_secs().unwrap_or(0.0);
    let configs = sim.stats().configuration_requests.load(Ordering::Relaxed);
    let paced_ratio = s
        .limit
        .filter(|_| span > 0.0)
        .map(|l| ((configs - 1) as f64 / span) / l as f64);
    let learned = s.limit.and_then(|l| {
        let (n, t, secs) = sim.stats().after_first_throttled_window(Duration::from_secs(1))?;
        (secs > 0.0).then(|| ((n.saturating_sub(1)) as f64 / secs / l as f64, t))
    });
    let archive_bytes = std::fs::metadata(dir.path().join("bench/flows.tar.gz"))
        .map(|m| m.len())
        .unwrap_or(0);
    let document_bytes = manifest
        .flows
        .iter()
        .flat_map(|r| r.documents.iter().map(|d| d.bytes))
        .sum();
    sim.shutdown().await;
    Figures {
        requests,
        throttled,
        wall,
        floor,
        ratio,
        paced_ratio,
        learned,
        lost: s.flows as i64 - handled as i64,
        peak_rss_mib: maxrss_kib as f64 / 1024.0,
        archive_bytes,
        document_bytes,
    }
}

/// Waits for `pid`, returning its exit code and peak RSS in KiB. The peak is the program's own
/// `VmHWM`, polled every 20 ms until it exits (`ru_maxrss` would also count the benchmark's pages
/// that the child shared before it exec'd).
fn wait4(pid: libc::pid_t) -> (i32, i64) {
    let mut status = 0;
    let mut peak_kib = 0i64;
    loop {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(line) = s.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kib: i64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
            peak_kib = peak_kib.max(kib);
        }
        // SAFETY: waiting for our own child; status is a plain int.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        assert!(r == 0, "waitpid failed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, peak_kib)
}

/// The tutorial's strategy: one flow at a time, a 100 ms pause after each, no retry on 429 (such
/// a flow is simply lost). Returns (achieved ÷ L, flows lost).
async fn run_tutorial(s: Scenario) -> (Option<f64>, Option<usize>) {
    let sim = SimServer::start(sim_config(s), SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0))
        .await
        .expect("sim");
    flowvault::tls::init();
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("{}/oauth/token", sim.url()))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    let bearer = token["access_token"].as_str().unwrap_or_default().to_string();
    let started = Instant::now();
    let ids: Vec<String> = sim
        .flows()
        .iter()
        .take(s.baseline)
        .map(|f| f.id().to_string())
        .collect();
    let mut lost = 0;
    for id in &ids {
        let resp = http
            .get(format!("{}/api/v2/flows/{id}/latestconfiguration", sim.url()))
            .bearer_auth(&bearer)
            .send()
            .await;
        match resp {
            Ok(r) if r.status().is_success() => {
                let _ = r.bytes().await;
            }
            _ => lost += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wall = started.elapsed();
    let accepted = sim.stats().api_requests.load(Ordering::Relaxed) - sim.stats().throttled.load(Ordering::Relaxed);
    sim.shutdown().await;
    (
        s.limit.map(|l| (accepted as f64 / wall.as_secs_f64()) / l as f64),
        Some(lost),
    )
}

/// Compression throughput of the tar+gzip encoder on realistic documents of the given total size.
fn gzip_mb_per_s(total_bytes: u64) -> f64 {
    let org = flowvault::sim::generate_org(200, 7, false);
    let docs: Vec<Vec<u8>> = org
        .iter()
        .map(|f| flowvault::export::build_document(&f.meta.to_string(), &f.configuration_json()))
        .collect();
    let sample: u64 = docs.iter().map(|d| d.len() as u64).sum();
    let rounds = (total_bytes / sample.max(1)).clamp(1, 20);
    let started = Instant::now();
    let mut encoder = flowvault::sink::TarGzEncoder::new();
    let mut out = 0usize;
    for r in 0..rounds {
        for (i, d) in docs.iter().enumerate() {
            encoder.append(&format!("flows/x/{r}-{i}.json"), d).expect("encode");
            out += encoder.take_output().len();
        }
    }
    out += encoder.finish().expect("finish").len();
    let _ = out;
    (sample * rounds) as f64 / 1e6 / started.elapsed().as_secs_f64()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!(
        "{} cores, {cpu}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    )
}

/// Flows in the org of the incremental runs, and their pace.
const INCREMENTAL_FLOWS: usize = 5000;
const INCREMENTAL_LIMIT: u32 = 200;

/// A full run, then incremental runs after 1% and after 10% more of the flows changed, for each
/// store and format: configuration requests and wall time as a share of the full run's.
fn incremental(runtime: &tokio::runtime::Runtime) {
    println!("Incremental runs (`--since latest`), {INCREMENTAL_FLOWS} flows, L = {INCREMENTAL_LIMIT}/s, D = 100 ms:");
    println!();
    println!("| destination | run | flows changed | configuration requests | ÷ full | wall | ÷ full | carried |");
    println!("|---|---|---|---|---|---|---|---|");
    for target in [
        Target::LocalTarGz,
        Target::LocalObjects,
        Target::SeaweedTarGz,
        Target::SeaweedObjects,
    ] {
        runtime.block_on(incremental_runs(target));
    }
}

async fn incremental_runs(target: Target) {
    let mut config = SimConfig::generated(INCREMENTAL_FLOWS, 2026, support::CLIENT_ID, support::CLIENT_SECRET);
    config.latency = Duration::from_millis(100);
    config.rate_limit = Some(SimRateLimit {
        requests: INCREMENTAL_LIMIT,
        window: Duration::from_secs(1),
    });
    let sim = SimServer::start(config, SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0))
        .await
        .expect("sim");
    let place = Place::new(target).await;
    let rate = format!("{INCREMENTAL_LIMIT}/s");
    let ids: Vec<String> = sim.flows().iter().map(|f| f.id().to_string()).collect();
    let mut full: Option<(u64, f64)> = None;
    for (run_id, every) in [("full", 0), ("changed-1pct", 100), ("changed-10pct", 10)] {
        let changed = if every == 0 {
            0
        } else {
            ids.iter()
                .step_by(every)
                .filter(|id| {
                    sim.update_flow(id, |f| {
                        f.save_version(format!(r#"{{"name":"edited in {run_id}","tasks":[]}}"#));
                    })
                })
                .count()
        };
        let mut extra = vec!["--rate-limit", &rate, "--log-level", "warn"];
        if every > 0 {
            extra.extend(["--since", "latest"]);
        }
        let before = sim.stats().configuration_requests.load(Ordering::Relaxed);
        let started = Instant::now();
        let out = place.export_with(&sim, run_id, &extra).await;
        let wall = started.elapsed().as_secs_f64();
        assert_eq!(out.status.code(), Some(0), "{}", support::all_output(&out));
        let requests = sim.stats().configuration_requests.load(Ordering::Relaxed) - before;
        let manifest: Manifest =
            serde_json::from_slice(&place.read(&format!("{run_id}/manifest.json")).await).expect("manifest");
        let (full_requests, full_wall) = *full.get_or_insert((requests, wall));
        println!(
            "| {} {} | {run_id} | {changed} | {requests} | {:.3} | {wall:.1} s | {:.3} | {} |",
            if place.s3.is_some() { "S3 (SeaweedFS)" } else { "local" },
            place.format,
            requests as f64 / full_requests as f64,
            wall / full_wall,
            manifest.totals.carried
        );
    }
    sim.shutdown().await;
}

/// What one run of the fidelity scenario came to, read from the org's request timeline.
struct Timeline {
    requests: u64,
    throttled: u64,
    wall: f64,
    /// (one listing pass's pages + flows) ÷ wall ÷ L.
    useful: f64,
    /// Accepted requests ÷ wall ÷ L.
    sent: f64,
    /// Process start → first accepted request, s.
    start_idle: f64,
    /// Last accepted request → exit, s.
    end_idle: f64,
    first_second: usize,
    last_two_seconds: usize,
    /// Accepted ÷ L between the first second and the last two.
    steady: f64,
    peak_rss_mib: f64,
}

const FIDELITY_FLOWS: usize = 1000;
const FIDELITY_LIMIT: u32 = 50;

/// Issue 27's scenario: told the limit and not (local tar-gz), and told to SeaweedFS (tar-gz)
/// for the memory comparison.
fn fidelity(runtime: &tokio::runtime::Runtime) {
    println!(
        "Fidelity scenario: {FIDELITY_FLOWS} flows (no drafts: one request each), L = {FIDELITY_LIMIT}/s sliding 1 s window, D = 100 ms"
    );
    println!();
    println!(
        "| run | destination | requests | 429s | wall | ÷ L (one listing + one per flow) | ÷ L (requests sent) | idle before the first request | accepted in the first second | accepted in the last 2 s | steady ÷ L | idle after the last request | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    runtime.block_on(async {
        let s3 = support::s3::S3Server::seaweedfs().await;
        for (told, on_s3) in [(true, false), (false, false), (true, true)] {
            let t = fidelity_run(told, on_s3.then_some(&s3)).await;
            println!(
                "| {} | {} | {} | {} | {:.2} s | **{:.3}** | {:.3} | {:.2} s | {} | {} | {:.3} | {:.2} s | {:.1} MiB |",
                if told {
                    "told (`--rate-limit 50/s`)"
                } else {
                    "not told (`--rate-limit off`)"
                },
                if on_s3 { "SeaweedFS tar-gz" } else { "local tar-gz" },
                t.requests,
                t.throttled,
                t.wall,
                t.useful,
                t.sent,
                t.start_idle,
                t.first_second,
                t.last_two_seconds,
                t.steady,
                t.end_idle,
                t.peak_rss_mib
            );
        }
    });
}

/// The scenario's org: generated flows whose saved version is the published one (or never
/// published), so each flow costs one configuration request, as in the independent harness.
fn fidelity_org() -> SimConfig {
    let mut config = SimConfig::generated(FIDELITY_FLOWS, 2026, CLIENT_ID, CLIENT_SECRET);
    for f in &mut config.flows {
        if f.published.take().is_some() {
            f.meta["savedVersion"] = f.meta["publishedVersion"].clone();
        }
    }
    config.latency = Duration::from_millis(100);
    config.rate_limit = Some(SimRateLimit {
        requests: FIDELITY_LIMIT,
        window: Duration::from_secs(1),
    });
    config
}

async fn fidelity_run(told: bool, s3: Option<&support::s3::S3Server>) -> Timeline {
    let sim = SimServer::start(fidelity_org(), SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0))
        .await
        .expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let rate = if told {
        format!("{FIDELITY_LIMIT}/s")
    } else {
        "off".into()
    };
    let run_id = if told { "told" } else { "off" };
    let to = match s3 {
        Some(_) => format!("s3://{}/fidelity", support::s3::BUCKET),
        None => dir.path().to_string_lossy().into_owned(),
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowvault"));
    cmd.args([
        "export",
        "--run-id",
        run_id,
        "--rate-limit",
        &rate,
        "--log-level",
        "warn",
        "--to",
        &to,
    ])
    .env("GENESYSCLOUD_OAUTHCLIENT_ID", CLIENT_ID)
    .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", CLIENT_SECRET)
    .env("FLOWVAULT_API_URL", sim.url())
    .envs(s3.map(|s| s.env()).unwrap_or_default())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    let started = Instant::now();
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().expect("spawn flowvault");
    let pid = child.id() as libc::pid_t;
    let (code, maxrss_kib) = tokio::task::spawn_blocking(move || wait4(pid)).await.expect("wait");
    let ended = Instant::now();
    assert_eq!(code, 0, "flowvault exited with {code}");
    let manifest_bytes = match s3 {
        Some(s) => s.get(&format!("fidelity/{run_id}/manifest.json")).await,
        None => std::fs::read(dir.path().join(run_id).join("manifest.json")).expect("manifest"),
    };
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes).expect("parse");
    assert_eq!(manifest.totals.exported as usize, FIDELITY_FLOWS);
    let one_listing = manifest.listing.passes.first().map_or(0, |p| p.pages);
    let requests = sim.stats().api_requests.load(Ordering::Relaxed);
    let throttled = sim.stats().throttled.load(Ordering::Relaxed);
    let accepted: Vec<Instant> = sim
        .stats()
        .limited
        .lock()
        .expect("timeline")
        .0
        .iter()
        .map(|t| t.into_std())
        .collect();
    sim.shutdown().await;
    timeline(started, ended, &accepted, requests, throttled, one_listing, maxrss_kib)
}

fn timeline(
    started: Instant,
    ended: Instant,
    accepted: &[Instant],
    requests: u64,
    throttled: u64,
    one_listing: u64,
    maxrss_kib: i64,
) -> Timeline {
    let l = f64::from(FIDELITY_LIMIT);
    let wall = (ended - started).as_secs_f64();
    let first = accepted.iter().min().copied().unwrap_or(started);
    let last = accepted.iter().max().copied().unwrap_or(ended);
    let within = |from: Instant, to: Instant| accepted.iter().filter(|t| **t >= from && **t < to).count();
    let one = Duration::from_secs(1);
    let steady_span = (last - first).as_secs_f64() - 3.0;
    let steady_n = within(first + one, last.checked_sub(2 * one).unwrap_or(last));
    Timeline {
        requests,
        throttled,
        wall,
        useful: (one_listing + FIDELITY_FLOWS as u64) as f64 / wall / l,
        sent: accepted.len() as f64 / wall / l,
        start_idle: (first - started).as_secs_f64(),
        end_idle: (ended - last).as_secs_f64(),
        first_second: within(first, first + one),
        last_two_seconds: within(
            last.checked_sub(2 * one).unwrap_or(first),
            last + Duration::from_millis(1),
        ),
        steady: steady_n as f64 / steady_span.max(0.001) / l,
        peak_rss_mib: maxrss_kib as f64 / 1024.0,
    }
}
