//! Restoring the Architect objects flows stand on, end to end over HTTP against the simulated
//! org: planned and applied in dependency order, re-created objects re-pointed everywhere they are
//! referenced (flows' manifests and actions, schedule groups, IVRs, emergency groups), audio
//! uploaded and transcoded, and every write sent once.

use crate::support;

use std::collections::{BTreeMap, HashSet};

use flowvault::manifest::Manifest;
use flowvault::sim::{ObjectKind, ObjectWriteFault, SimConfig, SimFlow, SimObjects, SimServer};
use serde_json::Value;
use support::targets::{Place, Target};
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
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["id"].as_str().unwrap().to_string(),
            )
        })
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

/// Every id of `sim`'s objects and flows → `kind:name`, so two orgs' documents compare by name.
fn names_of(sim: &SimServer) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = sim
        .objects()
        .objects
        .iter()
        .map(|o| (o.id.clone(), format!("{:?}:{}", o.kind, o.name)))
        .collect();
    out.extend(
        sim.flows()
            .iter()
            .map(|f| (f.id().to_string(), format!("flow:{}", name(f)))),
    );
    out
}

/// `v` with ids named (`names`) and the fields that differ between orgs by nature dropped (ids,
/// versions, presigned URLs, and `state`, which the org sets itself).
fn scrub(v: &mut Value, names: &BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            for k in [
                "id",
                "selfUri",
                "version",
                "promptId",
                "mediaUri",
                "uploadUri",
                "dateModified",
                "division",
                "state",
            ] {
                m.remove(k);
            }
            m.values_mut().for_each(|c| scrub(c, names));
        }
        Value::Array(a) => a.iter_mut().for_each(|c| scrub(c, names)),
        Value::String(s) => {
            if let Some(n) = names.get(s.as_str()) {
                *s = n.clone();
            }
        }
        _ => {}
    }
}

