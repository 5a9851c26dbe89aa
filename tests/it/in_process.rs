//! In-process specifications of the library's layers, without the binary: every sink passes one
//! conformance suite (memory, local directory, SeaweedFS; tar-gz and objects), the flow lister
//! proves its listing against a changing simulated org, and the pipeline runs from the simulated
//! org into a memory sink.

use crate::support;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use flowvault::export::{self, Ending, ExportOptions, StopSignal};
use flowvault::genesys::{ClientConfig, FlowLister, GenesysClient, ListOptions, Listed, RetryConfig};
use flowvault::manifest::Outcome;
use flowvault::secret::Secret;
use flowvault::sim::{ListingChange, SimServer};
use flowvault::sink::local::LocalStore;
use flowvault::sink::memory::MemoryStore;
use flowvault::sink::s3::{S3Options, S3Store};
use flowvault::sink::{Format, RunStore, Spooled, with_format};
use support::s3::{ACCESS_KEY, BUCKET, S3Server, SECRET_KEY};
use support::*;

/// A store under test and a way to read back what it holds.
enum Store {
    /// One memory store per run id.
    Memory(std::sync::Mutex<BTreeMap<String, MemoryStore>>),
    Local(tempfile::TempDir),
    S3(S3Server),
}

impl Store {
    async fn open(&self, run_id: &str) -> Arc<dyn RunStore> {
        match self {
            Store::Memory(runs) => Arc::new(runs.lock().unwrap().entry(run_id.to_string()).or_default().clone()),
            Store::Local(dir) => Arc::new(LocalStore::open(dir.path(), run_id).await.unwrap()),
            Store::S3(s3) => {
                let options = S3Options {
                    endpoint: Some(s3.endpoint.clone()),
                    force_path_style: true,
                    region: Some("us-east-1".into()),
                    static_credentials: Some((ACCESS_KEY.into(), Secret::new(SECRET_KEY))),
                    ..S3Options::default()
                };
                Arc::new(S3Store::open(BUCKET, "conf", run_id, &options).await.unwrap())
            }
        }
    }

    async fn read(&self, run_id: &str) -> BTreeMap<String, Vec<u8>> {
        match self {
            Store::Memory(runs) => runs.lock().unwrap()[run_id]
                .objects()
                .into_iter()
                .map(|(k, v)| (k, v.to_vec()))
                .collect(),
            Store::Local(dir) => {
                let run = dir.path().join(run_id);
                if run.exists() { read_tree(&run) } else { BTreeMap::new() }
            }
            Store::S3(s3) => {
                let prefix = format!("conf/{run_id}/");
                let mut out = BTreeMap::new();
                for key in s3.keys(&prefix).await {
                    out.insert(key.trim_start_matches(&prefix).to_string(), s3.get(&key).await);
                }
                out
            }
        }
    }
}

fn documents() -> Vec<(String, Bytes)> {
    (0..5)
        .map(|i| {
            (
                format!("flows/bot/flow-{i}--id{i}.json"),
                Bytes::from(format!("{{\"n\":{i}}}\n")),
            )
        })
        .collect()
}

/// The suite every store passes in both formats: finish seals every document and the manifest
/// last; abort leaves no partial archive (objects stay) and still writes the manifest.
async fn conformance(store: Store, case: &str) {
    for format in [Format::TarGz, Format::Objects] {
        let run_id = format!("done-{format}");
        let mut sink = with_format(store.open(&run_id).await, format, 2);
        for (name, doc) in documents() {
            sink.put(&name, doc).await.unwrap();
        }
        assert!(sink.settle().await.unwrap().is_empty(), "{case} {format}");
        // A manifest larger than one request takes (a 50,000-flow org's), spooled to a file.
        let big = Spooled::write(|out| {
            for i in 0..(9 * 1024 * 1024 / 32) {
                write!(out, "{{\"row\":{i:020}}}\n   ")?;
            }
            Ok(())
        })
        .unwrap();
        assert!(matches!(big, Spooled::File(..)) && big.len() >= 9 * 1024 * 1024);
        sink.finish(&big).await.unwrap();
        let held = store.read(&run_id).await;
        assert!(
            held["manifest.json"][..] == big.to_bytes().unwrap()[..],
            "{case} {format}: the manifest whole"
        );
        let stored: BTreeMap<String, Vec<u8>> = match format {
            Format::TarGz => {
                let members = read_tar_gz(&held["flows.tar.gz"]);
                assert_eq!(members.last().unwrap().0, "manifest.json", "{case}: manifest last");
                members.into_iter().filter(|(n, _)| n != "manifest.json").collect()
            }
            Format::Objects => held.into_iter().filter(|(n, _)| n != "manifest.json").collect(),
        };
        let expected: BTreeMap<String, Vec<u8>> = documents().into_iter().map(|(n, d)| (n, d.to_vec())).collect();
        assert_eq!(stored, expected, "{case} {format}: every document, byte for byte");

        let run_id = format!("aborted-{format}");
        let mut sink = with_format(store.open(&run_id).await, format, 2);
        for (name, doc) in documents().into_iter().take(2) {
            sink.put(&name, doc).await.unwrap();
        }
        sink.abort(&Spooled::from(b"{\"m\":0}\n".to_vec())).await.unwrap();
        let held = store.read(&run_id).await;
        assert_eq!(held["manifest.json"], b"{\"m\":0}\n", "{case} {format}");
        let names: Vec<&String> = held.keys().filter(|k| *k != "manifest.json").collect();
        match format {
            Format::TarGz => assert!(names.is_empty(), "{case}: no partial archive: {names:?}"),
            Format::Objects => assert_eq!(names.len(), 2, "{case}: stored objects stay"),
        }
        assert_eq!(sink.keeps_documents_on_abort(), format == Format::Objects);
    }
}

