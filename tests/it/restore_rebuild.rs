//! Restoring into a rebuilt org: every reference a configuration makes (its manifest and its
//! actions) is re-pointed at the target's ids before anything is written; what cannot be found is a
//! conflict for the flow and its callers; called flows are published before their callers, and
//! flows that call each other are created first and then saved.

use crate::support;

use std::collections::{HashMap, HashSet};

use flowvault::sim::{ObjectKind, SimConfig, SimFlow, SimObjects, SimServer};
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

/// `flowvault restore RUN ARGS` against `sim`, its report written to `report`.
fn restore_cmd(sim: &SimServer, run_location: &str, report: &std::path::Path) -> tokio::process::Command {
    let mut cmd = flowvault();
    cmd.current_dir(std::env::temp_dir())
        .args(["restore", run_location, "--report"])
        .arg(report)
        .env("FLOWVAULT_API_URL", sim.url())
        .env("FLOWVAULT_ALLOW_INSECURE_HTTP", "true")
        .env("FLOWVAULT_MAX_BACKOFF", "200ms")
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", CLIENT_ID)
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", CLIENT_SECRET);
    cmd
}

/// An empty org (another org id) holding `objects`.
fn empty_org(objects: SimObjects) -> SimConfig {
    let mut config = SimConfig::with_flows(Vec::new(), CLIENT_ID, CLIENT_SECRET);
    config.organization["id"] = "0f0f0f0f-0000-4000-a000-0000000000c3".into();
    config.organization["thirdPartyOrgName"] = "rebuilt-org".into();
    config.objects = objects;
    config
}

fn name(f: &SimFlow) -> String {
    f.meta["name"].as_str().unwrap_or_default().to_string()
}

/// A flow's published configuration, as the org serves it.
fn published(f: &SimFlow) -> Value {
    let v = f.published_version().expect("published");
    serde_json::from_str(&f.version_configuration(v).expect("its configuration")).unwrap()
}

