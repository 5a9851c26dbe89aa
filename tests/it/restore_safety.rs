//! A restore that is safe on the worst day: against a simulated org that fails writes the way
//! Genesys does, `restore --apply` never resends a write blind, never leaves a flow locked by
//! flowvault (the sim's lock table proves it), reports an honest outcome per flow even when
//! interrupted, fails closed on an unknown org, and reads only what `verify` accepts.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use flowvault::sim::{ConfigSource, SimConfig, SimServer, WriteAnswer, WriteFault, WriteStep};
use serde_json::Value;
use support::s3::{BUCKET, S3Server};
use support::*;

/// Exports `sim` into `to` (a directory or s3:// URL) as run `id`; the run's location.
async fn export(sim: &SimServer, to: &str, id: &str, format: &str, env: &[(&'static str, String)]) -> String {
    let mut cmd = export_cmd(sim, Path::new(to), id);
    cmd.args(["--format", format]).envs(env.iter().cloned());
    let out = run(&mut cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    format!("{to}/{id}")
}

/// `flowvault restore RUN` against `sim`, writing its report to `report`.
fn restore_cmd(sim: &SimServer, location: &str, report: &Path) -> tokio::process::Command {
    let mut cmd = flowvault();
    cmd.current_dir(std::env::temp_dir())
        .args(["restore", location, "--report"])
        .arg(report)
        .env("FLOWVAULT_API_URL", sim.url())
        .env("FLOWVAULT_ALLOW_INSECURE_HTTP", "true")
        .env("FLOWVAULT_MAX_BACKOFF", "200ms")
        .env("FLOWVAULT_REQUEST_TIMEOUT", "2s")
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", CLIENT_ID)
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", CLIENT_SECRET);
    cmd
}

/// A test's scratch: a directory for runs and reports.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn runs(&self) -> String {
        let p = self.dir.path().join("runs");
        std::fs::create_dir_all(&p).unwrap();
        p.to_string_lossy().into_owned()
    }
    fn report(&self) -> PathBuf {
        self.dir.path().join("restore.json")
    }
    fn read_report(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.report()).expect("the report is written")).unwrap()
    }
}