#[tokio::test]
async fn the_memory_store_passes_the_sink_conformance_suite() {
    conformance(Store::Memory(Default::default()), "memory").await;
}

#[tokio::test]
async fn the_local_store_passes_the_sink_conformance_suite() {
    conformance(Store::Local(tempfile::tempdir().unwrap()), "local").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_store_passes_the_sink_conformance_suite_against_seaweedfs() {
    conformance(Store::S3(S3Server::seaweedfs().await), "seaweedfs").await;
}

#[tokio::test]
async fn a_store_that_fails_mid_run_reports_the_documents_it_lost() {
    let mut sink = with_format(Arc::new(MemoryStore::failing_after(2)), Format::Objects, 1);
    for (name, doc) in documents() {
        sink.put(&name, doc).await.unwrap();
    }
    let failures = sink.settle().await.unwrap();
    assert_eq!(failures.len(), 3);
    assert!(failures[0].error.to_string().contains("the store is full"));
}

fn client_for(sim: &SimServer) -> Arc<GenesysClient> {
    let url = url::Url::parse(sim.url()).unwrap();
    Arc::new(
        GenesysClient::connect(ClientConfig {
            api_url: url.clone(),
            login_url: url,
            client_id: CLIENT_ID.into(),
            client_secret: Secret::new(CLIENT_SECRET),
            rate_per_second: None,
            concurrency: 8,
            retry: RetryConfig::default(),
        })
        .unwrap(),
    )
}

/// Runs the lister over `sim` alone (nothing downstream: every flow counts as handled at once, so
/// the final phase runs right away); the ids it handed on, in order, and its report.
async fn list_everything(sim: &SimServer, page_size: u64) -> (Vec<String>, flowvault::genesys::ListingReport) {
    let mut lister = FlowLister::new(
        client_for(sim),
        ListOptions {
            page_size,
            ..ListOptions::default()
        },
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel(1000);
    let (_handled_tx, handled_rx) = tokio::sync::watch::channel(u64::MAX);
    lister.run(tx, handled_rx).await.unwrap();
    let mut ids = Vec::new();
    while let Ok(Listed::Flow(f)) = rx.try_recv() {
        ids.push(f.id);
    }
    (ids, lister.report().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lister_hands_on_every_flow_once_even_when_deletions_shift_the_pages() {
    let mut config = org(95);
    config.max_page_size = 20;
    let deleted: Vec<String> = config.flows[2..6].iter().map(|f| f.id().to_string()).collect();
    config.listing_changes = vec![ListingChange {
        after_pages: 1,
        delete: deleted,
        create: Vec::new(),
    }];
    let sim = start_sim(config).await;
    let (ids, report) = list_everything(&sim, 20).await;
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "each flow is handed on once");
    for f in sim.flows() {
        assert!(unique.contains(&f.id().to_string()), "flow {} was missed", f.id());
    }
    assert_eq!(report.unverified, None);
    assert!(
        report.passes.iter().skip(1).any(|p| p.new_flows > 0),
        "{:?}",
        report.passes
    );
    assert_eq!(
        report.passes.last().unwrap().new_flows,
        0,
        "the last pass confirmed the set"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_over_flows_already_handed_on_asks_for_pages_ahead_and_still_serves_each_once() {
    let mut config = org(200);
    config.max_page_size = 20;
    config.latency = std::time::Duration::from_millis(30);
    let sim = start_sim(config).await;
    let (ids, report) = list_everything(&sim, 20).await;
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (200, 200), "each flow is handed on once");
    assert_eq!(report.unverified, None);
    assert!(report.passes.iter().all(|p| p.flows == 200), "{:?}", report.passes);
    let most = sim
        .stats()
        .listing_in_flight
        .1
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        most >= 2,
        "pages are asked for ahead, not one round trip each: {most} at most at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_exports_the_org_into_a_memory_sink_and_seals_it() {
    let mut config = org(40);
    let gone = config.flows[7].id().to_string();
    config.deleted_after_listing.insert(gone.clone());
    let sim = start_sim(config).await;
    let client = client_for(&sim);
    client.authenticate().await.unwrap();
    let store = MemoryStore::new();
    let sink = with_format(Arc::new(store.clone()), Format::TarGz, 1);
    let options = ExportOptions {
        run_id: "mem".into(),
        format: Format::TarGz,
        destination: "memory".into(),
        region: None,
        type_filter: Vec::new(),
        page_size: 500,
        max_list_passes: 5,
        concurrency: 8,
        shutdown_grace: std::time::Duration::from_secs(1),
        content: export::ContentMode::Both,
        kinds: flowvault::architect::KindSelection::flows_only(),
        yaml: None,
        organization: None,
        progress: None,
        since: None,
    };
    let report = export::run(client, sink, options, StopSignal::default()).await;
    assert!(matches!(report.ending, Ending::Complete), "{:?}", report.ending);
    assert!(report.manifest.flows.is_empty(), "rows are not held in memory");
    let held = store.objects();
    let m = &flowvault::manifest::Manifest::from_slice(&held["manifest.json"]).unwrap();
    assert!(m.complete && report.manifest.complete);
    assert_eq!((m.totals.exported, m.totals.not_found), (39, 1));
    assert_eq!(m.totals, report.manifest.totals);
    assert_eq!(
        m.flows.iter().find(|r| r.id == gone).unwrap().outcome,
        Outcome::NotFound
    );
    assert_eq!(
        &held["manifest.json"][..],
        &m.to_bytes()[..],
        "written as a whole manifest is"
    );
    assert_eq!(report.stored_bytes, m.documents().map(|(_, d)| d.bytes).sum::<u64>());
    assert_archive_matches_manifest(&held["flows.tar.gz"], m);
}
