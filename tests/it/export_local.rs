//! Exporting a simulated org to local disk, as a user runs it: the binary, real HTTP, real files.

use crate::support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use flowvault::manifest::Outcome;
use flowvault::sim::{SimConfig, SimRateLimit, generate_org};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flow_is_exported_with_its_configuration_byte_for_byte() {
    let sim = start_sim(org(45)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut export_cmd(&sim, dir.path(), "run1")).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));

    let run_dir = dir.path().join("run1");
    let manifest = read_manifest(&run_dir);
    assert!(manifest.complete);
    assert_eq!(manifest.totals.listed, 45);
    assert_eq!(manifest.totals.exported, 45);
    assert_eq!(manifest.listing.api_total, Some(45));

    let members = read_tar_gz(&std::fs::read(run_dir.join("flows.tar.gz")).unwrap());
    assert_eq!(members.last().unwrap().0, "manifest.json");
    assert_eq!(
        members.last().unwrap().1,
        std::fs::read(run_dir.join("manifest.json")).unwrap()
    );
    let by_name: HashMap<&str, &Vec<u8>> = members.iter().map(|(n, d)| (n.as_str(), d)).collect();
    let mut ids = HashSet::new();
    for row in &manifest.flows {
        assert_eq!(row.outcome, Outcome::Exported);
        let doc = by_name[row.documents[0].path.as_str()];
        assert_eq!(Some(row.documents[0].bytes), Some(doc.len() as u64));
        assert_eq!(Some(row.documents[0].sha256.as_str()), Some(sha256_hex(doc).as_str()));
        assert_eq!(assert_document_matches(doc, &sim), row.id);
        ids.insert(row.id.clone());
    }
    assert_eq!(ids.len(), 45, "every flow once");
    assert_eq!(
        members.len() as u64,
        document_count(&manifest) + 1,
        "the documents and the manifest"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_format_writes_one_document_per_flow_and_the_manifest_last() {
    let sim = start_sim(org(30)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(export_cmd(&sim, dir.path(), "objects").args(["--format", "objects"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let run_dir = dir.path().join("objects");
    let manifest = read_manifest(&run_dir);
    let tree = read_tree(&run_dir);
    assert_eq!(
        tree.len() as u64,
        document_count(&manifest) + 1,
        "the documents and the manifest: {:?}",
        tree.keys().collect::<Vec<_>>()
    );
    for row in &manifest.flows {
        let doc = &tree[row.documents[0].path.as_str()];
        assert_eq!(Some(row.documents[0].sha256.as_str()), Some(sha256_hex(doc).as_str()));
        assert_document_matches(doc, &sim);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_edges_lose_nothing() {
    for n in [0usize, 10, 11, 21] {
        let mut config = org(n);
        config.max_page_size = 10;
        let sim = start_sim(config).await;
        let dir = tempfile::tempdir().unwrap();
        let out = run(&mut export_cmd(&sim, dir.path(), "r")).await;
        assert_eq!(out.status.code(), Some(0), "n={n}: {}", all_output(&out));
        let manifest = read_manifest(&dir.path().join("r"));
        assert_eq!(manifest.totals.exported, n as u64, "n={n}");
        assert_eq!(manifest.listing.listed, n as u64);
        assert!(manifest.complete);
        assert_eq!(manifest.listing.discrepancy, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clamped_page_size_is_trusted_from_the_response() {
    let mut config = org(23);
    config.max_page_size = 5;
    config.oversize_page = flowvault::sim::OversizePage::Clamp;
    let sim = start_sim(config).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut export_cmd(&sim, dir.path(), "r")).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let manifest = read_manifest(&dir.path().join("r"));
    assert_eq!(manifest.totals.exported, 23);
    // Every listing pass (list, confirm, final) pages by the size the server reported: 5 pages.
    assert!(manifest.listing.passes.len() >= 2, "{:?}", manifest.listing.passes);
    for pass in &manifest.listing.passes {
        assert_eq!(pass.pages, 5, "{pass:?}");
    }
    assert_eq!(manifest.listing.pages, 5 * manifest.listing.passes.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_waited_out_as_retry_after_asks_and_nothing_is_lost() {
    let mut config = org(40);
    config.rate_limit = Some(SimRateLimit {
        requests: 15,
        window: Duration::from_secs(1),
    });
    let sim = start_sim(config).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(export_cmd(&sim, dir.path(), "r").args(["--concurrency", "16"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let throttled = sim.stats().throttled.load(std::sync::atomic::Ordering::Relaxed);
    assert!(throttled > 0, "the test must actually provoke 429s");
    let manifest = read_manifest(&dir.path().join("r"));
    assert_eq!(manifest.totals.exported, 40);
    assert!(all_output(&out).contains("429"), "throttling is logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_until_the_flow_is_exported() {
    let mut config = org(12);
    let ids: Vec<String> = config.flows.iter().map(|f| f.id().to_string()).collect();
    for (i, status) in [(1usize, 500u16), (4, 502), (7, 503)] {
        config.flaky.insert(ids[i].clone(), 3);
        config.flaky_status = status;
    }
    let sim = start_sim(config).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut export_cmd(&sim, dir.path(), "r")).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let manifest = read_manifest(&dir.path().join("r"));
    assert_eq!(manifest.totals.exported, 12);
    let retried = manifest.flows.iter().find(|r| r.id == ids[4]).unwrap();
    assert_eq!(retried.attempts, Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_server_errors_end_in_a_failed_row_and_exit_3() {
    let mut config = org(6);
    let bad = config.flows[2].id().to_string();
    config.flaky.insert(bad.clone(), 1000);
    let sim = start_sim(config).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(export_cmd(&sim, dir.path(), "r").args(["--max-retries", "2"])).await;
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    let manifest = read_manifest(&dir.path().join("r"));
    assert!(!manifest.complete);
    assert_eq!(manifest.totals.exported, 5);
    let row = manifest.flows.iter().find(|r| r.id == bad).unwrap();
    assert_eq!(row.outcome, Outcome::Failed);
    let error = row.error.as_deref().unwrap();
    assert!(error.contains("3 attempts") && error.contains("503"), "{error}");
    assert!(
        dir.path().join("r/flows.tar.gz").exists(),
        "the archive of the other flows is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_deleted_after_listing_is_recorded_not_found() {
    let mut config = org(8);
    let gone = config.flows[5].id().to_string();
    config.deleted_after_listing.insert(gone.clone());
    let sim = start_sim(config).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut export_cmd(&sim, dir.path(), "r")).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let manifest = read_manifest(&dir.path().join("r"));
    assert!(manifest.complete);
    assert_eq!(manifest.totals.not_found, 1);
    assert_eq!(
        manifest.flows.iter().find(|r| r.id == gone).unwrap().outcome,
        Outcome::NotFound
    );
    assert_eq!(
        sim.stats()
            .configuration_requests
            .load(std::sync::atomic::Ordering::Relaxed),
        9,
        "one request per flow, two for flow 3 (it has an unpublished draft); a 404 is not retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_token_is_refreshed_mid_run_and_nothing_is_lost() {
    let mut config = org(20);
    config.token_lifetime = Duration::from_secs(1);
    config.latency = Duration::from_millis(150);
    let sim = start_sim(config).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(export_cmd(&sim, dir.path(), "r").args(["--concurrency", "2"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let manifest = read_manifest(&dir.path().join("r"));
    assert_eq!(manifest.totals.exported, 20);
    assert!(
        sim.stats().tokens_issued.load(std::sync::atomic::Ordering::Relaxed) >= 2,
        "the token was refreshed"
    );
    assert_no_secrets(&all_output(&out), &sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awkward_names_become_safe_unique_members_that_system_tar_extracts() {
    let sim = start_sim(SimConfig::with_flows(
        generate_org(14, 9, true),
        CLIENT_ID,
        CLIENT_SECRET,
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut export_cmd(&sim, dir.path(), "r")).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let run_dir = dir.path().join("r");
    let members = read_tar_gz(&std::fs::read(run_dir.join("flows.tar.gz")).unwrap());
    let names: HashSet<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), members.len(), "member names are unique");
    for (name, _) in &members {
        assert!(!name.contains(".."), "{name}");
        assert!(!name.starts_with('/'), "{name}");
        assert!(name.chars().all(|c| !c.is_control()), "{name:?}");
        assert!(name.len() < 200, "{name}");
    }
    assert!(names.iter().any(|n| n.contains("Ünïcødé")), "unicode letters survive");

    let extract = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("tar")
        .arg("xzf")
        .arg(run_dir.join("flows.tar.gz"))
        .arg("-C")
        .arg(extract.path())
        .status()
        .expect("system tar");
    assert!(status.success());
    let tree = read_tree(extract.path());
    let manifest = read_manifest(&run_dir);
    assert_eq!(tree.len() as u64, document_count(&manifest) + 1);
    for row in &manifest.flows {
        assert_document_matches(&tree[row.documents[0].path.as_str()], &sim);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_of_an_unchanged_org_store_identical_flow_members() {
    let sim = start_sim(org(25)).await;
    let dir = tempfile::tempdir().unwrap();
    for run_id in ["a", "b"] {
        let out = run(export_cmd(&sim, dir.path(), run_id).args(["--concurrency", "7"])).await;
        assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    }
    let a = std::fs::read(dir.path().join("a/flows.tar.gz")).unwrap();
    let b = std::fs::read(dir.path().join("b/flows.tar.gz")).unwrap();
    let (ma, mb) = (read_tar_gz(&a), read_tar_gz(&b));
    // Everything before the manifest (which records its own run id and times) is identical.
    assert_eq!(ma[..ma.len() - 1], mb[..mb.len() - 1]);
    let flows_only = |bytes: &[u8]| {
        let mut enc = flowvault::sink::TarGzEncoder::new();
        let mut out = Vec::new();
        for (name, data) in read_tar_gz(bytes).iter().filter(|(n, _)| n != "manifest.json") {
            enc.append(name, data).unwrap();
            out.extend(enc.take_output());
        }
        out
    };
    assert_eq!(flows_only(&a), flows_only(&b));
    let prefix = flows_only(&a);
    assert_eq!(
        a[..prefix.len()],
        prefix[..],
        "the archive streams the same bytes up to the manifest"
    );
    assert_eq!(b[..prefix.len()], prefix[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_filters_list_only_those_types() {
    let sim = start_sim(org(42)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(export_cmd(&sim, dir.path(), "r").args(["--type", "inboundcall", "--type", "BOT,workflow"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let manifest = read_manifest(&dir.path().join("r"));
    assert_eq!(manifest.totals.exported, 6);
    let types: HashSet<&str> = manifest.flows.iter().map(|r| r.flow_type.as_str()).collect();
    assert_eq!(types, HashSet::from(["INBOUNDCALL", "BOT", "WORKFLOW"]));
    assert_eq!(manifest.listing.type_filter, vec!["inboundcall", "bot", "workflow"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_id_that_already_holds_a_run_is_refused_and_left_untouched() {
    let sim = start_sim(org(3)).await;
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run(&mut export_cmd(&sim, dir.path(), "r")).await.status.code(), Some(0));
    let before = read_tree(&dir.path().join("r"));
    let out = run(&mut export_cmd(&sim, dir.path(), "r")).await;
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a run"));
    assert_eq!(read_tree(&dir.path().join("r")), before);
}
