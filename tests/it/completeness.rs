//! An archive is complete or says it is not. Each case makes the simulated org hostile in one way
//! the real API documents or hints at, runs the real binary, and checks the promise: every flow
//! that exists at the end of the run is `exported` (or `not_found` if deleted), or the manifest
//! says `complete: false` with the reason and the exit code is not 0; stored bytes match the rows.

use crate::support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use flowvault::manifest::Outcome;
use flowvault::sim::{Fault, ListingChange, OversizePage, SimConfig, SimRateLimit, SimServer, generate_org};
use support::targets::{ALL_TARGETS, Run, Target, export_to};
use support::*;

/// The promise, for a run that must end complete: exit 0, every flow the org holds now is
/// exported with its bytes stored, the rest are `not_found`, and nothing else was stored.
fn assert_complete_and_true(run: &Run, sim: &SimServer, case: &str) {
    assert_eq!(run.code, Some(0), "{case}: {}", run.text);
    let m = &run.manifest;
    assert!(m.complete, "{case}: {:?}", m.incomplete_reason);
    assert_eq!(m.listing.discrepancy, None, "{case}");
    for flow in sim.flows() {
        let row = m
            .flows
            .iter()
            .find(|r| r.id == flow.id())
            .unwrap_or_else(|| panic!("{case}: flow {} exists but has no row", flow.id()));
        assert_eq!(row.outcome, Outcome::Exported, "{case}: {row:?}");
        let doc = &run.documents[row.documents[0].path.as_str()];
        assert_eq!(
            Some(row.documents[0].sha256.as_str()),
            Some(sha256_hex(doc).as_str()),
            "{case}"
        );
        assert_document_matches(doc, sim);
    }
    let existing: Vec<String> = sim.flows().iter().map(|f| f.id().to_string()).collect();
    for row in m.flows.iter().filter(|r| !existing.contains(&r.id)) {
        assert_eq!(
            row.outcome,
            Outcome::NotFound,
            "{case}: a flow gone from the org: {row:?}"
        );
    }
    assert_eq!(
        run.documents.len() as u64,
        document_count(m),
        "{case}: no stray documents"
    );
}

