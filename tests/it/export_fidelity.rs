//! The export as the real API behaves: export jobs' files matched by the `fileName` each entry
//! names, a deleted flow told apart from the exit-code-107 disguise, a configuration 404 confirmed
//! against the flow before "deleted", the page-size fallback said once at info (and remembered by
//! the next incremental run, and followed by `plan`), and a demo that reads without warnings.

use crate::support;

use std::sync::atomic::Ordering;

use flowvault::manifest::{Content, Outcome};
use flowvault::sim::{OversizePage, archy_yaml};
use support::targets::{Place, Target, export_to};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zip_named_by_file_name_is_matched_exactly_even_when_two_flows_share_a_name() {
    let mut config = org(9);
    let twin = config.flows[0].meta["name"].clone();
    config.flows[7].meta["name"] = twin;
    let sim = start_sim(config).await;
    let run = export_to(&sim, Target::LocalObjects, &["--yaml", "--yaml-batch", "25"]).await;
    assert_eq!(run.code, Some(0), "{}", run.text);
    for flow in sim.flows() {
        let Some(v) = flow.published_version() else { continue };
        let r = run.manifest.flows.iter().find(|r| r.id == flow.id()).unwrap();
        let doc = r.document(Content::Yaml).expect("YAML of every published flow");
        assert_eq!(run.documents[&doc.path], archy_yaml(&flow, v).into_bytes(), "{}", r.id);
    }
    assert_eq!(
        sim.stats().export_jobs.load(Ordering::Relaxed),
        1,
        "one job for the whole batch: no split to tell the twins apart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_flows_could_not_find_is_not_retried_five_times() {
    let mut config = org(6);
    let gone = config
        .flows
        .iter()
        .find(|f| f.published_version().is_some())
        .map(|f| f.id().to_string())
        .unwrap();
    config.deleted_after_fetch.insert(gone.clone());
    let published = config.flows.iter().filter(|f| f.published_version().is_some()).count() as u64;
    let sim = start_sim(config).await;
    let run = export_to(
        &sim,
        Target::LocalObjects,
        &[
            "--content",
            "latest",
            "--yaml",
            "--yaml-batch",
            "1",
            "--yaml-retry-wait",
            "10ms",
        ],
    )
    .await;
    assert_eq!(
        sim.stats().export_jobs.load(Ordering::Relaxed),
        published,
        "one job per published flow: the deleted one is not retried"
    );
    let row = run.manifest.flows.iter().find(|r| r.id == gone).unwrap();
    assert!(row.document(Content::Yaml).is_none());
    assert!(
        row.document(Content::Latest).is_some(),
        "its JSON, fetched before it went, stays"
    );
    assert!(row.error.as_deref().unwrap_or_default().contains("deleted"), "{row:?}");
    assert_eq!(
        run.code,
        Some(0),
        "a flow deleted during the run is no failure: {}",
        run.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_on_a_configuration_of_a_flow_that_still_exists_is_not_not_found() {
    let mut config = org(4);
    let id = config.flows[1].id().to_string();
    let meta = config.flows[1].meta.as_object_mut().unwrap();
    meta.remove("savedVersion");
    let sim = start_sim(config).await;
    let run = export_to(&sim, Target::LocalTarGz, &["--content", "latest"]).await;
    let row = run.manifest.flows.iter().find(|r| r.id == id).unwrap();
    assert_eq!(row.outcome, Outcome::Failed, "{row:?}");
    assert!(row.error.as_deref().unwrap().contains("still exists"), "{row:?}");
    assert_eq!(run.code, Some(3), "{}", run.text);
}

/// An org that refuses page sizes above 100 with 400, as the demo's does.
fn refusing_org(n: usize) -> flowvault::sim::SimConfig {
    let mut config = org(n);
    config.max_page_size = 100;
    config.oversize_page = OversizePage::Reject;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_counts_every_flow_of_an_org_that_refuses_page_size_500() {
    let sim = start_sim(refusing_org(230)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(flowvault()
        .arg("plan")
        .arg("--to")
        .arg(dir.path())
        .env("FLOWVAULT_API_URL", sim.url())
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", CLIENT_ID)
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", CLIENT_SECRET))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("flows:        230 ("), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_size_fallback_is_said_once_at_info_not_as_a_warning() {
    let sim = start_sim(refusing_org(230)).await;
    let run = export_to(&sim, Target::LocalObjects, &["--log-level", "info"]).await;
    assert_eq!(run.code, Some(0), "{}", run.text);
    assert_eq!(run.manifest.totals.exported, 230);
    assert!(!run.text.contains("WARN"), "{}", run.text);
    assert_eq!(run.text.matches("refused page size 500").count(), 1, "{}", run.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_run_starts_at_the_page_size_the_previous_run_settled_on() {
    let sim = start_sim(refusing_org(150)).await;
    let place = Place::new(Target::LocalTarGz).await;
    let first = place.export_read(&sim, "first", &["--log-level", "info"]).await;
    assert_eq!(first.code, Some(0), "{}", first.text);
    let second = place
        .export_read(&sim, "second", &["--since", "latest", "--log-level", "info"])
        .await;
    assert_eq!(second.code, Some(0), "{}", second.text);
    assert!(!second.text.contains("refused page size"), "{}", second.text);
    assert!(
        second.text.contains("the previous run's listing settled on"),
        "{}",
        second.text
    );
    assert!(
        second.manifest.listing.passes.iter().all(|p| p.page_size == 100),
        "{:?}",
        second.manifest.listing.passes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_no_warning_on_a_healthy_simulated_org() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(flowvault().current_dir(dir.path()).args(["demo", "--flows", "60"])).await;
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("WARN"), "{text}");
    assert!(text.contains("next:"), "{text}");
}
