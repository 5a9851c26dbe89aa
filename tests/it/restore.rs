//! The disaster-recovery loop closes: archived flows go back into an org — planned first, written
//! only with --apply — and a re-export matches the archive.

use crate::support;

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use flowvault::manifest::{Content, Manifest};
use flowvault::sim::{ConfigSource, SimConfig, SimServer};
use serde_json::Value;
use support::s3::{BUCKET, S3Server};
use support::*;

/// Exports `sim` into `to` (a directory or s3:// URL) as run `id`; the run's location.
async fn export(sim: &SimServer, to: &str, id: &str, format: &str, env: &[(&'static str, String)]) -> String {
    let mut cmd = export_cmd(sim, std::path::Path::new(to), id);
    cmd.args(["--format", format]).envs(env.iter().cloned());
    let out = run(&mut cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    format!("{to}/{id}")
}

/// `flowvault restore` against `sim` with credentials and the insecure-HTTP allowance.
fn restore_cmd(sim: &SimServer, run_location: &str) -> tokio::process::Command {
    let mut cmd = flowvault();
    // A restore from S3 writes its report into the current directory: keep it out of the tree.
    cmd.current_dir(std::env::temp_dir())
        .args(["restore", run_location])
        .env("FLOWVAULT_API_URL", sim.url())
        .env("FLOWVAULT_ALLOW_INSECURE_HTTP", "true")
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", CLIENT_ID)
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", CLIENT_SECRET);
    cmd
}

/// Each flow's published configuration in a run, by (type, name).
async fn published_configs(location: &str, env: &[(&'static str, String)]) -> HashMap<(String, String), String> {
    let out = run(flowvault()
        .args(["verify", location, "--json"])
        .envs(env.iter().cloned()))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let manifest = read_any_manifest(location, env).await;
    let mut configs = HashMap::new();
    for row in &manifest.flows {
        let Some(doc) = row
            .document(Content::Published)
            .or_else(|| row.document(Content::Latest))
        else {
            continue;
        };
        let body = read_any(location, &doc.path, &manifest, env).await;
        let v: HashMap<String, Box<serde_json::value::RawValue>> = serde_json::from_slice(&body).unwrap();
        configs.insert(
            (row.flow_type.clone(), row.name.clone()),
            v["configuration"].get().to_string(),
        );
    }
    configs
}

async fn read_any_manifest(location: &str, env: &[(&'static str, String)]) -> Manifest {
    match location.strip_prefix(&format!("s3://{BUCKET}/")) {
        Some(key) => {
            let s3 = s3_of(env);
            serde_json::from_slice(&s3.get(&format!("{key}/manifest.json")).await).unwrap()
        }
        None => read_manifest(std::path::Path::new(location)),
    }
}

/// A client for the S3 server the environment points at.
fn s3_of(env: &[(&'static str, String)]) -> S3Server {
    let endpoint = env.iter().find(|(k, _)| *k == "AWS_ENDPOINT_URL").unwrap().1.clone();
    S3Server::external(&endpoint)
}

async fn read_any(location: &str, path: &str, m: &Manifest, env: &[(&'static str, String)]) -> Vec<u8> {
    match (location.strip_prefix(&format!("s3://{BUCKET}/")), m.archive.is_some()) {
        (Some(key), false) => s3_of(env).get(&format!("{key}/{path}")).await,
        (Some(key), true) => member(&s3_of(env).get(&format!("{key}/flows.tar.gz")).await, path),
        (None, false) => std::fs::read(std::path::Path::new(location).join(path)).unwrap(),
        (None, true) => member(
            &std::fs::read(std::path::Path::new(location).join("flows.tar.gz")).unwrap(),
            path,
        ),
    }
}

fn member(archive: &[u8], path: &str) -> Vec<u8> {
    read_tar_gz(archive).into_iter().find(|(n, _)| n == path).unwrap().1
}

/// Archived id → new id of every flow a restore re-created, from its report.
fn new_ids(report: &std::path::Path) -> Vec<(String, String)> {
    let report: Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    report["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| Some((f["id"].as_str()?.to_string(), f["new_id"].as_str()?.to_string())))
        .collect()
}

/// The configurations with every archived flow id replaced by its new id.
fn map_ids(configs: HashMap<(String, String), String>, ids: &[(String, String)]) -> HashMap<(String, String), String> {
    configs
        .into_iter()
        .map(|(k, mut c)| {
            for (old, new) in ids {
                c = c.replace(&format!("\"{old}\""), &format!("\"{new}\""));
            }
            (k, c)
        })
        .collect()
}

fn empty_org() -> SimConfig {
    let mut config = SimConfig::with_flows(Vec::new(), CLIENT_ID, CLIENT_SECRET);
    config.organization["id"] = "0f0f0f0f-0000-4000-a000-0000000000b2".into();
    config.organization["thirdPartyOrgName"] = "recovery-org".into();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_restored_into_an_empty_org_exports_byte_identical_configurations() {
    let a = start_sim(org(12)).await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().to_string_lossy().into_owned();
    let archive = export(&a, &to, "a", "tar-gz", &[]).await;

    let b = start_sim(empty_org()).await;
    let refused = run(restore_cmd(&b, &archive).args(["--all", "--apply"])).await;
    assert_eq!(
        refused.status.code(),
        Some(2),
        "another org needs --to-other-org: {}",
        all_output(&refused)
    );
    assert_eq!(b.stats().write_requests.load(Ordering::Relaxed), 0);

    let report_file = dir.path().join("restore.json");
    let out = run(restore_cmd(&b, &archive)
        .args(["--all", "--apply", "--publish", "--to-other-org", "--report"])
        .arg(&report_file))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("recovery-org"), "the plan names the target org: {text}");
    assert!(text.contains("restored: 12 done"), "{text}");

    let again = export(&b, &to, "b", "objects", &[]).await;
    // Every flow was re-created with a new id, and flows that call flows now name the new ids.
    let ids = new_ids(&report_file);
    assert_eq!(ids.len(), 12);
    let (before, after) = (
        published_configs(&archive, &[]).await,
        published_configs(&again, &[]).await,
    );
    assert_eq!(before.len(), 12);
    assert_eq!(
        map_ids(before, &ids),
        after,
        "every configuration byte-identical once ids are mapped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_deleted_and_locked_flows_are_updated_recreated_and_left_in_conflict() {
    let s3 = S3Server::seaweedfs().await;
    let env = s3.env();
    let sim = start_sim(org(10)).await;
    let archive = export(&sim, &format!("s3://{BUCKET}/dr"), "before", "objects", &env).await;
    let flows = sim.flows();
    let (edited, deleted, locked) = (
        flows[1].id().to_string(),
        flows[2].id().to_string(),
        flows[4].id().to_string(),
    );
    // Edited and published in Architect: a new version is what runs now.
    sim.update_flow(&edited, |f| {
        f.config = ConfigSource::Literal(r#"{"broken":"by an edit"}"#.into());
        f.published = None;
        f.meta["savedVersion"] = serde_json::json!({"id": "20.0", "name": "20.0"});
        f.meta["publishedVersion"] = serde_json::json!({"id": "20.0", "name": "20.0"});
    });
    assert!(sim.delete_flow(&deleted));
    assert!(sim.lock_flow(&locked, "jane"));
    sim.update_flow(&locked, |f| {
        f.config = ConfigSource::Literal(r#"{"jane":"editing"}"#.into());
        f.published = None;
    });

    let plan = run(restore_cmd(&sim, &archive).args(["--all"]).envs(env.clone())).await;
    assert_eq!(plan.status.code(), Some(0), "{}", all_output(&plan));
    assert_eq!(
        sim.stats().write_requests.load(Ordering::Relaxed),
        0,
        "a plan writes nothing"
    );
    let text = String::from_utf8_lossy(&plan.stdout).into_owned();
    let line = |id: &str| {
        text.lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{id} in {text}"))
            .to_string()
    };
    assert!(line(&edited).starts_with("update"), "{text}");
    assert!(line(&deleted).starts_with("create"), "{text}");
    assert!(
        line(&locked).starts_with("conflict") && line(&locked).contains("jane"),
        "{text}"
    );
    // Flows 5, 6 and 7 call the deleted common module: they are saved again, pointing at its new id.
    for caller in &flows[5..=7] {
        assert!(line(caller.id()).starts_with("update"), "{text}");
    }
    assert_eq!(text.lines().filter(|l| l.starts_with("unchanged")).count(), 4, "{text}");

    let report_path = tempfile::tempdir().unwrap();
    let report_file = report_path.path().join("restore.json");
    let out = run(restore_cmd(&sim, &archive)
        .args(["--all", "--apply", "--publish", "--report"])
        .arg(&report_file)
        .envs(env.clone()))
    .await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "a conflict leaves the restore incomplete: {}",
        all_output(&out)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    let entry = |id: &str| {
        report["flows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(entry(&edited)["outcome"], "done");
    assert_eq!(entry(&edited)["versions_before"]["published"], "20.0");
    assert_ne!(entry(&edited)["versions_after"]["published"], "20.0");
    let recreated = entry(&deleted);
    assert_eq!(recreated["outcome"], "done");
    let new_id = recreated["new_id"].as_str().expect("the new id is reported");
    assert_ne!(new_id, deleted);
    assert_eq!(entry(&locked)["outcome"], "conflict");

    let after = export(&sim, &format!("s3://{BUCKET}/dr"), "after", "objects", &env).await;
    let (want, got) = (
        map_ids(
            published_configs(&archive, &env).await,
            &[(deleted.clone(), new_id.to_string())],
        ),
        published_configs(&after, &env).await,
    );
    for (key, config) in &want {
        if flows
            .iter()
            .any(|f| f.id() == locked && f.meta["name"] == key.1.as_str())
        {
            assert_ne!(got.get(key), Some(config), "the locked flow was left alone");
            continue;
        }
        assert_eq!(
            got.get(key),
            Some(config),
            "{key:?} matches the archive after the restore"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_publish_is_reported_with_the_apis_error_code() {
    let mut config = org(3);
    config.fail_publish = Some("architect.flow.publish.missing.dependencies".into());
    let sim = start_sim(config).await;
    let s3 = S3Server::moto().await;
    let env = s3.env();
    let archive = export(&sim, &format!("s3://{BUCKET}/x"), "r", "tar-gz", &env).await;
    let id = sim.flows()[0].id().to_string();
    sim.update_flow(&id, |f| {
        f.config = ConfigSource::Literal(r#"{"changed":true}"#.into());
        f.published = None;
    });
    let dir = tempfile::tempdir().unwrap();
    let out = run(restore_cmd(&sim, &archive)
        .args(["--flow", &id, "--apply", "--publish", "--output", "json", "--report"])
        .arg(dir.path().join("r.json"))
        .envs(env))
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let flow = &report["flows"][0];
    assert_eq!(flow["outcome"], "failed");
    assert!(
        flow["error"]
            .as_str()
            .unwrap()
            .contains("architect.flow.publish.missing.dependencies"),
        "{flow}"
    );
    assert_no_secrets(&all_output(&out), &sim);
}
