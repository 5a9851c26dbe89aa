//! Issue 26's diff and dependency report, end to end against the simulated org over HTTP: two
//! exports with the org changed in between (through the sim's in-process handle), compared by
//! `flowvault diff`, local and S3, both formats; and each flow's dependencies in the manifest.

use bytes::Bytes;
use flowvault::manifest::{Dependencies, Manifest};
use flowvault::sim::{Audio, ObjectKind, SimServer};
use serde_json::{Value, json};

use crate::support::targets::{ALL_TARGETS, Place, Target};
use crate::support::{all_output, org, start_sim};

/// The org's changes between the runs: what each one is, by kind and id.
struct Edits {
    schedule: String,
    table: String,
    added_key: String,
    prompt: String,
    language: String,
}

/// Edits one schedule's recurrence, adds one row to a data table and re-records one prompt's
/// audio in one language, as users in Architect would.
fn edit_org(sim: &SimServer) -> Edits {
    sim.update_objects(|o| {
        let schedule = o.of_kind(ObjectKind::Schedule).next().expect("a schedule").id.clone();
        if let Some(s) = o.find_mut(ObjectKind::Schedule, &schedule) {
            s.body["rrule"] = json!("FREQ=WEEKLY;BYDAY=SA,SU");
        }
        let table = o.of_kind(ObjectKind::DataTable).next().expect("a table").id.clone();
        let rows = o.rows.get_mut(&table).expect("the table's rows");
        let mut row = rows.first().cloned().expect("a row");
        let added_key = "zz-added-in-run-b".to_string();
        row["key"] = json!(added_key);
        rows.push(row);
        let ((prompt, language), _) = o.audio.iter().next().expect("an audio file");
        let (prompt, language) = (prompt.clone(), language.clone());
        let recorded: Bytes = flowvault::sim::architect::catalogue::wav(0xDEC0DE);
        o.audio
            .insert((prompt.clone(), language.clone()), Audio::Uploaded(recorded));
        Edits {
            schedule,
            table,
            added_key,
            prompt,
            language,
        }
    })
}