/// The report's entry for flow `id`.
fn entry(report: &Value, id: &str) -> Value {
    report["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("flow {id} in {report}"))
        .clone()
}

/// Edits flow `id` in the org so that a restore must save the archived configuration again.
fn edit(sim: &SimServer, id: &str) {
    assert!(sim.update_flow(id, |f| {
        f.config = ConfigSource::Literal(format!(r#"{{"edited":"{}"}}"#, f.id()));
        f.published = None;
    }));
}

/// No flow is locked to flowvault's OAuth client, per the sim's lock table.
fn assert_no_lock_left(sim: &SimServer) {
    let ours: Vec<_> = sim
        .locks()
        .into_iter()
        .filter(|(_, holder)| holder == &format!("client {CLIENT_ID}"))
        .collect();
    assert!(ours.is_empty(), "flows left locked by flowvault: {ours:?}");
}

/// No two flows of one type share a name (no duplicate was created).
fn assert_no_duplicate(sim: &SimServer) {
    let mut seen = std::collections::HashSet::new();
    for f in sim.flows() {
        let key = (
            f.flow_type().to_string(),
            f.meta["name"].as_str().unwrap_or("").to_lowercase(),
        );
        assert!(seen.insert(key.clone()), "duplicate flow {key:?}");
    }
}

fn config_with(faults: &[WriteFault]) -> SimConfig {
    let mut config = org(4);
    config.write_faults = faults.to_vec();
    config
}

/// Exports a 4-flow org with `faults`, deletes (create) or edits (the rest) flow 1, and restores it
/// with --publish; the sim, the flow's id, the exit code and the report.
async fn restore_through_fault(step: WriteStep, answer: WriteAnswer) -> (SimServer, String, Option<i32>, Value) {
    let sim = start_sim(config_with(&[WriteFault { step, answer }])).await;
    let scratch = Scratch::new();
    let archive = export(&sim, &scratch.runs(), "r", "objects", &[]).await;
    let id = sim.flows()[1].id().to_string();
    if step == WriteStep::Create {
        assert!(sim.delete_flow(&id));
    } else {
        edit(&sim, &id);
    }
    let out = run(restore_cmd(&sim, &archive, &scratch.report()).args(["--flow", &id, "--apply", "--publish"])).await;
    assert_no_secrets(&all_output(&out), &sim);
    let report = scratch.read_report();
    (sim, id, out.status.code(), report)
}

/// The flow was restored despite the fault: done, no duplicate, no lock left, exit 0, the
/// versions afterwards read.
fn assert_recovered(sim: &SimServer, id: &str, code: Option<i32>, report: &Value) {
    let e = entry(report, id);
    assert_eq!(e["outcome"], "done", "{e}");
    assert_eq!(code, Some(0), "{report}");
    assert!(e["versions_after"]["published"].is_string(), "{e}");
    assert_no_duplicate(sim);
    assert_no_lock_left(sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_happened_then_answered_500_is_found_by_name_not_resent() {
    let (sim, id, code, report) = restore_through_fault(WriteStep::Create, WriteAnswer::Error500).await;
    assert_recovered(&sim, &id, code, &report);
    let new_id = entry(&report, &id)["new_id"].as_str().unwrap().to_string();
    assert!(
        sim.flows().iter().any(|f| f.id() == new_id),
        "the new id names the created flow"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_happened_then_never_answered_is_found_by_name_not_resent() {
    let (sim, id, code, report) = restore_through_fault(WriteStep::Create, WriteAnswer::Never).await;
    assert_recovered(&sim, &id, code, &report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_answer_without_an_id_is_never_taken_as_an_empty_id() {
    let (sim, id, code, report) = restore_through_fault(WriteStep::Create, WriteAnswer::WithoutId).await;
    assert_recovered(&sim, &id, code, &report);
    assert_ne!(entry(&report, &id)["new_id"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_that_happened_then_answered_500_continues_from_the_saved_version() {
    let (sim, id, code, report) = restore_through_fault(WriteStep::Save, WriteAnswer::Error500).await;
    assert_recovered(&sim, &id, code, &report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_that_happened_then_never_answered_continues_from_the_saved_version() {
    let (sim, id, code, report) = restore_through_fault(WriteStep::Save, WriteAnswer::Never).await;
    assert_recovered(&sim, &id, code, &report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkin_that_happened_then_answered_500_is_judged_by_the_checked_in_version() {
    let (sim, id, code, report) = restore_through_fault(WriteStep::Checkin, WriteAnswer::Error500).await;
    assert_recovered(&sim, &id, code, &report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkin_that_happened_then_never_answered_is_judged_by_the_checked_in_version() {
    let (sim, id, code, report) = restore_through_fault(WriteStep::Checkin, WriteAnswer::Never).await;
    assert_recovered(&sim, &id, code, &report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_that_happened_then_answered_500_is_judged_by_the_published_version() {
    let (sim, id, code, report) = restore_through_fault(WriteStep::Publish, WriteAnswer::Error500).await;
    assert_recovered(&sim, &id, code, &report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_that_happened_then_never_answered_is_judged_by_the_published_version() {
    let (sim, id, code, report) = restore_through_fault(WriteStep::Publish, WriteAnswer::Never).await;
    assert_recovered(&sim, &id, code, &report);
}

/// Restores flow 1 (edited) of a 4-flow org shaped by `tweak`; the sim, its id, exit code, report.
async fn restore_edited(tweak: impl FnOnce(&mut SimConfig), extra: &[&str]) -> (SimServer, String, Option<i32>, Value) {
    let mut config = org(4);
    tweak(&mut config);
    let sim = start_sim(config).await;
    let scratch = Scratch::new();
    let archive = export(&sim, &scratch.runs(), "r", "tar-gz", &[]).await;
    let id = sim.flows()[1].id().to_string();
    edit(&sim, &id);
    let out = run(restore_cmd(&sim, &archive, &scratch.report())
        .args(["--flow", &id, "--apply", "--publish"])
        .args(extra))
    .await;
    (sim, id, out.status.code(), scratch.read_report())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_save_fails_the_flow_and_gives_its_lock_back() {
    let (sim, id, code, report) =
        restore_edited(|c| c.refuse_save = Some("architect.flow.validate.failed".into()), &[]).await;
    let e = entry(&report, &id);
    assert_eq!(e["outcome"], "failed");
    assert!(
        e["error"].as_str().unwrap().contains("architect.flow.validate.failed"),
        "{e}"
    );
    assert!(
        e["versions_after"].is_object(),
        "versions_after read after a failure: {e}"
    );
    assert_eq!(code, Some(3));
    assert_no_lock_left(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_that_cannot_be_given_back_is_reported_on_the_flow() {
    let (sim, id, code, report) = restore_edited(
        |c| {
            c.refuse_save = Some("architect.flow.validate.failed".into());
            c.unlock_denied = true;
        },
        &[],
    )
    .await;
    let e = entry(&report, &id);
    assert_eq!(e["left_locked"], true, "{e}");
    assert!(e["error"].as_str().unwrap().contains("architect:flow:unlock"), "{e}");
    assert_eq!(code, Some(3));
    assert_eq!(sim.locks().len(), 1, "the sim shows the lock the report names");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_that_outlives_its_timeout_fails_the_flow_and_gives_its_lock_back() {
    let (sim, id, code, report) = restore_edited(
        |c| c.operation_delay = Duration::from_secs(6),
        &["--operation-timeout", "1s"],
    )
    .await;
    let e = entry(&report, &id);
    assert_eq!(e["outcome"], "failed");
    assert!(e["error"].as_str().unwrap().contains("did not complete"), "{e}");
    assert_eq!(code, Some(3));
    assert_no_lock_left(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_current_operation_replaced_by_a_validate_is_judged_by_the_versions() {
    let (sim, id, code, report) =
        restore_edited(|c| c.validate_after_operation = true, &["--operation-timeout", "5s"]).await;
    assert_eq!(entry(&report, &id)["outcome"], "done", "{report}");
    assert_eq!(code, Some(0));
    assert_no_lock_left(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_that_succeeds_without_moving_the_published_version_is_not_done() {
    let (sim, id, code, report) =
        restore_edited(|c| c.publish_without_version = true, &["--operation-timeout", "2s"]).await;
    let e = entry(&report, &id);
    assert_eq!(e["outcome"], "failed");
    assert!(e["error"].as_str().unwrap().contains("did not move"), "{e}");
    assert!(e["versions_after"]["saved"].is_string(), "{e}");
    assert_eq!(code, Some(3));
    assert_no_lock_left(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_published_flow_stays_unpublished_under_publish() {
    let mut flows = flowvault::sim::generate_org(3, 42, false);
    flows[1] = flows[1].clone().never_published();
    let sim = start_sim(SimConfig::with_flows(flows, CLIENT_ID, CLIENT_SECRET)).await;
    let scratch = Scratch::new();
    let archive = export(&sim, &scratch.runs(), "r", "objects", &[]).await;
    let id = sim.flows()[1].id().to_string();
    edit(&sim, &id);
    let out = run(restore_cmd(&sim, &archive, &scratch.report()).args([
        "--flow",
        &id,
        "--apply",
        "--publish",
        "--content",
        "latest",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let flow = sim.flows().into_iter().find(|f| f.id() == id).unwrap();
    assert_eq!(flow.published_version(), None, "an unfinished draft never goes live");
    assert!(
        entry(&scratch.read_report(), &id)["notes"][0]
            .as_str()
            .unwrap()
            .contains("never published")
    );
}

/// Runs `--all --apply --publish` over 10 edited flows and sends `signal` once the first flow's
/// writes are under way; the sim, the exit code and the report.
async fn interrupted(signal_name: &str) -> (SimServer, Option<i32>, Value) {
    let mut config = org(10);
    config.operation_delay = Duration::from_millis(400);
    let sim = start_sim(config).await;
    let scratch = Scratch::new();
    let archive = export(&sim, &scratch.runs(), "r", "objects", &[]).await;
    for f in sim.flows() {
        edit(&sim, f.id());
    }
    let mut child = restore_cmd(&sim, &archive, &scratch.report())
        .args(["--all", "--apply", "--publish"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while sim.stats().write_requests.load(Ordering::Relaxed) < 6 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&child, signal_name);
    let status = child.wait().await.unwrap();
    (sim, status.code(), scratch.read_report())
}

fn assert_honest_interruption(sim: &SimServer, report: &Value) {
    let flows = report["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 10, "every flow is in the report");
    for f in flows {
        let outcome = f["outcome"].as_str().unwrap();
        assert!(matches!(outcome, "done" | "not attempted"), "{f}");
        if outcome == "done" {
            assert!(f["versions_after"]["published"].is_string(), "{f}");
        }
    }
    assert!(flows.iter().any(|f| f["outcome"] == "done"), "{report}");
    assert!(flows.iter().any(|f| f["outcome"] == "not attempted"), "{report}");
    assert!(report["interrupted"].is_string(), "{report}");
    assert_no_lock_left(sim);
    assert_no_duplicate(sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_mid_apply_finishes_the_flow_in_hand_writes_the_report_and_exits_130() {
    let (sim, code, report) = interrupted("INT").await;
    assert_eq!(code, Some(130));
    assert_honest_interruption(&sim, &report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_apply_finishes_the_flow_in_hand_writes_the_report_and_exits_143() {
    let (sim, code, report) = interrupted("TERM").await;
    assert_eq!(code, Some(143));
    assert_honest_interruption(&sim, &report);
}

/// Exports an org, then restores into the same org (its flows edited) whose
/// `organizations/me` answers `status`.
async fn with_org_failing(status: u16) {
    let healthy = start_sim(org(5)).await;
    let scratch = Scratch::new();
    let archive = export(&healthy, &scratch.runs(), "r", "objects", &[]).await;
    let mut config = org(5);
    config.organization_status = Some(status);
    let sim = start_sim(config).await;
    for f in sim.flows() {
        edit(&sim, f.id());
    }
    let out = run(restore_cmd(&sim, &archive, &scratch.report()).args(["--all", "--apply", "--publish"])).await;
    assert_ne!(out.status.code(), Some(0), "{}", all_output(&out));
    let text = all_output(&out);
    assert!(
        text.contains("target org is unknown") && text.contains("--to-other-org"),
        "{text}"
    );
    assert_eq!(
        sim.stats().write_requests.load(Ordering::Relaxed),
        0,
        "zero write requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organizations_me_answering_403_writes_nothing() {
    with_org_failing(403).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organizations_me_answering_503_writes_nothing() {
    with_org_failing(503).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_that_records_no_org_writes_nothing_without_to_other_org() {
    let sim = start_sim(org(3)).await;
    let scratch = Scratch::new();
    let archive = export(&sim, &scratch.runs(), "r", "objects", &[]).await;
    let path = Path::new(&archive).join("manifest.json");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    m.as_object_mut().unwrap().remove("organization");
    std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    edit(&sim, sim.flows()[0].id());
    let out = run(restore_cmd(&sim, &archive, &scratch.report()).args(["--all", "--apply"])).await;
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
    assert!(all_output(&out).contains("records no org"), "{}", all_output(&out));
    assert_eq!(sim.stats().write_requests.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_id_the_archive_does_not_hold_is_named_with_exit_2() {
    let sim = start_sim(org(3)).await;
    let scratch = Scratch::new();
    let archive = export(&sim, &scratch.runs(), "r", "objects", &[]).await;
    let known = sim.flows()[0].id().to_string();
    let out = run(restore_cmd(&sim, &archive, &scratch.report()).args([
        "--flow",
        &known,
        "--flow",
        "no-such-flow-id",
        "--apply",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
    assert!(all_output(&out).contains("no-such-flow-id"), "{}", all_output(&out));
    assert_eq!(sim.stats().write_requests.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_path_outside_the_run_is_never_read() {
    let sim = start_sim(org(3)).await;
    let scratch = Scratch::new();
    let archive = export(&sim, &scratch.runs(), "r", "objects", &[]).await;
    let manifest_path = Path::new(&archive).join("manifest.json");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let doc = &mut m["flows"][0]["documents"][0];
    let inside = Path::new(&archive).join(doc["path"].as_str().unwrap());
    // A document outside the run with a matching hash: restore must still not read it.
    std::fs::copy(&inside, Path::new(&archive).join("../outside.json")).unwrap();
    doc["path"] = "../outside.json".into();
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    for f in sim.flows() {
        edit(&sim, f.id());
    }
    let out = run(restore_cmd(&sim, &archive, &scratch.report()).args(["--all", "--apply"])).await;
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    assert!(all_output(&out).contains("../outside.json"), "{}", all_output(&out));
    assert_eq!(sim.stats().write_requests.load(Ordering::Relaxed), 0);
}

/// A tar.gz like `archive` with `extra` (a raw header and body) inserted before the manifest.
fn with_member(archive: &[u8], extra: tar::Header, body: &[u8]) -> Vec<u8> {
    let members = read_tar_gz(archive);
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (name, data) in &members {
        if name == "manifest.json" {
            builder.append(&extra, body).unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

fn raw_header(name: &str, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_old();
    h.as_mut_bytes()[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    if kind == tar::EntryType::Symlink {
        h.set_link_name("/etc/passwd").unwrap();
    }
    h.set_cksum();
    h
}

/// Exports a tar-gz run (local, or on S3 with `s3`), replaces its archive with `tamper`'s, and
/// restores it all: refused with exit 3 naming `expect`, nothing written.
async fn refused_archive(s3: Option<&S3Server>, tamper: impl FnOnce(Vec<u8>) -> Vec<u8>, expect: &str) {
    let sim = start_sim(org(3)).await;
    let scratch = Scratch::new();
    let env = s3.map(|s| s.env()).unwrap_or_default();
    let to = match s3 {
        Some(_) => format!("s3://{BUCKET}/safety-{}", std::process::id()),
        None => scratch.runs(),
    };
    let archive = export(&sim, &to, "r", "tar-gz", &env).await;
    let key = archive
        .strip_prefix(&format!("s3://{BUCKET}/"))
        .map(|k| format!("{k}/flows.tar.gz"));
    match (s3, &key) {
        (Some(s), Some(key)) => {
            let tampered = tamper(s.get(key).await);
            s.put(key, tampered).await;
        }
        _ => {
            let path = Path::new(&archive).join("flows.tar.gz");
            std::fs::write(&path, tamper(std::fs::read(&path).unwrap())).unwrap();
        }
    }
    for f in sim.flows() {
        edit(&sim, f.id());
    }
    let out = run(restore_cmd(&sim, &archive, &scratch.report())
        .args(["--all", "--apply"])
        .envs(env))
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    assert!(all_output(&out).contains(expect), "{}", all_output(&out));
    assert_eq!(sim.stats().write_requests.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_with_an_extra_member_is_refused_whole() {
    let h = raw_header("stray.json", tar::EntryType::Regular, 2);
    refused_archive(None, |a| with_member(&a, h, b"{}"), "stray.json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_with_a_dot_dot_member_is_refused_whole() {
    let h = raw_header("../../etc/x", tar::EntryType::Regular, 2);
    refused_archive(None, |a| with_member(&a, h, b"{}"), "../../etc/x").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_with_an_absolute_member_is_refused_whole() {
    let h = raw_header("/etc/x", tar::EntryType::Regular, 2);
    refused_archive(None, |a| with_member(&a, h, b"{}"), "/etc/x").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_on_s3_with_a_symlink_member_is_refused_whole() {
    let s3 = S3Server::moto().await;
    let h = raw_header("link.json", tar::EntryType::Symlink, 0);
    refused_archive(Some(&s3), |a| with_member(&a, h, b""), "link.json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_manifest_that_differs_from_the_archives_own_is_refused_on_s3() {
    let s3 = S3Server::moto().await;
    let sim = start_sim(org(3)).await;
    let scratch = Scratch::new();
    let env = s3.env();
    let archive = export(&sim, &format!("s3://{BUCKET}/sidecar"), "r", "tar-gz", &env).await;
    let mut m: Value = serde_json::from_slice(&s3.get("sidecar/r/manifest.json").await).unwrap();
    m["flows"][0]["name"] = "renamed in the sidecar".into();
    s3.put("sidecar/r/manifest.json", serde_json::to_vec_pretty(&m).unwrap())
        .await;
    let out = run(restore_cmd(&sim, &archive, &scratch.report())
        .args(["--all", "--apply"])
        .envs(env))
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    assert!(
        all_output(&out).contains("differs from the archive"),
        "{}",
        all_output(&out)
    );
    assert_eq!(sim.stats().write_requests.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_damaged_document_among_30_on_s3_refuses_that_flow_and_restores_the_29() {
    let s3 = S3Server::seaweedfs().await;
    let env = s3.env();
    let sim = start_sim(org(30)).await;
    let scratch = Scratch::new();
    let archive = export(&sim, &format!("s3://{BUCKET}/thirty"), "r", "objects", &env).await;
    let m: Value = serde_json::from_slice(&s3.get("thirty/r/manifest.json").await).unwrap();
    let damaged = m["flows"][7]["id"].as_str().unwrap().to_string();
    let path = m["flows"][7]["documents"][0]["path"].as_str().unwrap().to_string();
    s3.put(
        &format!("thirty/r/{path}"),
        br#"{"flow":{},"configuration":{"tampered":true}}"#.to_vec(),
    )
    .await;
    for f in sim.flows() {
        edit(&sim, f.id());
    }
    let out = run(restore_cmd(&sim, &archive, &scratch.report())
        .args(["--all", "--apply", "--publish"])
        .envs(env))
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    let report = scratch.read_report();
    let flows = report["flows"].as_array().unwrap();
    assert_eq!(flows.iter().filter(|f| f["outcome"] == "done").count(), 29, "{report}");
    assert_eq!(entry(&report, &damaged)["outcome"], "refused");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&damaged));
    assert_no_lock_left(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_draft_in_the_org_shows_as_drift_and_content_latest_restores_over_it() {
    let sim = start_sim(org(3)).await;
    let scratch = Scratch::new();
    let archive = export(&sim, &scratch.runs(), "r", "objects", &[]).await;
    let id = sim.flows()[0].id().to_string();
    sim.update_flow(&id, |f| {
        f.save_version(r#"{"draft":"newer than the archive"}"#.into());
    });
    let plan = run(restore_cmd(&sim, &archive, &scratch.report()).args(["--flow", &id])).await;
    let text = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(
        text.contains("unchanged") && text.contains("drift: the org holds a newer draft"),
        "{text}"
    );
    let out =
        run(restore_cmd(&sim, &archive, &scratch.report()).args(["--flow", &id, "--apply", "--content", "latest"]))
            .await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let flow = sim.flows().into_iter().find(|f| f.id() == id).unwrap();
    assert!(
        !flow.configuration_json().contains("newer than the archive"),
        "the draft was restored over"
    );
    assert_no_lock_left(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_name_check_before_a_create_reads_every_page() {
    let sim = start_sim(org(3)).await;
    let scratch = Scratch::new();
    let archive = export(&sim, &scratch.runs(), "r", "objects", &[]).await;
    let gone = sim.flows()[0].clone();
    assert!(sim.delete_flow(gone.id()));
    let name = gone.meta["name"].as_str().unwrap().to_string();
    let mut twin = gone.clone();
    twin.meta["id"] = "00000000-0000-4000-a000-00000000twin".into();
    twin.meta["name"] = name.to_uppercase().into();
    sim.create_flow(twin);
    for i in 0..120 {
        let mut decoy = gone.clone();
        decoy.meta["id"] = format!("00000000-0000-4000-a000-{i:012}").into();
        decoy.meta["name"] = format!("{name} copy {i}").into();
        sim.create_flow(decoy);
    }
    let plan = run(restore_cmd(&sim, &archive, &scratch.report()).args(["--flow", gone.id()])).await;
    let text = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(
        text.lines().any(|l| l.starts_with("conflict") && l.contains("twin")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sim_matches_action_paths_without_case() {
    let sim = start_sim(org(1)).await;
    flowvault::tls::init();
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/oauth/token", sim.url()))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap();
    let id = sim.flows()[0].id().to_string();
    let resp = http
        .post(format!("{}/api/v2/flows/actions/checkOut?flow={id}", sim.url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = http
        .get(format!("{}/api/v2/flows/{id}/latestConfiguration", sim.url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(sim.locks(), vec![(id, format!("client {CLIENT_ID}"))]);
}

/// `flowvault doctor --restore --publish` against `sim`; exit code and stdout.
async fn doctor_for_restore(sim: &SimServer) -> (Option<i32>, String) {
    let scratch = Scratch::new();
    let out = run(flowvault()
        .args(["doctor", "--restore", "--publish", "--to", &scratch.runs()])
        .env("FLOWVAULT_API_URL", sim.url())
        .env("FLOWVAULT_ALLOW_INSECURE_HTTP", "true")
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", CLIENT_ID)
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", CLIENT_SECRET))
    .await;
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_the_permissions_the_chosen_restore_needs() {
    let sim = start_sim(org(2)).await;
    let (code, text) = doctor_for_restore(&sim).await;
    assert_eq!(code, Some(0), "{text}");
    for permission in ["architect:flow:edit", "architect:flow:unlock", "architect:flow:publish"] {
        assert!(
            text.lines().any(|l| l.starts_with("ok") && l.contains(permission)),
            "{permission}: {text}"
        );
    }
    let flows_before = sim.flows().len();
    let mut config = org(2);
    config.unlock_denied = true;
    let denied = start_sim(config).await;
    let (code, text) = doctor_for_restore(&denied).await;
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("architect:flow:unlock")),
        "{text}"
    );
    assert_eq!(sim.flows().len(), flows_before, "the probes change nothing");
    assert_no_lock_left(&denied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_name_check_for_a_type_the_filter_refuses_still_finds_a_twin() {
    let mut flows = flowvault::sim::generate_org(2, 42, false);
    flows[0].meta["type"] = "BUSINESSPROCESS".into();
    let sim = start_sim(SimConfig::with_flows(flows, CLIENT_ID, CLIENT_SECRET)).await;
    let scratch = Scratch::new();
    let archive = export(&sim, &scratch.runs(), "r", "objects", &[]).await;
    let gone = sim.flows()[0].clone();
    assert!(sim.delete_flow(gone.id()));
    let mut twin = gone.clone();
    twin.meta["id"] = "00000000-0000-4000-a000-00000000twin".into();
    sim.create_flow(twin);
    let out = run(restore_cmd(&sim, &archive, &scratch.report()).args(["--flow", gone.id(), "--apply"])).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.lines().any(|l| l.starts_with("conflict") && l.contains("twin")),
        "{text}"
    );
    assert_eq!(
        sim.stats().write_requests.load(Ordering::Relaxed),
        0,
        "no create was sent"
    );
    assert_eq!(out.status.code(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_both_publishes_the_archived_published_configuration_then_saves_its_draft_unpublished() {
    let mut flows = flowvault::sim::generate_org(2, 42, false);
    flows[0] = flows[0]
        .clone()
        .with_draft(ConfigSource::Literal(r#"{"draft":"archived"}"#.into()));
    let sim = start_sim(SimConfig::with_flows(flows, CLIENT_ID, CLIENT_SECRET)).await;
    let scratch = Scratch::new();
    let archive = export(&sim, &scratch.runs(), "r", "objects", &[]).await;
    let original = sim.flows()[0].clone();
    let published_before = original
        .version_configuration(original.published_version().unwrap())
        .unwrap();
    let id = original.id().to_string();
    edit(&sim, &id);
    let out = run(restore_cmd(&sim, &archive, &scratch.report()).args([
        "--flow",
        &id,
        "--apply",
        "--publish",
        "--content",
        "both",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let flow = sim.flows().into_iter().find(|f| f.id() == id).unwrap();
    assert_eq!(
        flow.configuration_json(),
        r#"{"draft":"archived"}"#,
        "the draft is the latest again"
    );
    let published = flow.version_configuration(flow.published_version().unwrap()).unwrap();
    assert_eq!(published, published_before, "the archived published configuration runs");
    assert_ne!(
        flow.published_version(),
        flow.saved_version(),
        "the draft is not published"
    );
    assert_no_lock_left(&sim);
}
