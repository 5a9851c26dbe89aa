//! Operating flowvault as a batch job: metrics a real Pushgateway serves back and `promtool`
//! accepts, a textfile for node-exporter, a progress bar on a terminal and never in a pipe,
//! `plan` and `doctor` against the simulated org and SeaweedFS, and a JSON summary.

use crate::support;

use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::Duration;

use support::s3::{BUCKET, FaultyS3, S3Fault, S3Server, free_port};
use support::*;

/// A Pushgateway (Debian package prometheus-pushgateway) on 127.0.0.1, stopped on drop.
struct Pushgateway {
    child: std::process::Child,
    url: String,
}

impl Pushgateway {
    async fn start() -> Pushgateway {
        let bin = support::tools::pushgateway();
        let port = free_port();
        // Killed and waited for in `Drop` (clippy cannot see through the struct).
        #[allow(clippy::zombie_processes)]
        let child = std::process::Command::new(bin)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the Pushgateway");
        let url = format!("http://127.0.0.1:{port}");
        flowvault::tls::init();
        for _ in 0..100 {
            if reqwest::get(format!("{url}/-/ready"))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Pushgateway { child, url };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the Pushgateway did not become ready");
    }

    /// The flowvault lines it serves for `org`.
    async fn lines(&self, org: &str) -> Vec<String> {
        let text = reqwest::get(format!("{}/metrics", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with("flowvault_") && l.contains(&format!("org=\"{org}\"")))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn value(lines: &[String], metric: &str) -> Option<f64> {
    lines
        .iter()
        .find(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn promtool_accepts(text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new(support::tools::promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool refused the metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_pushes_metrics_that_the_pushgateway_serves_and_promtool_accepts() {
    let gateway = Pushgateway::start().await;
    let dir = tempfile::tempdir().unwrap();
    let textfile = dir.path().join("flowvault.prom");
    let sim = start_sim(org(6)).await;
    let out = run(export_cmd(&sim, dir.path(), "ok")
        .args(["--pushgateway", &gateway.url, "--metrics-file"])
        .arg(&textfile))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let lines = gateway.lines("sim-org").await;
    assert_eq!(value(&lines, "flowvault_last_run_complete"), Some(1.0), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("flowvault_last_run_flows{")
            && l.contains("outcome=\"exported\"")
            && l.ends_with(" 6")),
        "{lines:?}"
    );
    assert!(value(&lines, "flowvault_last_run_api_requests").is_some(), "{lines:?}");
    let complete_at = value(&lines, "flowvault_last_complete_run_timestamp_seconds").expect("a complete run's time");
    let text = std::fs::read_to_string(&textfile).unwrap();
    promtool_accepts(&text);
    assert!(text.contains("flowvault_last_run_complete 1"), "{text}");

    // An incomplete run: complete 0, and the last complete run's time stays for the alert.
    let mut config = org(4);
    config.forbidden.insert(config.flows[0].id().to_string());
    let bad = start_sim(config).await;
    let out = run(export_cmd(&bad, dir.path(), "bad")
        .args(["--pushgateway", &gateway.url, "--metrics-file"])
        .arg(&textfile))
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    let lines = gateway.lines("sim-org").await;
    assert_eq!(value(&lines, "flowvault_last_run_complete"), Some(0.0), "{lines:?}");
    assert_eq!(value(&lines, "flowvault_last_run_exit_code"), Some(3.0));
    assert_eq!(
        value(&lines, "flowvault_last_complete_run_timestamp_seconds"),
        Some(complete_at)
    );
    let text = std::fs::read_to_string(&textfile).unwrap();
    promtool_accepts(&text);
    assert!(
        text.contains(&format!("flowvault_last_complete_run_timestamp_seconds {complete_at}")),
        "{text}"
    );

    // A run that cannot even log in still reports, under the org it was meant for.
    let out = run(export_cmd(&sim, dir.path(), "fatal")
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", "wrong")
        .args(["--pushgateway", &gateway.url, "--expect-org", "sim-org"]))
    .await;
    assert_eq!(out.status.code(), Some(1));
    let lines = gateway.lines("sim-org").await;
    assert_eq!(value(&lines, "flowvault_last_run_exit_code"), Some(1.0), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_progress_bar_shows_on_a_terminal_and_never_in_a_pipe() {
    let mut config = org(40);
    config.latency = Duration::from_millis(20);
    let sim = start_sim(config).await;
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_flowvault");
    let command = format!(
        "{bin} export --to {} --run-id tty --rate-limit 40/s",
        dir.path().display()
    );
    let out = tokio::process::Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("FLOWVAULT_API_URL", sim.url())
        .env("FLOWVAULT_ALLOW_INSECURE_HTTP", "true")
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", CLIENT_ID)
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", CLIENT_SECRET)
        .output()
        .await
        .expect("script (util-linux) runs the export under a pseudo-terminal");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(
        screen.contains("/40 flows") && screen.contains("ETA"),
        "a bar under a terminal:\n{screen}"
    );
    assert!(
        screen.contains("complete: 40 listed"),
        "the summary after it:\n{screen}"
    );

    let piped = run(&mut export_cmd(&sim, dir.path(), "pipe")).await;
    assert_eq!(piped.status.code(), Some(0));
    let text = all_output(&piped);
    assert!(
        !text.contains("ETA") && !text.contains("\u{1b}["),
        "no bar and no colour codes in a pipe:\n{text}"
    );
    let quiet = tokio::process::Command::new("script")
        .args(["-qfec", &format!("{command}-q --quiet"), "/dev/null"])
        .env("FLOWVAULT_API_URL", sim.url())
        .env("FLOWVAULT_ALLOW_INSECURE_HTTP", "true")
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", CLIENT_ID)
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", CLIENT_SECRET)
        .output()
        .await
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&quiet.stdout).contains("ETA"),
        "--quiet turns it off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_summary_says_what_the_line_says_and_where_things_are() {
    let sim = start_sim(org(5)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(export_cmd(&sim, dir.path(), "j").args(["--output", "json", "--format", "objects"])).await;
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    assert_eq!(v["status"], "complete");
    assert_eq!(v["totals"]["exported"], 5);
    assert!(v["manifest"].as_str().unwrap().ends_with("/j/manifest.json"));
    assert!(v["flows"].as_str().unwrap().ends_with("/j/flows/"));
    assert_eq!(v["organization"]["thirdPartyOrgName"], "sim-org");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_counts_flows_and_requests_against_seaweedfs_and_writes_nothing() {
    let s3 = S3Server::seaweedfs().await;
    let sim = start_sim(org(30)).await;
    let to = format!("s3://{BUCKET}/planned");
    let out = run(flowvault()
        .args(["plan", "--to", &to, "--rate-limit", "10/s"])
        .env("FLOWVAULT_API_URL", sim.url())
        .env("FLOWVAULT_ALLOW_INSECURE_HTTP", "true")
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", CLIENT_ID)
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", CLIENT_SECRET)
        .envs(s3.env()))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let drafts = sim
        .flows()
        .iter()
        .filter(|f| f.published_version().is_some() && f.published_version() != f.saved_version())
        .count();
    assert!(
        text.contains(&format!("flows:        30 ({drafts} with a draft")),
        "{text}"
    );
    assert!(text.contains("INBOUNDCALL"), "{text}");
    assert!(
        text.contains("requests:") && text.contains("at 10.0 requests/s"),
        "{text}"
    );
    assert!(s3.keys("planned/").await.is_empty(), "plan writes nothing");
    assert_eq!(
        sim.stats().configuration_requests.load(Ordering::Relaxed),
        0,
        "plan reads no configuration"
    );
    assert_no_secrets(&all_output(&out), &sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_when_all_is_well_and_names_the_failing_step_and_its_fix() {
    let s3 = S3Server::seaweedfs().await;
    let sim = start_sim(org(3)).await;
    let doctor = |endpoint: String, secret: &str| {
        let mut cmd = flowvault();
        cmd.args(["doctor", "--to", &format!("s3://{BUCKET}/doc")])
            .env("FLOWVAULT_API_URL", sim.url())
            .env("FLOWVAULT_ALLOW_INSECURE_HTTP", "true")
            .env("GENESYSCLOUD_OAUTHCLIENT_ID", CLIENT_ID)
            .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", secret)
            .envs(s3.env())
            .env("AWS_ENDPOINT_URL", endpoint);
        cmd
    };
    let out = run(&mut doctor(s3.endpoint.clone(), CLIENT_SECRET)).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    for step in [
        "settings",
        "login",
        "org",
        "listing",
        "configuration",
        "destination",
        "scratch",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with("ok") && l.contains(step)),
            "{step}: {text}"
        );
    }
    assert!(
        text.contains("architect:jobExport:create") && text.contains("s3:PutObject"),
        "{text}"
    );
    assert!(s3.keys("doc/").await.is_empty(), "the probe is deleted");

    // A read-only container without a writable /tmp: the run would hold its rows in memory.
    let out = run(doctor(s3.endpoint.clone(), CLIENT_SECRET).env("TMPDIR", "/nonexistent/tmp")).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("FAIL") && l.contains("scratch")),
        "{text}"
    );
    assert!(text.contains("fix: mount a writable directory at /tmp"), "{text}");

    let out = run(&mut doctor(s3.endpoint.clone(), "wrong-secret")).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("FAIL") && l.contains("login")),
        "{text}"
    );
    assert!(text.contains("fix: check GENESYSCLOUD_OAUTHCLIENT_ID"), "{text}");
    assert!(!text.contains("wrong-secret"), "no secret printed");

    // A store that lists but refuses writes (moto behind a proxy: SeaweedFS would refuse the
    // proxy's re-signed Host header).
    let moto = S3Server::moto().await;
    let denying = FaultyS3::start(&moto.endpoint, S3Fault::DenyPuts).await;
    let out = run(&mut doctor(denying.endpoint.clone(), CLIENT_SECRET)).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = text.lines().find(|l| l.starts_with("FAIL")).expect("a failing step");
    assert!(line.contains("destination"), "{text}");
    assert!(text.contains("fix: grant s3:PutObject"), "{text}");
    assert_no_secrets(&all_output(&out), &sim);
}

/// Every series the Pushgateway serves for flowvault, as promtool `input_series` held for `minutes`.
fn input_series(metrics: &str, minutes: u32) -> String {
    metrics
        .lines()
        .filter(|l| l.starts_with("flowvault_"))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            format!("      - series: '{series}'\n        values: '{value}x{minutes}'\n")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_selects_series_from_a_real_run() {
    let gateway = Pushgateway::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = org(6);
    config.forbidden.insert(config.flows[0].id().to_string());
    let sim = start_sim(org(6)).await;
    let out = run(export_cmd(&sim, dir.path(), "ok").args(["--pushgateway", &gateway.url])).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let bad = start_sim(config).await;
    let out = run(export_cmd(&bad, dir.path(), "bad").args(["--pushgateway", &gateway.url])).await;
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    let metrics = reqwest::get(format!("{}/metrics", gateway.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // Each panel's PromQL as a recording rule, `$org` as the dashboard's "All".
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("infra/k8s/alerts/grafana-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let exprs: Vec<(String, String)> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap().to_string();
            p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |t| (title.clone(), t["expr"].as_str().unwrap().replace("$org", ".+")))
        })
        .collect();
    let all: String = exprs.iter().map(|(_, e)| e.as_str()).collect();
    for metric in [
        "flowvault_last_complete_run_timestamp_seconds",
        "flowvault_last_run_flows",
        "flowvault_last_run_duration_seconds",
        "flowvault_last_run_throttled",
        "flowvault_last_run_bytes_written",
    ] {
        assert!(all.contains(metric), "the dashboard shows {metric}");
    }
    let rules: String = exprs
        .iter()
        .enumerate()
        .map(|(i, (_, e))| {
            format!(
                "      - record: dashboard:panel_{i}\n        expr: {}\n",
                serde_json::to_string(e).unwrap()
            )
        })
        .collect();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("dashboard.yaml"),
        format!("groups:\n  - name: dashboard\n    rules:\n{rules}"),
    )
    .unwrap();
    let check = std::process::Command::new(support::tools::promtool())
        .args(["check", "rules"])
        .arg(work.path().join("dashboard.yaml"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool check rules: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    // Each expression, evaluated over the pushed series, yields at least one series.
    let expectations: String = (0..exprs.len())
        .map(|i| {
            format!(
                "      - expr: clamp_max(count(dashboard:panel_{i}), 1)\n        eval_time: 5m\n        exp_samples:\n          - labels: '{{}}'\n            value: 1\n"
            )
        })
        .collect();
    let tests = format!(
        "rule_files: [dashboard.yaml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n{}    promql_expr_test:\n{expectations}",
        input_series(&metrics, 10)
    );
    std::fs::write(work.path().join("tests.yaml"), &tests).unwrap();
    let out = std::process::Command::new(support::tools::promtool())
        .args(["test", "rules"])
        .arg(work.path().join("tests.yaml"))
        .output()
        .unwrap();
    let titles: Vec<&str> = exprs.iter().map(|(t, _)| t.as_str()).collect();
    assert!(
        out.status.success(),
        "a dashboard query selects nothing from a real run's metrics (panels {titles:?}):\n{}{}\n{tests}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