fn every_nth_id(config: &SimConfig, ids: &[usize]) -> Vec<String> {
    ids.iter().map(|i| config.flows[*i].id().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_deleted_while_the_listing_pages_do_not_hide_the_flows_after_them() {
    for target in ALL_TARGETS {
        // 250 flows in pages of 100; after page 1 is served, three of its flows are deleted, so
        // the first rows of page 2 move onto page 1 and a single pass never serves them.
        let mut config = org(250);
        config.max_page_size = 100;
        let deleted = every_nth_id(&config, &[5, 10, 20]);
        config.listing_changes = vec![ListingChange {
            after_pages: 1,
            delete: deleted.clone(),
            create: Vec::new(),
        }];
        let sim = start_sim(config).await;
        let run = export_to(&sim, target, &["--page-size", "100"]).await;
        let case = format!("{target:?}");
        assert_complete_and_true(&run, &sim, &case);
        assert_eq!(sim.flows().len(), 247);
        assert!(
            run.manifest.listing.passes.len() >= 2,
            "{case}: the listing was confirmed"
        );
        assert!(
            run.manifest.listing.passes.iter().skip(1).any(|p| p.new_flows > 0),
            "{case}: a later pass found what the first missed: {:?}",
            run.manifest.listing.passes
        );
        assert!(
            run.manifest
                .flows
                .iter()
                .any(|r| r.flow_type == "BOT" && r.outcome == Outcome::Exported),
            "{case}: bot flows are listed (virtualAgentEnabled is never sent)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_created_while_the_listing_pages_are_found_and_exported() {
    for target in [Target::LocalTarGz, Target::SeaweedObjects] {
        let mut config = org(60);
        config.max_page_size = 25;
        config.listing_changes = vec![ListingChange {
            after_pages: 2,
            delete: Vec::new(),
            create: generate_org(3, 991, false),
        }];
        let sim = start_sim(config).await;
        let run = export_to(&sim, target, &["--page-size", "25"]).await;
        assert_complete_and_true(&run, &sim, &format!("{target:?}"));
        assert_eq!(run.manifest.totals.exported, 63);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_serves_fewer_rows_than_the_page_size_it_reports_loses_nothing() {
    for target in [Target::LocalObjects, Target::MotoTarGz] {
        // Asked for 500, it serves 100 and reports pageSize 500, pageCount 2.
        let mut config = org(520);
        config.max_page_size = 100;
        config.oversize_page = OversizePage::SilentClamp;
        let sim = start_sim(config).await;
        let run = export_to(&sim, target, &[]).await;
        let case = format!("{target:?}");
        assert_complete_and_true(&run, &sim, &case);
        assert_eq!(run.manifest.totals.exported, 520, "{case}");
        assert!(run.text.contains("paging by 100"), "{case}: {}", run.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_size_refused_after_the_first_page_falls_back_and_loses_nothing() {
    let mut config = org(130);
    config.max_page_size = 50;
    config.oversize_from_page = 2;
    let sim = start_sim(config).await;
    let run = export_to(&sim, Target::LocalTarGz, &["--page-size", "100"]).await;
    assert_complete_and_true(&run, &sim, "refused on page 2");
    assert!(run.text.contains("refused page size 100 on page 2"), "{}", run.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_second_tokens_survive_the_default_pace_and_long_retry_after_pauses() {
    // At the default 300/min, 20 flows take about 4 s: every token expires mid-run.
    let mut config = org(20);
    config.token_lifetime = Duration::from_secs(2);
    let sim = start_sim(config).await;
    let run = export_to(&sim, Target::LocalTarGz, &["--rate-limit", "300/min"]).await;
    assert_complete_and_true(&run, &sim, "default pace");
    assert!(sim.stats().tokens_issued.load(Ordering::SeqCst) >= 2);

    // Throttled with 3 s Retry-After pauses, longer than a token lives.
    let mut config = org(40);
    config.token_lifetime = Duration::from_secs(2);
    config.rate_limit = Some(SimRateLimit {
        requests: 15,
        window: Duration::from_secs(1),
    });
    config.retry_after_override = Some(3);
    let sim = start_sim(config).await;
    let run = export_to(&sim, Target::LocalObjects, &["--rate-limit", "off"]).await;
    assert_complete_and_true(&run, &sim, "3 s pauses");
    assert!(sim.stats().throttled.load(Ordering::SeqCst) > 0, "the pauses happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_on_a_503_is_honoured_and_never_cut_short() {
    let mut config = org(4);
    let id = config.flows[1].id().to_string();
    config
        .faults
        .insert(id.clone(), vec![Fault::Unavailable(2), Fault::Unavailable(1)]);
    let sim = start_sim(config).await;
    let run = export_to(&sim, Target::LocalTarGz, &[]).await;
    assert_complete_and_true(&run, &sim, "503 + Retry-After");
    let row = run.manifest.flows.iter().find(|r| r.id == id).unwrap();
    assert_eq!(row.attempts, Some(3));
    assert!(run.text.contains("Retry-After 2.0s"), "{}", run.text);
    let times = sim.stats().configuration_times.lock().unwrap()[&id].clone();
    assert_eq!(times.len(), 3);
    assert!(times[1] - times[0] >= Duration::from_secs(2), "{times:?}");
    assert!(times[2] - times[1] >= Duration::from_secs(1), "{times:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_answering_410_gone_is_recorded_not_found() {
    let mut config = org(6);
    let gone = config.flows[2].id().to_string();
    config.deleted_after_listing.insert(gone.clone());
    config.deleted_answers_gone = true;
    let sim = start_sim(config).await;
    let run = export_to(&sim, Target::LocalObjects, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.text);
    let row = run.manifest.flows.iter().find(|r| r.id == gone).unwrap();
    assert_eq!(row.outcome, Outcome::NotFound);
    assert!(run.manifest.complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_row_that_is_not_a_flow_is_a_failed_row_and_the_run_is_incomplete() {
    let mut config = org(5);
    config.malformed_rows = vec![serde_json::json!(42), serde_json::json!({"name": "no id"})];
    let sim = start_sim(config).await;
    let run = export_to(&sim, Target::LocalTarGz, &[]).await;
    assert_eq!(run.code, Some(3), "{}", run.text);
    let m = &run.manifest;
    assert!(!m.complete);
    assert_eq!(m.listing.malformed, 2);
    assert_eq!(m.listing.discrepancy, None, "the rows are counted, not a listing gap");
    assert_eq!(m.totals.failed, 2);
    assert!(m.incomplete_reason.as_deref().unwrap().contains("not exported"));
    assert_eq!(m.totals.exported, 5);
    assert!(
        m.flows
            .iter()
            .any(|r| r.outcome == Outcome::Failed && r.error.as_deref().unwrap().contains("not a JSON object"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_revoked_mid_run_keeps_what_it_stored_in_objects_format() {
    for target in [Target::LocalObjects, Target::SeaweedObjects] {
        let mut config = org(30);
        config.revoke_after_requests = Some(12);
        let sim = start_sim(config).await;
        let run = export_to(&sim, target, &["--concurrency", "2"]).await;
        let case = format!("{target:?}");
        assert_eq!(run.code, Some(1), "{case}: {}", run.text);
        let m = &run.manifest;
        assert!(!m.complete);
        assert!(m.incomplete_reason.as_deref().unwrap().contains("401"), "{case}");
        assert!(m.totals.exported > 0, "{case}: what was fetched is kept");
        assert_eq!(m.totals.listed, 30, "{case}");
        for row in m.flows.iter().filter(|r| r.outcome == Outcome::Exported) {
            let doc = &run.documents[row.documents[0].path.as_str()];
            assert_eq!(
                Some(row.documents[0].sha256.as_str()),
                Some(sha256_hex(doc).as_str()),
                "{case}"
            );
        }
        assert_eq!(run.documents.len() as u64, document_count(m), "{case}");
    }
}
