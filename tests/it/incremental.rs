//! Incremental runs (`--since`): only what changed is fetched, the rest is carried over from the
//! previous run, and the result is a complete standalone archive whose documents are the ones a
//! full run writes, byte for byte — in every store and format.

use crate::support;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use flowvault::manifest::{Outcome, Source};
use flowvault::sim::{SimServer, generate_org};
use support::targets::{ALL_TARGETS, Place, Run, Target};
use support::*;

const FLOWS: usize = 120;

fn configuration_requests(sim: &SimServer) -> u64 {
    sim.stats().configuration_requests.load(Ordering::Relaxed)
}

/// The org changes between two runs: one flow edited (a new saved version), one renamed, one
/// created, one deleted. Returns their ids in that order.
fn change_the_org(sim: &SimServer) -> [String; 4] {
    let flows = sim.flows();
    let (edited, renamed, deleted) = (
        flows[3].id().to_string(),
        flows[10].id().to_string(),
        flows[20].id().to_string(),
    );
    assert!(sim.update_flow(&edited, |f| {
        f.save_version(r#"{"name":"edited","tasks":[{"id":"t1","actions":["new"]}]}"#.into());
    }));
    assert!(sim.update_flow(&renamed, |f| f.meta["name"] = "Renamed in Architect".into()));
    assert!(sim.delete_flow(&deleted));
    let created = generate_org(1, 4242, false).remove(0);
    let created_id = created.id().to_string();
    sim.create_flow(created);
    [edited, renamed, created_id, deleted]
}

fn row<'a>(run: &'a Run, id: &str) -> Option<&'a flowvault::manifest::FlowRecord> {
    run.manifest.flows.iter().find(|r| r.id == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_run_fetches_only_what_changed_and_writes_what_a_full_run_writes() {
    for target in ALL_TARGETS {
        let sim = start_sim(org(FLOWS)).await;
        let place = Place::new(target).await;
        let first = place.export_read(&sim, "first", &[]).await;
        assert_eq!(first.code, Some(0), "{target:?}: {}", first.text);
        let [edited, renamed, created, deleted] = change_the_org(&sim);

        let before = configuration_requests(&sim);
        let inc = place.export_read(&sim, "inc", &["--since", "latest"]).await;
        let fetched_requests = configuration_requests(&sim) - before;
        assert_eq!(inc.code, Some(0), "{target:?}: {}", inc.text);
        let m = &inc.manifest;
        assert!(m.complete, "{target:?}");
        assert_eq!(m.since.as_deref(), Some("first"), "{target:?}");
        assert_eq!(m.last_full_run.as_ref().map(|r| r.run_id.as_str()), Some("first"));
        // Three flows changed (edited, renamed, created): at most two requests each (a draft
        // and its published version), and nothing for the rest.
        assert!(
            fetched_requests <= 6,
            "{target:?}: {fetched_requests} configuration requests"
        );
        assert_eq!(m.totals.listed, FLOWS as u64, "{target:?}: one deleted, one created");
        assert_eq!(m.totals.carried, FLOWS as u64 - 3, "{target:?}");
        for id in [&edited, &renamed, &created] {
            let r = row(&inc, id).unwrap();
            assert_eq!(
                (r.outcome, r.source),
                (Outcome::Exported, Some(Source::Fetched)),
                "{target:?} {id}"
            );
        }
        assert_eq!(row(&inc, &renamed).unwrap().name, "Renamed in Architect");
        assert!(row(&inc, &deleted).is_none(), "{target:?}: a deleted flow has no row");
        let carried = m.flows.iter().find(|r| r.source == Some(Source::Carried)).unwrap();
        assert_eq!(carried.carried_from.as_deref(), Some("first"));
        assert_eq!(carried.fetched_in.as_deref(), Some("first"));
        assert!(inc.text.contains("117 unchanged flows carried over"), "{}", inc.text);
        if matches!(target, Target::SeaweedObjects) {
            assert!(
                inc.text.contains("0 read, verified and written"),
                "S3 objects are copied inside the store: {}",
                inc.text
            );
        }

        let out = place.flowvault(&["verify", &place.run("inc")]).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{target:?}: the incremental run verifies: {}",
            all_output(&out)
        );
        let full = place.export_read(&sim, "full", &[]).await;
        assert_eq!(full.code, Some(0));
        assert_eq!(
            inc.documents, full.documents,
            "{target:?}: the incremental run's documents are a full run's, byte for byte"
        );
        let edited_doc = inc.documents.iter().find(|(p, _)| p.contains(&edited)).unwrap().1;
        assert!(String::from_utf8_lossy(edited_doc).contains("\"edited\""), "{target:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_incremental_runs_keeps_carrying_from_the_run_before_and_remembers_who_fetched() {
    let sim = start_sim(org(30)).await;
    let place = Place::new(Target::LocalObjects).await;
    assert_eq!(place.export_read(&sim, "a", &[]).await.code, Some(0));
    assert_eq!(place.export_read(&sim, "b", &["--since", "latest"]).await.code, Some(0));
    let before = configuration_requests(&sim);
    let c = place.export_read(&sim, "c", &["--since", &place.run("b")]).await;
    assert_eq!(c.code, Some(0), "{}", c.text);
    assert_eq!(configuration_requests(&sim), before, "nothing changed: nothing fetched");
    assert_eq!(c.manifest.totals.carried, 30);
    assert!(c.manifest.flows.iter().all(|r| r.carried_from.as_deref() == Some("b")));
    assert!(c.manifest.flows.iter().all(|r| r.fetched_in.as_deref() == Some("a")));
    assert_eq!(c.manifest.last_full_run.as_ref().unwrap().run_id, "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_missing_previous_document_is_fetched_not_carried() {
    for target in [Target::LocalObjects, Target::SeaweedObjects] {
        let sim = start_sim(org(20)).await;
        let place = Place::new(target).await;
        let first = place.export_read(&sim, "first", &[]).await;
        let mut docs = first.manifest.flows.iter().filter(|r| !r.documents.is_empty());
        let (damaged, missing) = (docs.next().unwrap(), docs.next().unwrap());
        let path = |r: &flowvault::manifest::FlowRecord| format!("first/{}", r.documents[0].path);
        let mut bytes = place.read(&path(damaged)).await;
        bytes[20] ^= 1;
        place.write(&path(damaged), bytes).await;
        place.remove(&path(missing)).await;

        let inc = place.export_read(&sim, "inc", &["--since", "latest"]).await;
        assert_eq!(inc.code, Some(0), "{target:?}: {}", inc.text);
        for id in [&damaged.id, &missing.id] {
            assert_eq!(row(&inc, id).unwrap().source, Some(Source::Fetched), "{target:?}");
        }
        assert_eq!(inc.manifest.totals.carried, 18, "{target:?}");
        assert!(
            inc.text.contains("is fetched: its document"),
            "{target:?}: says why: {}",
            inc.text
        );
        let out = place.flowvault(&["verify", &place.run("inc")]).await;
        assert_eq!(out.status.code(), Some(0), "{target:?}: {}", all_output(&out));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_usable_previous_run_every_flow_is_fetched_and_the_manifest_says_why() {
    let sim = start_sim(org(10)).await;
    let place = Place::new(Target::LocalTarGz).await;
    // The first night: no complete run yet.
    let first = place.export_read(&sim, "first", &["--since", "latest"]).await;
    assert_eq!(first.code, Some(0), "{}", first.text);
    assert_eq!(
        (first.manifest.since.as_deref(), first.manifest.totals.carried),
        (None, 0)
    );
    assert!(
        first
            .manifest
            .since_note
            .as_deref()
            .unwrap()
            .contains("no complete run")
    );
    assert!(first.text.contains("every flow fetched"), "{}", first.text);

    // A run that does not exist is a usage error, not a silent full run.
    let missing = place
        .export_with(&sim, "second", &["--since", &place.run("nope")])
        .await;
    let text = all_output(&missing);
    assert_eq!(missing.status.code(), Some(2), "{text}");
    assert!(text.contains("nope"), "{text}");

    // `--full-every`: the last full run is older than that, so this one is full.
    let due = place
        .export_read(&sim, "third", &["--since", "latest", "--full-every", "0s"])
        .await;
    assert_eq!(due.code, Some(0));
    assert_eq!(due.manifest.totals.carried, 0);
    assert!(due.manifest.since_note.as_deref().unwrap().contains("full run is due"));
    assert_eq!(due.manifest.last_full_run.as_ref().unwrap().run_id, "third");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_no_listed_field_shows_is_carried_stale_until_the_next_full_run() {
    let sim = start_sim(org(10)).await;
    let place = Place::new(Target::LocalTarGz).await;
    assert_eq!(place.export_read(&sim, "first", &[]).await.code, Some(0));
    let id = sim.flows()[2].id().to_string();
    sim.update_flow(&id, |f| f.edit_unlisted(r#"{"edited":"without a trace"}"#.into()));
    let doc = |run: &Run| -> String {
        let (_, bytes) = run.documents.iter().find(|(p, _)| p.contains(&id)).unwrap();
        String::from_utf8_lossy(bytes).into_owned()
    };
    let inc = place.export_read(&sim, "inc", &["--since", "latest"]).await;
    assert!(
        !doc(&inc).contains("without a trace"),
        "the change signal cannot see it (README says so)"
    );
    let full = place
        .export_read(&sim, "weekly", &["--since", "latest", "--full-every", "0s"])
        .await;
    assert!(doc(&full).contains("without a trace"), "the full run catches it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_yaml_the_unchanged_flows_yaml_is_carried_too() {
    let sim = start_sim(org(12)).await;
    let place = Place::new(Target::LocalTarGz).await;
    let first = place.export_read(&sim, "first", &["--yaml"]).await;
    assert_eq!(first.code, Some(0), "{}", first.text);
    let jobs = sim.stats().export_jobs.load(Ordering::Relaxed);
    let inc = place.export_read(&sim, "inc", &["--yaml", "--since", "latest"]).await;
    assert_eq!(inc.code, Some(0), "{}", inc.text);
    assert_eq!(
        sim.stats().export_jobs.load(Ordering::Relaxed),
        jobs,
        "no export job for unchanged flows"
    );
    let yaml = |run: &Run| -> BTreeMap<String, Vec<u8>> {
        run.documents
            .iter()
            .filter(|(p, _)| p.ends_with(".yaml"))
            .map(|(p, b)| (p.clone(), b.clone()))
            .collect()
    };
    assert!(!yaml(&first).is_empty());
    assert_eq!(yaml(&inc), yaml(&first));
}