async fn diff_json(place: &Place) -> Value {
    let out = place
        .flowvault(&["diff", &place.run("a"), &place.run("b"), "--json"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    serde_json::from_slice(&out.stdout).expect("diff --json prints one object")
}

fn changed<'a>(report: &'a Value, kind: &str, id: &str) -> &'a Value {
    report["objects"]["changed"]
        .as_array()
        .expect("objects.changed")
        .iter()
        .find(|c| c["kind"] == kind && c["id"] == id)
        .unwrap_or_else(|| panic!("{kind} {id} is not named as changed: {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_names_an_edited_schedule_an_added_row_and_a_re_recorded_prompt() {
    for target in ALL_TARGETS {
        let sim = start_sim(org(8)).await;
        let place = Place::new(target).await;
        let out = place.export(&sim, "a").await;
        assert_eq!(out.status.code(), Some(0), "{target:?}: {}", all_output(&out));
        let edits = edit_org(&sim);
        let out = place.export(&sim, "b").await;
        assert_eq!(out.status.code(), Some(0), "{target:?}: {}", all_output(&out));

        let report = diff_json(&place).await;
        let schedule = changed(&report, "schedules", &edits.schedule);
        assert_eq!(schedule["object_changed"], true, "{target:?}: {schedule}");
        let table = changed(&report, "datatables", &edits.table);
        assert_eq!(table["rows"]["added"], json!([edits.added_key]), "{target:?}: {table}");
        assert_eq!(table["rows"]["changed"], json!([]), "{target:?}: {table}");
        let prompt = changed(&report, "prompts", &edits.prompt);
        assert_eq!(prompt["audio_changed"], json!([edits.language]), "{target:?}: {prompt}");
        assert_eq!(
            report["objects"]["changed"].as_array().unwrap().len(),
            3,
            "{target:?}: nothing else changed: {report:#}"
        );
        assert_eq!(report["changed"], json!([]), "{target:?}: no flow changed");

        let text = place.flowvault(&["diff", &place.run("a"), &place.run("b")]).await;
        let text = String::from_utf8_lossy(&text.stdout).into_owned();
        assert!(
            text.contains(&format!("changed  schedules {}", edits.schedule)) && text.contains(": edited"),
            "{target:?}: {text}"
        );
        assert!(
            text.contains(&format!("rows added {:?}", edits.added_key)),
            "{target:?}: {text}"
        );
        assert!(
            text.contains(&format!("audio re-recorded: {}", edits.language)),
            "{target:?}: {text}"
        );
        assert!(
            text.contains("objects: 0 added, 0 removed, 3 changed"),
            "{target:?}: {text}"
        );
        sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_of_an_unchanged_org_differ_in_no_object_though_every_media_url_changed() {
    let sim = start_sim(org(6)).await;
    let place = Place::new(Target::LocalObjects).await;
    for run in ["a", "b"] {
        let out = place.export(&sim, run).await;
        assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    }
    let report = diff_json(&place).await;
    let objects = &report["objects"];
    assert_eq!(objects["changed"], json!([]), "{report:#}");
    assert!(objects["unchanged"].as_u64().unwrap() > 0, "{report:#}");
    let out = place
        .flowvault(&["diff", &place.run("a"), &place.run("b"), "--exit-code"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_deleted_between_runs_is_removed_and_exit_code_says_the_runs_differ() {
    let sim = start_sim(org(6)).await;
    let place = Place::new(Target::LocalTarGz).await;
    place.export(&sim, "a").await;
    let gone = sim.objects().of_kind(ObjectKind::FlowMilestone).next().unwrap().clone();
    assert!(sim.delete_object(gone.kind, &gone.name));
    place.export(&sim, "b").await;
    let report = diff_json(&place).await;
    assert_eq!(
        report["objects"]["removed"],
        json!([{"kind": "milestones", "id": gone.id, "name": gone.name}]),
        "{report:#}"
    );
    let out = place
        .flowvault(&["diff", &place.run("a"), &place.run("b"), "--exit-code"])
        .await;
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
}

fn manifest_of(place: &Place, run: &str) -> Manifest {
    let bytes = std::fs::read(place.dir.path().join(run).join("manifest.json")).expect("manifest");
    Manifest::from_slice(&bytes).expect("a manifest")
}

/// Every flow's Architect dependencies in `m`, as (flow id, flow name, dependencies).
fn dependencies(m: &Manifest) -> Vec<(String, String, Dependencies)> {
    m.flows
        .iter()
        .filter_map(|r| Some((r.id.clone(), r.name.clone(), r.dependencies.clone()?)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_flow_names_the_objects_it_uses_and_the_archive_holds_every_architect_one() {
    let sim = start_sim(org(10)).await;
    let place = Place::new(Target::LocalObjects).await;
    let out = place.export(&sim, "a").await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let m = manifest_of(&place, "a");
    let deps = dependencies(&m);
    assert_eq!(deps.len(), m.flows.len(), "every generated flow references something");
    let architect: Vec<_> = deps.iter().flat_map(|(_, _, d)| d.architect.iter()).collect();
    assert!(architect.iter().any(|d| d.kind == "userPrompt"), "{architect:?}");
    assert!(architect.iter().all(|d| d.in_archive), "{architect:?}");
    for d in &architect {
        let kind = flowvault::architect::ArchitectKind::from_manifest_key(&d.kind).unwrap();
        assert!(
            m.objects.iter().any(|o| o.kind == kind.as_str() && o.id == d.id),
            "{d:?} is said to be in the archive"
        );
    }
    let other: Vec<_> = deps.iter().flat_map(|(_, _, d)| d.other.iter()).collect();
    assert!(
        other.iter().any(|d| d.kind == "queue" && !d.name.is_empty()),
        "{other:?}"
    );
    assert!(!all_output(&out).contains("WARN"), "{}", all_output(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_using_a_deleted_prompt_is_warned_about_by_name_and_noted_in_the_manifest() {
    let sim = start_sim(org(10)).await;
    let place = Place::new(Target::LocalTarGz).await;
    place.export(&sim, "a").await;
    let before = dependencies(&manifest_of(&place, "a"));
    let (flow_id, flow_name, prompt) = before
        .iter()
        .find_map(|(id, name, d)| {
            let p = d.architect.iter().find(|a| a.kind == "userPrompt")?;
            Some((id.clone(), name.clone(), p.clone()))
        })
        .expect("a flow that plays a prompt");
    assert!(sim.delete_object(ObjectKind::UserPrompt, &prompt.name));

    let out = place.export(&sim, "b").await;
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(0), "a deleted object is a warning: {text}");
    let warning = text
        .lines()
        .find(|l| l.contains("WARN") && l.contains(&flow_id) && l.contains(&prompt.id))
        .unwrap_or_else(|| panic!("no warning names flow {flow_id} and prompt {}: {text}", prompt.id));
    assert!(
        warning.contains(&flow_name) && warning.contains(&prompt.name),
        "{warning}"
    );
    let m = manifest_of(&place, "b");
    let after = dependencies(&m);
    let (_, _, deps) = after.iter().find(|(id, _, _)| *id == flow_id).unwrap();
    let entry = deps.architect.iter().find(|d| d.id == prompt.id).unwrap();
    assert!(!entry.in_archive, "{entry:?}");
    let prompts = m
        .architect
        .as_ref()
        .unwrap()
        .kinds
        .iter()
        .find(|k| k.kind == "prompts")
        .unwrap();
    let note = prompts.note.as_deref().unwrap_or_default();
    assert!(note.contains("from flows to prompts not in this archive"), "{note}");
    assert!(
        deps.architect
            .iter()
            .filter(|d| d.id != prompt.id)
            .all(|d| d.in_archive),
        "only the deleted prompt is missing: {deps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_to_a_kind_the_role_cannot_read_are_one_warning_and_a_note_not_one_per_flow() {
    let mut config = org(10);
    config
        .denied_permissions
        .insert("architect:userPrompt:view".to_string());
    let sim = start_sim(config).await;
    let place = Place::new(Target::LocalObjects).await;
    let out = place.export(&sim, "a").await;
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let m = manifest_of(&place, "a");
    let uses: Vec<_> = dependencies(&m)
        .into_iter()
        .flat_map(|(_, _, d)| d.architect)
        .filter(|d| d.kind == "userPrompt")
        .collect();
    assert!(!uses.is_empty() && uses.iter().all(|d| !d.in_archive), "{uses:?}");
    let warnings: Vec<_> = text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("reference(s) from flows to prompts"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(
        warnings[0].contains(&format!("{} reference(s)", uses.len())),
        "{}",
        warnings[0]
    );
    let prompts = m
        .architect
        .as_ref()
        .unwrap()
        .kinds
        .iter()
        .find(|k| k.kind == "prompts")
        .unwrap();
    assert!(!prompts.checked);
    let note = prompts.note.as_deref().unwrap_or_default();
    assert!(
        note.contains("architect:userPrompt:view") && note.contains("which this run did not read"),
        "{note}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flows_only_run_records_dependencies_without_warning_about_objects_it_was_not_asked_for() {
    let sim = start_sim(org(6)).await;
    let place = Place::new(Target::LocalObjects).await;
    let out = place.export_with(&sim, "a", &["--kinds", "flows"]).await;
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("WARN"), "{text}");
    let m = manifest_of(&place, "a");
    assert!(m.architect.is_none() && m.objects.is_empty());
    let deps = dependencies(&m);
    assert!(!deps.is_empty());
    assert!(
        deps.iter().flat_map(|(_, _, d)| &d.architect).all(|d| !d.in_archive),
        "{deps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_using_a_table_in_a_division_the_role_cannot_see_is_warned_about_and_the_run_stays_complete() {
    let sim = start_sim(org(10)).await;
    let place = Place::new(Target::LocalObjects).await;
    place.export(&sim, "a").await;
    let (flow_id, table) = dependencies(&manifest_of(&place, "a"))
        .into_iter()
        .find_map(|(id, _, d)| Some((id, d.architect.into_iter().find(|a| a.kind == "dataTable")?)))
        .expect("a flow that looks up a data table");
    sim.shutdown().await;

    let mut config = org(10);
    config.hidden_objects.push((ObjectKind::DataTable, table.name.clone()));
    let sim = start_sim(config).await;
    let out = place.export(&sim, "b").await;
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let m = manifest_of(&place, "b");
    assert!(m.complete, "{:?}", m.incomplete_reason);
    assert!(
        !m.objects.iter().any(|o| o.id == table.id),
        "the hidden table is not listed"
    );
    let (_, _, deps) = dependencies(&m).into_iter().find(|(id, _, _)| *id == flow_id).unwrap();
    assert!(!deps.architect.iter().find(|d| d.id == table.id).unwrap().in_archive);
    assert!(
        text.lines()
            .any(|l| l.contains("WARN") && l.contains(&flow_id) && l.contains(&table.name) && l.contains("division")),
        "{text}"
    );
}
