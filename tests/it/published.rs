//! What runs in production is backed up, with the org it came from: published versions beside
//! drafts (one request when they are one version), Archy YAML from export jobs that survive the
//! exit-code-107 disguise, the org's identity and the wrong-org guard, and flows of divisions the
//! client cannot list reported, not silently missing.

use crate::support;

use std::sync::atomic::Ordering;

use flowvault::manifest::{Content, FlowRecord, Outcome};
use flowvault::sim::{ConfigSource, SimConfig, SimFlow, SimServer, archy_yaml, generate_org};
use support::targets::{ALL_TARGETS, Run, Target, export_to};
use support::*;

/// Three flows: one whose saved version is the published one, one with an unpublished draft,
/// one never published.
fn three_kinds() -> SimConfig {
    let mut flows = generate_org(3, 5, false)
        .into_iter()
        .map(|f| SimFlow { published: None, ..f });
    let same = flows.next().unwrap();
    let draft = flows
        .next()
        .unwrap()
        .with_draft(ConfigSource::Literal(r#"{"draft":true,"tasks":[]}"#.into()));
    let unpublished = flows.next().unwrap().never_published();
    SimConfig::with_flows(vec![same, draft, unpublished], CLIENT_ID, CLIENT_SECRET)
}

fn row<'a>(run: &'a Run, sim: &SimServer, i: usize) -> &'a FlowRecord {
    let id = sim.flows()[i].id().to_string();
    run.manifest
        .flows
        .iter()
        .find(|r| r.id == id)
        .expect("a row for every flow")
}