fn manifest_ids(config: &Value, kind: &str) -> Vec<(String, String)> {
    config["manifest"][kind]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn read_report(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every object id `config` refers to inside its actions: literal and ref `val`s, `datatableId`,
/// `milestoneId`, `outcomeId`.
fn action_object_ids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Array(a) => a.iter().for_each(|i| action_object_ids(i, out)),
        Value::Object(m) => {
            for (k, child) in m {
                match (k.as_str(), child) {
                    ("datatableId" | "milestoneId" | "outcomeId", Value::String(s)) => out.push(s.clone()),
                    ("lit" | "ref", Value::Object(o)) if o.get("val").is_some_and(Value::is_string) => {
                        out.push(o["val"].as_str().unwrap().to_string())
                    }
                    _ => action_object_ids(child, out),
                }
            }
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_into_a_rebuilt_org_points_every_reference_at_the_new_ids() {
    let source = start_sim(org(22)).await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().to_string_lossy().into_owned();
    let archive = export(&source, &to, "a", "tar-gz", &[]).await;
    let rebuilt = SimObjects::rebuilt(7);
    let target = start_sim(empty_org(rebuilt.clone())).await;

    let report_file = dir.path().join("restore.json");
    let out = run(restore_cmd(&target, &archive, &report_file).args([
        "--all",
        "--apply",
        "--publish",
        "--to-other-org",
        "--concurrency",
        "6",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("re-point queue"),
        "the plan lists re-pointed references: {text}"
    );
    assert!(
        text.contains("requests"),
        "the plan states the requests it expects: {text}"
    );

    let old_ids: HashSet<String> = SimObjects::standard().objects.into_iter().map(|o| o.id).collect();
    let new_ids: HashSet<String> = rebuilt.objects.iter().map(|o| o.id.clone()).collect();
    let restored = target.flows();
    let by_name: HashMap<String, String> = restored.iter().map(|f| (name(f), f.id().to_string())).collect();
    let source_flows = source.flows();
    assert_eq!(restored.len(), source_flows.len(), "every flow created");
    let mut calls_checked = 0;
    for f in restored.iter().filter(|f| {
        let archived = source_flows.iter().find(|s| name(s) == name(f)).unwrap();
        archived.published_version().is_some()
    }) {
        let config = published(f);
        for kind in [
            "queue",
            "userPrompt",
            "dataAction",
            "dataTable",
            "user",
            "flowMilestone",
            "flowOutcome",
        ] {
            let k = ObjectKind::from_manifest_key(kind).unwrap();
            for (n, id) in manifest_ids(&config, kind) {
                assert_eq!(
                    Some(id.as_str()),
                    rebuilt.named(k, &n).map(|o| o.id.as_str()),
                    "{kind} {n}"
                );
            }
        }
        let mut in_actions = Vec::new();
        action_object_ids(&config["flowSequenceItemList"], &mut in_actions);
        assert!(!in_actions.is_empty());
        for id in in_actions {
            assert!(new_ids.contains(&id) && !old_ids.contains(&id), "{id} in {}", name(f));
        }
        for kind in ["commonModuleFlow", "inboundCallFlow", "secureCallFlow"] {
            for (n, id) in manifest_ids(&config, kind) {
                assert_eq!(Some(&id), by_name.get(&n), "{} calls {n}", name(f));
                assert!(config.to_string().contains(&format!(r#""flowId":"{id}""#)));
                calls_checked += 1;
            }
        }
    }
    assert!(
        calls_checked >= 5,
        "the callers and the cycle were checked: {calls_checked}"
    );
    let report = read_report(&report_file);
    let repointed: usize = report["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["repointed"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(
        repointed > 22,
        "the report lists each re-pointed reference: {repointed}"
    );
}

/// The flows (by archived id) that reference queue `queue`, and transitively their callers.
fn users_of_queue(flows: &[SimFlow], queue: &str) -> HashSet<String> {
    let configs: Vec<(String, Value)> = flows
        .iter()
        .map(|f| {
            (
                f.id().to_string(),
                serde_json::from_str(&f.configuration_json()).unwrap(),
            )
        })
        .collect();
    let mut out: HashSet<String> = configs
        .iter()
        .filter(|(_, c)| manifest_ids(c, "queue").iter().any(|(n, _)| n == queue))
        .map(|(id, _)| id.clone())
        .collect();
    loop {
        let callers: Vec<String> = configs
            .iter()
            .filter(|(id, c)| {
                !out.contains(id)
                    && ["commonModuleFlow", "inboundCallFlow", "secureCallFlow"]
                        .iter()
                        .any(|k| manifest_ids(c, k).iter().any(|(_, callee)| out.contains(callee)))
            })
            .map(|(id, _)| id.clone())
            .collect();
        if callers.is_empty() {
            return out;
        }
        out.extend(callers);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_missing_from_the_target_is_a_conflict_for_its_flows_and_their_callers() {
    let s3 = S3Server::seaweedfs().await;
    let env = s3.env();
    let mut source_config = org(22);
    // Published = saved everywhere, so the archived configuration is the one the test reads.
    source_config.flows = source_config
        .flows
        .into_iter()
        .map(|f| SimFlow { published: None, ..f })
        .collect();
    for f in &mut source_config.flows {
        if let Some(saved) = f
            .meta
            .get("savedVersion")
            .cloned()
            .filter(|_| f.published_version().is_some())
        {
            f.meta["publishedVersion"] = saved;
        }
    }
    let source = start_sim(source_config).await;
    let archive = export(&source, &format!("s3://{BUCKET}/dr"), "r", "objects", &env).await;
    let module: Value = serde_json::from_str(&source.flows()[2].configuration_json()).unwrap();
    let queue = manifest_ids(&module, "queue")[0].0.clone();
    let conflicted = users_of_queue(&source.flows(), &queue);
    assert!(
        conflicted.len() >= 4,
        "the module and its three callers at least: {conflicted:?}"
    );

    let target = start_sim(empty_org(SimObjects::rebuilt(3).without(ObjectKind::Queue, &queue))).await;
    let dir = tempfile::tempdir().unwrap();
    let report_file = dir.path().join("r.json");
    let plan = run(restore_cmd(&target, &archive, &report_file)
        .args(["--all", "--to-other-org"])
        .envs(env.clone()))
    .await;
    let text = String::from_utf8_lossy(&plan.stdout).into_owned();
    for id in &conflicted {
        let line = text
            .lines()
            .find(|l| !l.starts_with(' ') && l.contains(id.as_str()))
            .unwrap();
        assert!(
            line.starts_with("conflict") && line.contains(&format!("missing queue {queue:?}")),
            "{line}"
        );
    }
    assert_eq!(
        text.lines().filter(|l| l.starts_with("conflict")).count(),
        conflicted.len(),
        "{text}"
    );

    let out = run(restore_cmd(&target, &archive, &report_file)
        .args(["--all", "--to-other-org", "--apply", "--publish"])
        .envs(env.clone()))
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    let restored: HashSet<String> = target.flows().iter().map(name).collect();
    for f in source.flows() {
        let written = restored.contains(&name(&f));
        assert_eq!(written, !conflicted.contains(f.id()), "{}", name(&f));
    }
    assert!(
        target.flows().iter().all(|f| f.published_version().is_some()),
        "the rest restored and published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_common_module_is_recreated_and_its_three_callers_repointed_and_published() {
    let sim = start_sim(org(21)).await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().to_string_lossy().into_owned();
    let archive = export(&sim, &to, "before", "objects", &[]).await;
    let flows = sim.flows();
    let module = flows[2].id().to_string();
    let callers: Vec<String> = flows[5..=7].iter().map(|f| f.id().to_string()).collect();
    assert!(sim.delete_flow(&module));

    let report_file = dir.path().join("r.json");
    let out = run(restore_cmd(&sim, &archive, &report_file).args(["--all", "--apply", "--publish"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let report = read_report(&report_file);
    let entry = |id: &str| {
        report["flows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .unwrap()
            .clone()
    };
    let new_id = entry(&module)["new_id"].as_str().expect("re-created").to_string();
    assert_ne!(new_id, module);
    for caller in &callers {
        let e = entry(caller);
        assert_eq!(
            (e["action"].as_str(), e["outcome"].as_str()),
            (Some("update"), Some("done")),
            "{e}"
        );
        assert_eq!(e["repointed"][0]["from"], module.as_str());
        assert_eq!(e["repointed"][0]["to"], new_id.as_str());
        let now = sim.flows().into_iter().find(|f| f.id() == caller).unwrap();
        assert_eq!(now.published_version(), now.saved_version(), "published");
        let config = published(&now);
        assert_eq!(manifest_ids(&config, "commonModuleFlow")[0].1, new_id);
        assert!(
            !config.to_string().contains(&module),
            "no reference to the old id is left"
        );
    }
    let recreated = sim.flows().into_iter().find(|f| f.id() == new_id).unwrap();
    assert!(recreated.published_version().is_some());
    assert_eq!(
        report["flows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["outcome"] == "unchanged")
            .count(),
        17,
        "the flows that do not call it are left alone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_flow_cycle_is_restored_into_an_empty_org_and_both_are_published() {
    let source = start_sim(org(14)).await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().to_string_lossy().into_owned();
    let archive = export(&source, &to, "a", "tar-gz", &[]).await;
    let flows = source.flows();
    let (module, inbound, secure) = (flows[2].id(), flows[5].id(), flows[13].id());
    let target = start_sim(empty_org(SimObjects::rebuilt(1))).await;
    let report_file = dir.path().join("r.json");
    let out = run(restore_cmd(&target, &archive, &report_file).args([
        "--flow",
        module,
        "--flow",
        inbound,
        "--flow",
        secure,
        "--to-other-org",
        "--apply",
        "--publish",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let restored = target.flows();
    assert_eq!(restored.len(), 3);
    let id_of = |n: &str| restored.iter().find(|f| name(f) == n).unwrap().id().to_string();
    let (new_inbound, new_secure) = (id_of(&name(&flows[5])), id_of(&name(&flows[13])));
    for (caller, callee, kind) in [
        (&new_inbound, &new_secure, "secureCallFlow"),
        (&new_secure, &new_inbound, "inboundCallFlow"),
    ] {
        let f = restored.iter().find(|f| f.id() == caller).unwrap();
        assert!(f.published_version().is_some(), "{} published", name(f));
        assert_eq!(&manifest_ids(&published(f), kind)[0].1, callee);
    }
}