/// Exports `sim` to `place` (objects format) as run `id`: its manifest.
async fn export_objects(place: &Place, sim: &SimServer, id: &str) -> Manifest {
    let out = place.export_with(sim, id, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    serde_json::from_slice(&place.read(&format!("{id}/manifest.json")).await).unwrap()
}

/// A run's Architect documents by `kind name [language|rows|object]`: JSON scrubbed of ids,
/// audio as its SHA-256.
async fn object_documents(
    place: &Place,
    id: &str,
    manifest: &Manifest,
    names: &BTreeMap<String, String>,
) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for row in &manifest.objects {
        for d in &row.documents {
            let body = &place.read(&format!("{id}/{}", d.path)).await;
            let (what, value) = match &d.language {
                Some(lang) => (lang.clone(), Value::String(sha256_hex(body))),
                None => {
                    let mut v: Value = serde_json::from_slice(body).unwrap();
                    scrub(&mut v, names);
                    let what = if v.get("rows").is_some() { "rows" } else { "object" };
                    (what.to_string(), v)
                }
            };
            out.insert(format!("{} {} {what}", row.kind, row.name), value);
        }
    }
    out
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
    let out =
        run(restore_cmd(&sim, &archive, &report_file).args(["--kinds", "schedulegroups,prompts", "--apply"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));

    let after = sim.objects();
    let new_group = after
        .named(ObjectKind::ScheduleGroup, &group)
        .expect("the schedule group is back");
    let new_prompt = after
        .named(ObjectKind::UserPrompt, &prompt)
        .expect("the prompt is back");
    assert_ne!(new_group.id, group_id, "re-created under a new id");
    assert_ne!(new_prompt.id, prompt_id);
    assert_eq!(after.objects.len(), before.objects.len(), "exactly those two came back");
    for o in before.objects.iter().filter(|o| o.id != group_id && o.id != prompt_id) {
        assert!(
            after.find(o.kind, &o.id).is_some(),
            "{:?} {} kept its id",
            o.kind,
            o.name
        );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_into_an_empty_org_creates_every_object_and_a_re_export_equals_the_archive_but_for_ids() {
    let source = start_sim(org(12)).await;
    let place = Place::new(Target::SeaweedObjects).await;
    let archived = export_objects(&place, &source, "a").await;
    assert!(!archived.objects.is_empty(), "the archive holds the Architect objects");
    let target = start_sim(empty_org(SimObjects::rebuilt_without_architect(9))).await;

    let dir = tempfile::tempdir().unwrap();
    let report_file = dir.path().join("restore.json");
    let out = run(restore_cmd(&target, &place.run("a"), &report_file)
        .args(["--kinds", "all", "--apply", "--publish", "--to-other-org"])
        .envs(place.env()))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));

    let (before, after) = (source.objects(), target.objects());
    for kind in ObjectKind::ARCHITECT {
        let names = |o: &SimObjects| o.of_kind(kind).map(|x| x.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&after).len(), names(&before).len(), "every {kind:?} created");
    }
    assert_eq!(after.audio.len(), before.audio.len(), "every audio file uploaded");
    for p in after.of_kind(ObjectKind::UserPrompt) {
        for r in p.body["resources"].as_array().unwrap() {
            assert_eq!(r["uploadStatus"], "transcoded", "{} {r}", p.name);
        }
    }
    let old_ids: HashSet<String> = before.objects.iter().map(|o| o.id.clone()).collect();
    let (flows_before, flows_after) = (source.flows(), target.flows());
    assert_eq!(flows_after.len(), flows_before.len(), "every flow created");
    for f in flows_after.iter().filter(|f| {
        flows_before
            .iter()
            .any(|s| name(s) == name(f) && s.published_version().is_some())
    }) {
        let mut ids = HashSet::new();
        all_strings(&published(f), &mut ids);
        let stale: Vec<&String> = ids.iter().filter(|i| old_ids.contains(*i)).collect();
        assert!(stale.is_empty(), "{} still names {stale:?}", name(f));
    }

    let again = export_objects(&place, &target, "b").await;
    let a = object_documents(&place, "a", &archived, &names_of(&source)).await;
    let b = object_documents(&place, "b", &again, &names_of(&target)).await;
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        assert_eq!(Some(v), b.get(k), "{k}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_commit_then_answer_5xx_are_settled_by_reading_back_without_a_duplicate() {
    let mut config = org(6);
    config.object_write_faults = vec![
        "schedulegroups:503".parse::<ObjectWriteFault>().unwrap(),
        "prompts:500".parse().unwrap(),
        "ivrs:502".parse().unwrap(),
    ];
    let sim = start_sim(config).await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().to_string_lossy().into_owned();
    let archive = export(&sim, &to, "a", "objects", &[]).await;
    let (group, _, prompt, _) = used_group_and_prompt(&sim);
    assert!(sim.delete_object(ObjectKind::ScheduleGroup, &group));
    assert!(sim.delete_object(ObjectKind::UserPrompt, &prompt));

    let report_file = dir.path().join("restore.json");
    let out =
        run(restore_cmd(&sim, &archive, &report_file).args(["--kinds", "schedulegroups,prompts", "--apply"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));

    let after = sim.objects();
    assert_eq!(
        after
            .of_kind(ObjectKind::ScheduleGroup)
            .filter(|o| o.name == group)
            .count(),
        1
    );
    assert_eq!(
        after
            .of_kind(ObjectKind::UserPrompt)
            .filter(|o| o.name == prompt)
            .count(),
        1
    );
    let report = read_report(&report_file);
    let settled: Vec<&Value> = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| {
            o["notes"]
                .to_string()
                .contains("reading it back showed it had happened")
        })
        .collect();
    assert_eq!(
        settled.len(),
        3,
        "two creates and the IVR's re-point update settled by reading back: {report}"
    );
    let new_group = &after.named(ObjectKind::ScheduleGroup, &group).unwrap().id;
    assert!(
        after
            .of_kind(ObjectKind::Ivr)
            .any(|i| i.body["scheduleGroup"]["id"] == new_group.as_str()),
        "the IVR points at the re-created group"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ivr_whose_number_another_ivr_now_holds_is_a_conflict_and_is_not_written() {
    let sim = start_sim(org(6)).await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().to_string_lossy().into_owned();
    let archive = export(&sim, &to, "a", "tar-gz", &[]).await;
    let objects = sim.objects();
    let mut ivrs = objects.of_kind(ObjectKind::Ivr);
    let (gone, other) = (ivrs.next().unwrap().clone(), ivrs.next().unwrap().clone());
    let number = gone.body["dnis"][0].as_str().unwrap().to_string();
    assert!(sim.delete_object(ObjectKind::Ivr, &gone.name));
    sim.update_objects(|o| {
        let held = o.find_mut(ObjectKind::Ivr, &other.id).unwrap();
        held.body["dnis"].as_array_mut().unwrap().push(number.clone().into());
    });

    let report_file = dir.path().join("restore.json");
    let out = run(restore_cmd(&sim, &archive, &report_file).args(["--kinds", "ivrs", "--apply"])).await;
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("conflict") && l.contains(&gone.name))
        .unwrap_or_else(|| panic!("a conflict line for {}: {text}", gone.name));
    assert!(line.contains(&number) && line.contains(&other.name), "{line}");
    assert!(
        sim.objects().named(ObjectKind::Ivr, &gone.name).is_none(),
        "nothing written for it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_genesys_cannot_transcode_fails_its_prompt_and_the_run_says_so() {
    let mut config = org(6);
    let sim_objects = config.objects.clone();
    let prompt = sim_objects
        .of_kind(ObjectKind::UserPrompt)
        .find(|p| sim_objects.audio.keys().any(|(id, _)| *id == p.id))
        .expect("a prompt with audio")
        .name
        .clone();
    config.transcode_fail = HashSet::from([prompt.clone()]);
    let sim = start_sim(config).await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().to_string_lossy().into_owned();
    let archive = export(&sim, &to, "a", "tar-gz", &[]).await;
    assert!(sim.delete_object(ObjectKind::UserPrompt, &prompt));

    let report_file = dir.path().join("restore.json");
    let out = run(restore_cmd(&sim, &archive, &report_file).args(["--kinds", "prompts", "--apply"])).await;
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    let report = read_report(&report_file);
    let row = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == prompt.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["outcome"], "failed", "{row}");
    assert!(row["error"].as_str().unwrap().contains("transcodeFailed"), "{row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_of_objects_writes_nothing_and_its_json_lists_each_object() {
    let sim = start_sim(org(4)).await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().to_string_lossy().into_owned();
    let archive = export(&sim, &to, "a", "objects", &[]).await;
    let schedule = sim.objects().of_kind(ObjectKind::Schedule).next().unwrap().name.clone();
    assert!(sim.delete_object(ObjectKind::Schedule, &schedule));
    let writes = sim.stats().write_requests.load(std::sync::atomic::Ordering::Relaxed);

    let report_file = dir.path().join("restore.json");
    let out =
        run(restore_cmd(&sim, &archive, &report_file).args(["--kinds", "schedules,schedulegroups", "--json"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert_eq!(
        sim.stats().write_requests.load(std::sync::atomic::Ordering::Relaxed),
        writes,
        "a plan writes nothing"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let objects = report["objects"].as_array().unwrap();
    let action = |name: &str| {
        objects
            .iter()
            .find(|o| o["name"] == name)
            .map(|o| o["action"].as_str().unwrap().to_string())
    };
    assert_eq!(action(&schedule).as_deref(), Some("create"), "{report}");
    assert_eq!(
        objects.len(),
        sim.objects().of_kind(ObjectKind::Schedule).count()
            + 1
            + sim.objects().of_kind(ObjectKind::ScheduleGroup).count(),
        "one entry per archived schedule and schedule group: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_not_written_into_another_org_without_to_other_org() {
    let source = start_sim(org(4)).await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().to_string_lossy().into_owned();
    let archive = export(&source, &to, "a", "tar-gz", &[]).await;
    let target = start_sim(empty_org(SimObjects::rebuilt_without_architect(5))).await;

    let report_file = dir.path().join("restore.json");
    let out = run(restore_cmd(&target, &archive, &report_file).args(["--kinds", "schedules,prompts", "--apply"])).await;
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
    assert!(all_output(&out).contains("--to-other-org"), "{}", all_output(&out));
    assert_eq!(
        target.stats().write_requests.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(target.objects().of_kind(ObjectKind::Schedule).count(), 0);
}
