//! Restoring the Architect objects flows stand on, end to end over HTTP against the simulated
//! org: planned and applied in dependency order, re-created objects re-pointed everywhere they are
//! referenced (flows' manifests and actions, schedule groups, IVRs, emergency groups), audio
//! uploaded and transcoded, and every write sent once.

use crate::support;

use std::collections::{BTreeMap, HashSet};

use flowvault::sim::{ObjectKind, ObjectWriteFault, SimConfig, SimFlow, SimObjects, SimServer};
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

fn read_report(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
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
        .map(|e| (e["name"].as_str().unwrap().to_string(), e["id"].as_str().unwrap().to_string()))
        .collect()
}

/// Every id string anywhere in `v`.
fn all_strings(v: &Value, out: &mut HashSet<String>) {
    match v {
        Value::String(s) => {
            out.insert(s.clone());
        }
        Value::Array(a) => a.iter().for_each(|i| all_strings(i, out)),
        Value::Object(m) => m.values().for_each(|i| all_strings(i, out)),
        _ => {}
    }
}

/// The Architect objects of an org: kind → name → body, ids and volatile fields left out.
fn without_ids(objects: &SimObjects, rename: &BTreeMap<String, String>) -> BTreeMap<(ObjectKind, String), Value> {
    fn scrub(v: &mut Value, rename: &BTreeMap<String, String>) {
        match v {
            Value::Object(m) => {
                for k in ["id", "selfUri", "version", "promptId", "mediaUri", "uploadUri", "dateModified"] {
                    m.remove(k);
                }
                m.values_mut().for_each(|c| scrub(c, rename));
            }
            Value::Array(a) => a.iter_mut().for_each(|c| scrub(c, rename)),
            Value::String(s) => {
                if let Some(n) = rename.get(s.as_str()) {
                    *s = n.clone();
                }
            }
            _ => {}
        }
    }
    objects
        .objects
        .iter()
        .filter(|o| o.kind.is_architect())
        .map(|o| {
            let mut body = o.body.clone();
            scrub(&mut body, rename);
            ((o.kind, o.name.clone()), body)
        })
        .collect()
}

/// The names of the org's flows by id (for comparing references across orgs).
fn flow_names(sim: &SimServer) -> BTreeMap<String, String> {
    sim.flows().iter().map(|f| (f.id().to_string(), name(f))).collect()
}

/// An empty org (another org id) holding `objects` and no flow.
fn empty_org(objects: SimObjects) -> SimConfig {
    let mut config = SimConfig::with_flows(Vec::new(), CLIENT_ID, CLIENT_SECRET);
    config.organization["id"] = "0f0f0f0f-0000-4000-a000-0000000000c4".into();
    config.organization["thirdPartyOrgName"] = "rebuilt-org".into();
    config.objects = objects;
    config
}

/// A schedule group an IVR uses and a prompt a published flow uses, by name.
fn used_group_and_prompt(sim: &SimServer) -> (String, String, String, String) {
    let objects = sim.objects();
    let ivr = objects
        .of_kind(ObjectKind::Ivr)
        .find(|i| i.body["scheduleGroup"]["id"].is_string())
        .expect("an IVR with a schedule group");
    let group_id = ivr.body["scheduleGroup"]["id"].as_str().unwrap().to_string();
    let group = objects.find(ObjectKind::ScheduleGroup, &group_id).unwrap().name.clone();
    let (prompt, prompt_id) = sim
        .flows()
        .iter()
        .filter(|f| f.published_version().is_some())
        .flat_map(|f| manifest_ids(&published(f), "userPrompt"))
        .next()
        .expect("a published flow playing a user prompt");
    (group, group_id, prompt, prompt_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_schedule_group_and_prompt_come_back_and_their_users_are_re_pointed() {
    let sim = start_sim(org(12)).await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().to_string_lossy().into_owned();
    let archive = export(&sim, &to, "a", "tar-gz", &[]).await;
    let before = sim.objects();
    let (group, group_id, prompt, prompt_id) = used_group_and_prompt(&sim);
    assert!(sim.delete_object(ObjectKind::ScheduleGroup, &group));
    assert!(sim.delete_object(ObjectKind::UserPrompt, &prompt));

    let report_file = dir.path().join("restore.json");
    let out = run(restore_cmd(&sim, &archive, &report_file).args(["--kinds", "schedulegroups,prompts", "--apply"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    eprintln!("DEBUG {}", all_output(&out));

    let after = sim.objects();
    let new_group = after.named(ObjectKind::ScheduleGroup, &group).expect("the schedule group is back");
    let new_prompt = after.named(ObjectKind::UserPrompt, &prompt).expect("the prompt is back");
    assert_ne!(new_group.id, group_id, "re-created under a new id");
    assert_ne!(new_prompt.id, prompt_id);
    assert_eq!(after.objects.len(), before.objects.len(), "exactly those two came back");
    for o in before.objects.iter().filter(|o| o.id != group_id && o.id != prompt_id) {
        assert!(after.find(o.kind, &o.id).is_some(), "{:?} {} kept its id", o.kind, o.name);
    }
    let old_audio = before.audio.keys().filter(|(p, _)| *p == prompt_id).count();
    let new_audio = after.audio.keys().filter(|(p, _)| *p == new_prompt.id).count();
    assert_eq!(new_audio, old_audio, "every language's audio uploaded");
    let untouched = after.named(ObjectKind::UserPrompt, &prompt).unwrap();
    for r in untouched.body["resources"].as_array().unwrap() {
        assert_eq!(r["uploadStatus"], "transcoded", "{r}");
    }

    for ivr in after.of_kind(ObjectKind::Ivr) {
        let s = ivr.body.to_string();
        assert!(!s.contains(&group_id), "IVR {} still names the deleted group", ivr.name);
    }
    assert!(
        after
            .of_kind(ObjectKind::Ivr)
            .any(|i| i.body["scheduleGroup"]["id"] == new_group.id.as_str()),
        "an IVR points at the re-created group"
    );
    let mut repointed = 0;
    for f in sim.flows().iter().filter(|f| f.published_version().is_some()) {
        let config = published(f);
        let mut ids = HashSet::new();
        all_strings(&config, &mut ids);
        assert!(!ids.contains(&prompt_id), "{} still plays the deleted prompt", name(f));
        assert!(!ids.contains(&group_id), "{} still checks the deleted group", name(f));
        if ids.contains(&new_prompt.id) || ids.contains(&new_group.id) {
            repointed += 1;
        }
    }
    assert!(repointed > 0, "the flows that used them were re-pointed and published");
    let report = read_report(&report_file);
    let created: Vec<&str> = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["action"] == "create")
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(created.len(), 2, "{created:?}");
}
