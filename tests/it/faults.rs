//! Faults, interrupts and limits: every case ends in a documented state — the right exit code, a
//! manifest that tells the truth, and no secret in any output.

use crate::support;

use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use flowvault::manifest::{Manifest, Outcome};
use flowvault::sim::{Fault, SimConfig, SimServer, generate_org};
use support::s3::{BUCKET, FaultyS3, S3Fault, S3Server};
use support::*;

/// An org whose flow 1 goes through `faults` before it answers.
fn org_with_faults(n: usize, faults: Vec<Fault>) -> (SimConfig, String) {
    let mut config = org(n);
    let id = config.flows[1].id().to_string();
    config.faults.insert(id.clone(), faults);
    (config, id)
}

async fn export_ok(sim: &SimServer, extra: &[&str]) -> (Manifest, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = run(export_cmd(sim, dir.path(), "r").args(extra)).await;
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_no_secrets(&text, sim);
    let manifest = read_manifest(&dir.path().join("r"));
    assert_no_secrets(&serde_json::to_string(&manifest).unwrap(), sim);
    (manifest, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_transport_faults_are_retried_until_the_flow_is_exported() {
    let cases: Vec<(&str, Vec<Fault>, &str)> = vec![
        (
            "5xx burst",
            vec![
                Fault::Status(500),
                Fault::Status(502),
                Fault::Status(503),
                Fault::Status(504),
            ],
            "HTTP 504",
        ),
        (
            "reset mid-body",
            vec![Fault::ResetMidBody, Fault::ResetMidBody],
            "connection closed before message completed",
        ),
        ("truncated body", vec![Fault::TruncatedBody], "not valid JSON"),
        ("non-JSON body", vec![Fault::NotJson], "not valid JSON"),
        (
            "slow beyond the request timeout",
            vec![Fault::Slow(Duration::from_secs(4))],
            "timed out",
        ),
        (
            "429 without Retry-After",
            vec![Fault::Throttle(None), Fault::Throttle(None)],
            "no Retry-After",
        ),
        (
            "429 with Retry-After 1",
            vec![Fault::Throttle(Some(1))],
            "Retry-After 1.0s",
        ),
    ];
    for (name, faults, logged) in cases {
        let n = faults.len() as u32;
        let (config, id) = org_with_faults(4, faults);
        let sim = start_sim(config).await;
        let (manifest, text) = export_ok(&sim, &["--request-timeout", "1s"]).await;
        let row = manifest.flows.iter().find(|r| r.id == id).unwrap();
        assert_eq!(row.outcome, Outcome::Exported, "{name}");
        assert_eq!(row.attempts, Some(n + 1), "{name}");
        assert!(
            text.contains(logged) && text.contains(&id),
            "{name}: the retry is logged with its reason and flow id:\n{text}"
        );
        assert_eq!(manifest.totals.exported, 4, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_that_outlast_the_retry_cap_end_in_a_failed_row_with_the_reason() {
    let cases: Vec<(&str, Fault, &str)> = vec![
        ("truncated body", Fault::TruncatedBody, "not valid JSON"),
        ("server error", Fault::Status(502), "HTTP 502"),
        (
            "reset",
            Fault::ResetMidBody,
            "connection closed before message completed",
        ),
    ];
    for (name, fault, reason) in cases {
        let (config, id) = org_with_faults(3, vec![fault; 10]);
        let sim = start_sim(config).await;
        let dir = tempfile::tempdir().unwrap();
        let out = run(export_cmd(&sim, dir.path(), "r").args(["--max-retries", "2"])).await;
        assert_eq!(out.status.code(), Some(3), "{name}: {}", all_output(&out));
        let manifest = read_manifest(&dir.path().join("r"));
        let row = manifest.flows.iter().find(|r| r.id == id).unwrap();
        assert_eq!(row.outcome, Outcome::Failed, "{name}");
        let error = row.error.as_deref().unwrap();
        assert!(
            error.contains(reason) && error.contains("after 3 attempts"),
            "{name}: {error}"
        );
        assert_eq!(manifest.totals.exported, 2);
        assert!(!manifest.complete);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_retry_after_is_never_cut_short() {
    for retry_after in [30u64, 65] {
        let mut config = org(1);
        let id = config.flows[0].id().to_string();
        config.faults.insert(id, vec![Fault::Throttle(Some(retry_after))]);
        let sim = start_sim(config).await;
        let dir = tempfile::tempdir().unwrap();
        let mut child = export_cmd(&sim, dir.path(), "r")
            .args(["--shutdown-grace", "1s"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            sim.stats().configuration_requests.load(Ordering::SeqCst),
            1,
            "no retry before Retry-After {retry_after}s"
        );
        signal(&child, "TERM");
        let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .expect("stops in its grace period")
            .unwrap();
        assert_eq!(status.code(), Some(143));
        let manifest = read_manifest(&dir.path().join("r"));
        assert!(!manifest.complete);
        assert_eq!(manifest.totals.skipped, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_beyond_the_cap_fails_the_flow_instead_of_stalling() {
    let (config, id) = org_with_faults(2, vec![Fault::Throttle(Some(100_000))]);
    let sim = start_sim(config).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut export_cmd(&sim, dir.path(), "r")).await;
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    let row = read_manifest(&dir.path().join("r"))
        .flows
        .into_iter()
        .find(|r| r.id == id)
        .unwrap();
    assert!(row.error.unwrap().contains("exceeds the 600s cap"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_flow_fails_naming_the_permission_and_the_others_are_exported() {
    let mut config = org(5);
    let id = config.flows[2].id().to_string();
    config.forbidden.insert(id.clone());
    let sim = start_sim(config).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut export_cmd(&sim, dir.path(), "r")).await;
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    let manifest = read_manifest(&dir.path().join("r"));
    assert_eq!(manifest.totals.exported, 4);
    let row = manifest.flows.iter().find(|r| r.id == id).unwrap();
    assert_eq!(row.outcome, Outcome::Failed);
    assert!(
        row.error.as_deref().unwrap().contains("architect:flow:view"),
        "{:?}",
        row.error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_fatal_with_a_clear_message_not_an_endless_refresh() {
    let mut config = org(30);
    config.revoke_after_requests = Some(6);
    let sim = start_sim(config).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(export_cmd(&sim, dir.path(), "r").args(["--concurrency", "2"])).await;
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("refused a freshly issued token (HTTP 401)"), "{text}");
    assert!(sim.stats().tokens_issued.load(Ordering::SeqCst) <= 4, "no refresh loop");
    assert_no_secrets(&text, &sim);
    let manifest = read_manifest(&dir.path().join("r"));
    assert!(!manifest.complete);
    assert!(manifest.incomplete_reason.as_deref().unwrap().contains("401"));
    // What was fetched before the revocation is kept, in a readable archive that says it is incomplete.
    let archive = std::fs::read(dir.path().join("r/flows.tar.gz")).expect("the archive is sealed");
    assert_archive_matches_manifest(&archive, &manifest);
    assert!(!dir.path().join("r/flows.tar.gz.partial").exists());
    assert_eq!(manifest.totals.listed, 30, "every listed flow has a row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_token_endpoint_is_retried() {
    for status in [429u16, 503] {
        let mut config = org(3);
        config.token_failures = 2;
        config.token_failure_status = status;
        let sim = start_sim(config).await;
        let (manifest, _) = export_ok(&sim, &[]).await;
        assert_eq!(manifest.totals.exported, 3, "token endpoint answering {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_surprises_are_reconciled_and_reported() {
    // A page that comes back empty once before pageCount is asked for again: nothing is lost.
    let mut config = org(30);
    config.max_page_size = 10;
    config.empty_pages.insert(2);
    let sim = start_sim(config).await;
    let (manifest, text) = export_ok(&sim, &[]).await;
    assert_eq!(manifest.totals.exported, 30);
    assert!(text.contains("came back empty before pageCount"), "{text}");

    // `total` disagreeing with what paging yields, pass after pass, is an unexplained gap: the
    // manifest says so and does not claim completeness, and the exit code says so too.
    let mut config = org(12);
    config.total_offset = 3;
    let sim = start_sim(config).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut export_cmd(&sim, dir.path(), "r")).await;
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    let manifest = read_manifest(&dir.path().join("r"));
    let note = manifest.listing.discrepancy.clone().expect("discrepancy recorded");
    assert!(note.contains("reported 15 flows but paging yielded 12"), "{note}");
    assert!(text.contains("reported 15 flows"), "{text}");
    assert!(!manifest.complete);
    assert!(manifest.incomplete_reason.unwrap().contains("reported 15 flows"));

    // A flow created while listing shifts the pages: a later pass finds what the first missed,
    // and no flow is listed twice.
    let mut config = org(25);
    config.max_page_size = 10;
    let late = generate_org(1, 777, false).pop().unwrap();
    let late_id = late.id().to_string();
    config.late_flow = Some(late);
    let sim = start_sim(config).await;
    let (manifest, _) = export_ok(&sim, &[]).await;
    assert_eq!(manifest.totals.listed, 26, "the late flow is listed too");
    assert_eq!(manifest.totals.exported, 26);
    let ids: std::collections::HashSet<_> = manifest.flows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 26, "no flow is listed twice");
    assert!(ids.contains(late_id.as_str()));
    assert!(manifest.complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_during_fetching_stops_new_work_and_seals_what_was_fetched() {
    let mut config = org(40);
    config.latency = Duration::from_millis(200);
    let sim = start_sim(config).await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = export_cmd(&sim, dir.path(), "r")
        .args(["--concurrency", "2", "--shutdown-grace", "2s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while sim.stats().configuration_requests.load(Ordering::SeqCst) < 4 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&child, "INT");
    let started = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("stops")
        .unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(started.elapsed() < Duration::from_secs(15));
    let requests_at_stop = sim.stats().configuration_requests.load(Ordering::SeqCst);
    assert!(requests_at_stop < 40, "new work stopped");
    let manifest = read_manifest(&dir.path().join("r"));
    assert!(!manifest.complete);
    assert_eq!(manifest.incomplete_reason.as_deref(), Some("interrupted by SIGINT"));
    assert!(manifest.totals.exported >= 3, "what was fetched is kept");
    assert!(manifest.totals.skipped > 0, "what was not fetched says so");
    assert_eq!(manifest.totals.listed, 40, "every listed flow still has a row");
    let archive = std::fs::read(dir.path().join("r/flows.tar.gz")).expect("the archive is sealed");
    assert_archive_matches_manifest(&archive, &manifest);
    assert!(!dir.path().join("r/flows.tar.gz.partial").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_in_objects_format_keeps_what_was_stored() {
    let mut config = org(40);
    config.latency = Duration::from_millis(200);
    let sim = start_sim(config).await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = export_cmd(&sim, dir.path(), "r")
        .args(["--format", "objects", "--concurrency", "2", "--shutdown-grace", "2s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while sim.stats().configuration_requests.load(Ordering::SeqCst) < 6 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&child, "TERM");
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("stops")
        .unwrap();
    assert_eq!(status.code(), Some(143));
    let run_dir = dir.path().join("r");
    let manifest = read_manifest(&run_dir);
    assert!(!manifest.complete);
    assert!(manifest.totals.exported >= 3);
    let tree = read_tree(&run_dir);
    for row in manifest.flows.iter().filter(|r| r.outcome == Outcome::Exported) {
        assert_eq!(
            Some(row.documents[0].sha256.as_str()),
            Some(sha256_hex(&tree[row.documents[0].path.as_str()]).as_str())
        );
    }
    assert_eq!(tree.len() as u64, document_count(&manifest) + 1, "no stray documents");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_duration_ends_an_overrunning_run_the_same_way() {
    let mut config = org(50);
    config.latency = Duration::from_millis(300);
    let sim = start_sim(config).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(export_cmd(&sim, dir.path(), "r").args([
        "--concurrency",
        "1",
        "--max-duration",
        "2s",
        "--shutdown-grace",
        "1s",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(124), "{}", all_output(&out));
    let manifest = read_manifest(&dir.path().join("r"));
    assert!(!manifest.complete);
    assert_eq!(
        manifest.incomplete_reason.as_deref(),
        Some("--max-duration of 2s elapsed")
    );
    assert!(manifest.totals.skipped > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_local_disk_fails_the_run_and_removes_the_partial_archive() {
    let mount = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=300k", "tmpfs"])
        .arg(mount.path())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        mounted,
        "this test mounts a 300 KiB tmpfs to simulate a full disk: it needs root (CI runs as root)"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount.path().to_path_buf());
    let sim = start_sim(incompressible_org(4, 1_000_000)).await;
    let out = run(&mut export_cmd(&sim, mount.path(), "r")).await;
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("No space left on device") && text.contains("flows.tar.gz.partial"),
        "{text}"
    );
    assert!(
        !mount.path().join("r/flows.tar.gz.partial").exists(),
        "the partial archive is removed"
    );
    assert!(!mount.path().join("r/flows.tar.gz").exists());
    let manifest = read_manifest(&mount.path().join("r"));
    assert!(
        !manifest.complete,
        "the manifest written after freeing the space says the run failed"
    );
    assert_eq!(manifest.totals.exported, 0);
}

fn s3_export(sim: &SimServer, s3: &S3Server, endpoint: &str, to: &str) -> tokio::process::Command {
    let mut cmd = export_cmd(sim, std::path::Path::new(to), "r");
    cmd.envs(s3.env()).env("AWS_ENDPOINT_URL", endpoint);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_upload_failing_once_is_retried_and_the_archive_completes() {
    let s3 = S3Server::start().await;
    let proxy = FaultyS3::start(&s3.endpoint, S3Fault::FailParts { status: 500, count: 1 }).await;
    let sim = start_sim(incompressible_org(16, 1_000_000)).await;
    let out =
        run(s3_export(&sim, &s3, &proxy.endpoint, &format!("s3://{BUCKET}/t")).args(["--part-size", "5MiB"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let manifest: Manifest = serde_json::from_slice(&s3.get("t/r/manifest.json").await).unwrap();
    assert!(manifest.complete);
    assert_archive_matches_manifest(&s3.get("t/r/flows.tar.gz").await, &manifest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_upload_failing_for_good_aborts_the_upload_and_claims_nothing() {
    let s3 = S3Server::start().await;
    let proxy = FaultyS3::start(
        &s3.endpoint,
        S3Fault::FailParts {
            status: 403,
            count: usize::MAX,
        },
    )
    .await;
    let sim = start_sim(incompressible_org(16, 1_000_000)).await;
    let out =
        run(s3_export(&sim, &s3, &proxy.endpoint, &format!("s3://{BUCKET}/p")).args(["--part-size", "5MiB"])).await;
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("AccessDenied"), "{text}");
    assert_eq!(s3.keys("p/r/").await, vec!["p/r/manifest.json"], "no archive object");
    assert_eq!(s3.open_uploads().await, 0, "the multipart upload was aborted");
    let manifest: Manifest = serde_json::from_slice(&s3.get("p/r/manifest.json").await).unwrap();
    assert!(!manifest.complete);
    assert_eq!(manifest.totals.exported, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_vanishing_mid_run_fails_the_flows_it_could_not_take() {
    let s3 = S3Server::start().await;
    let proxy = FaultyS3::start(&s3.endpoint, S3Fault::VanishAfterPuts(5)).await;
    let sim = start_sim(org(20)).await;
    let out = run(
        s3_export(&sim, &s3, &proxy.endpoint, &format!("s3://{BUCKET}/v")).args([
            "--format",
            "objects",
            "--s3-uploads",
            "1",
        ]),
    )
    .await;
    let text = all_output(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the manifest cannot be written either: {text}"
    );
    assert!(text.contains("NoSuchBucket"), "{text}");
    assert_eq!(s3.keys("v/r/").await.len(), 5, "what was stored before is still there");
    assert!(
        s3.keys("v/r/manifest.json").await.is_empty(),
        "no manifest claims completeness"
    );
}