/// The `configuration` member of a stored document, as served.
fn configuration_of(document: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(document).expect("a document is JSON");
    let raw: &serde_json::value::RawValue = serde_json::from_slice::<
        std::collections::HashMap<String, &serde_json::value::RawValue>,
    >(document)
    .unwrap()["configuration"];
    assert!(v.get("flow").is_some());
    raw.get().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draft_is_stored_beside_the_published_version_and_one_version_costs_one_request() {
    for target in ALL_TARGETS {
        let sim = start_sim(three_kinds()).await;
        let run = export_to(&sim, target, &[]).await;
        let case = format!("{target:?}");
        assert_eq!(run.code, Some(0), "{case}: {}", run.text);
        assert_eq!(run.manifest.schema, "flowvault.manifest/v2");
        assert_eq!(run.manifest.content, "both");
        let flows = sim.flows();

        let same = row(&run, &sim, 0);
        assert_eq!(same.documents.len(), 1, "{case}: saved = published is one document");
        let doc = &same.documents[0];
        assert_eq!(doc.contents, vec![Content::Latest, Content::Published], "{case}");
        assert_eq!(doc.version.as_deref(), flows[0].published_version(), "{case}");
        assert_eq!(
            configuration_of(&run.documents[&doc.path]),
            flows[0].configuration_json(),
            "{case}"
        );

        let draft = row(&run, &sim, 1);
        let latest = draft.document(Content::Latest).expect("the draft is stored");
        let published = draft
            .document(Content::Published)
            .expect("the published version is stored");
        assert_ne!(latest.path, published.path, "{case}");
        assert!(
            published.path.ends_with(".published.json"),
            "{case}: {}",
            published.path
        );
        assert_eq!(latest.version.as_deref(), flows[1].saved_version(), "{case}");
        assert_eq!(published.version.as_deref(), flows[1].published_version(), "{case}");
        assert_eq!(
            configuration_of(&run.documents[&latest.path]),
            r#"{"draft":true,"tasks":[]}"#,
            "{case}"
        );
        let want = flows[1]
            .version_configuration(flows[1].published_version().unwrap())
            .unwrap();
        assert_eq!(configuration_of(&run.documents[&published.path]), want, "{case}");
        assert_ne!(latest.sha256, published.sha256, "{case}");

        let unpublished = row(&run, &sim, 2);
        assert_eq!(unpublished.documents.len(), 1, "{case}");
        assert_eq!(unpublished.documents[0].contents, vec![Content::Latest], "{case}");

        let per_flow = sim.stats().configuration_times.lock().unwrap().clone();
        let asked = |i: usize| per_flow.get(flows[i].id()).map_or(0, Vec::len);
        assert_eq!((asked(0), asked(1), asked(2)), (1, 2, 1), "{case}: requests per flow");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_latest_stores_what_it_always_did_and_published_stores_what_runs() {
    let sim = start_sim(three_kinds()).await;
    let run = export_to(&sim, Target::LocalTarGz, &["--content", "latest"]).await;
    assert_eq!(run.code, Some(0), "{}", run.text);
    assert_eq!(
        sim.stats().configuration_requests.load(Ordering::Relaxed),
        3,
        "one request per flow"
    );
    for r in &run.manifest.flows {
        assert_eq!(r.documents.len(), 1);
        assert_eq!(r.documents[0].contents, vec![Content::Latest]);
        assert!(
            r.documents[0].path.ends_with(&format!("--{}.json", r.id)),
            "{}",
            r.documents[0].path
        );
    }
    assert_eq!(
        configuration_of(&run.documents[&row(&run, &sim, 1).documents[0].path]),
        r#"{"draft":true,"tasks":[]}"#
    );

    let sim = start_sim(three_kinds()).await;
    let run = export_to(&sim, Target::LocalObjects, &["--content", "published"]).await;
    assert_eq!(run.code, Some(0), "{}", run.text);
    let flows = sim.flows();
    let draft = row(&run, &sim, 1);
    assert_eq!(draft.documents.len(), 1);
    assert_eq!(draft.documents[0].contents, vec![Content::Published]);
    let want = flows[1]
        .version_configuration(flows[1].published_version().unwrap())
        .unwrap();
    assert_eq!(configuration_of(&run.documents[&draft.documents[0].path]), want);
    let unpublished = row(&run, &sim, 2);
    assert_eq!(
        unpublished.documents[0].contents,
        vec![Content::Latest],
        "a flow never published still has its latest, so it is not lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifest_names_the_org_and_s3_objects_carry_its_id() {
    for target in [Target::MotoTarGz, Target::SeaweedObjects] {
        let sim = start_sim(org(4)).await;
        let run = export_to(&sim, target, &[]).await;
        assert_eq!(run.code, Some(0), "{}", run.text);
        let org = run.manifest.organization.clone().expect("the manifest names the org");
        assert_eq!(org.third_party_org_name.as_deref(), Some("sim-org"));
        assert!(!org.id.is_empty());
        let s3 = run.s3.as_ref().unwrap();
        let key = match target {
            Target::MotoTarGz => "c/r/flows.tar.gz".to_string(),
            _ => format!("c/r/{}", run.manifest.flows[0].documents[0].path),
        };
        for k in [key.as_str(), "c/r/manifest.json"] {
            assert_eq!(
                s3.metadata(k).await.get("flowvault-org-id"),
                Some(&org.id),
                "{target:?} {k}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_org_stops_a_run_on_the_wrong_org_before_anything_is_listed() {
    let sim = start_sim(org(5)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(export_cmd(&sim, dir.path(), "r").args(["--expect-org", "acme-prod"])).await;
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("wrong org"))
        .expect("one line says so");
    assert!(
        line.contains("acme-prod") && line.contains("sim-org"),
        "names both orgs: {line}"
    );
    assert_eq!(
        sim.stats().list_requests.load(Ordering::Relaxed),
        0,
        "nothing was listed"
    );
    assert_eq!(sim.stats().configuration_requests.load(Ordering::Relaxed), 0);
    assert!(!dir.path().join("r").exists(), "nothing was written");

    let by_name = run(export_cmd(&sim, dir.path(), "ok").env("FLOWVAULT_EXPECT_ORG", "SIM-ORG")).await;
    assert_eq!(by_name.status.code(), Some(0), "{}", all_output(&by_name));
    let org_id = read_manifest(&dir.path().join("ok")).organization.unwrap().id;
    let by_id = run(export_cmd(&sim, dir.path(), "ok2").args(["--expect-org", &org_id])).await;
    assert_eq!(by_id.status.code(), Some(0), "{}", all_output(&by_id));
}

/// An org where two flows share a name (an export zip cannot tell them apart) and one is never
/// published, with export jobs that first fail with the exit-code-107 disguise.
fn yaml_org(throttled_jobs: u32) -> SimConfig {
    let mut config = org(9);
    let twin = config.flows[0].meta["name"].clone();
    config.flows[7].meta["name"] = twin;
    config.export_jobs_throttled = throttled_jobs;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yaml_is_stored_for_every_published_flow_and_survives_the_107_disguise() {
    for target in [Target::LocalTarGz, Target::SeaweedObjects] {
        let sim = start_sim(yaml_org(2)).await;
        let run = export_to(
            &sim,
            target,
            &["--yaml", "--yaml-batch", "4", "--yaml-retry-wait", "50ms"],
        )
        .await;
        let case = format!("{target:?}");
        assert_eq!(run.code, Some(0), "{case}: {}", run.text);
        assert!(run.manifest.complete && run.manifest.yaml, "{case}");
        for flow in sim.flows() {
            let r = run.manifest.flows.iter().find(|r| r.id == flow.id()).unwrap();
            assert_eq!(r.outcome, Outcome::Exported, "{case}");
            match flow.published_version() {
                Some(v) => {
                    let doc = r
                        .document(Content::Yaml)
                        .unwrap_or_else(|| panic!("{case}: YAML of {}", r.id));
                    assert!(doc.path.ends_with(".yaml"), "{case}");
                    assert_eq!(doc.version.as_deref(), Some(v));
                    assert_eq!(
                        run.documents[&doc.path],
                        archy_yaml(&flow, v).into_bytes(),
                        "{case}: {}",
                        r.id
                    );
                    assert_eq!(doc.sha256, sha256_hex(&run.documents[&doc.path]), "{case}");
                }
                None => assert!(r.document(Content::Yaml).is_none(), "{case}: never published, no YAML"),
            }
        }
        assert!(
            sim.stats().export_jobs.load(Ordering::Relaxed) > 3,
            "{case}: throttled jobs were retried and the ambiguous batch split"
        );
        assert!(
            run.text.contains("exit code 107") || run.text.contains("Exit code 107"),
            "{case}: the retry is logged"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yaml_that_cannot_be_had_leaves_the_json_and_says_the_run_is_incomplete() {
    let sim = start_sim(yaml_org(10_000)).await;
    let run = export_to(&sim, Target::LocalObjects, &["--yaml", "--yaml-retry-wait", "10ms"]).await;
    assert_eq!(run.code, Some(3), "{}", run.text);
    assert!(!run.manifest.complete);
    for flow in sim.flows() {
        let r = run.manifest.flows.iter().find(|r| r.id == flow.id()).unwrap();
        if flow.published_version().is_some() {
            assert_eq!(r.outcome, Outcome::Failed);
            assert!(r.error.as_deref().unwrap().contains("YAML"), "{:?}", r.error);
            assert!(r.document(Content::Latest).is_some(), "its JSON is kept");
        } else {
            assert_eq!(r.outcome, Outcome::Exported);
        }
    }
    assert_eq!(
        run.documents.len() as u64,
        document_count(&run.manifest),
        "no stray documents"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_in_divisions_the_client_cannot_list_are_reported_not_silently_missing() {
    let mut config = org(6);
    config.hidden_flows = generate_org(2, 99, false);
    let hidden: Vec<String> = config.hidden_flows.iter().map(|f| f.id().to_string()).collect();
    let sim = start_sim(config).await;
    let run = export_to(&sim, Target::LocalTarGz, &[]).await;
    assert_eq!(run.code, Some(0), "a heuristic alone never fails a run: {}", run.text);
    let unseen = run.manifest.unseen.clone().expect("the check is recorded");
    assert!(unseen.checked);
    let mut ids: Vec<String> = unseen.flows.iter().map(|f| f.id.clone()).collect();
    ids.sort();
    let mut want = hidden.clone();
    want.sort();
    assert_eq!(ids, want);
    assert!(run.manifest.flows.iter().all(|r| !hidden.contains(&r.id)), "not rows");
    assert!(run.text.contains("did not return"), "a warning is logged: {}", run.text);

    let mut config = org(3);
    config.flow_search_denied = true;
    let sim = start_sim(config).await;
    let run = export_to(&sim, Target::LocalTarGz, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.text);
    let unseen = run.manifest.unseen.clone().unwrap();
    assert!(!unseen.checked);
    assert!(unseen.note.unwrap().contains("architect:flow:search"));
}
