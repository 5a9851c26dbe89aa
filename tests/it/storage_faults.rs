//! A backup whose word is as good as its bytes: a full disk, two runs racing for one run id, a
//! frozen store, a small scratch disk, incremental runs under change, and writes refused (or
//! panicking) in any phase. Every write's error reaches its row, and the exit code, the manifest,
//! `runs` and `verify` agree.

use crate::support;

use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use flowvault::export::{self, Ending, ExportOptions, StopSignal, YamlOptions};
use flowvault::genesys::{ClientConfig, GenesysClient, RetryConfig};
use flowvault::manifest::{Content, Manifest, Outcome, Source};
use flowvault::secret::Secret;
use flowvault::sim::{ListingChange, SimConfig, SimServer};
use flowvault::sink::local::LocalStore;
use flowvault::sink::{CopySource, Format, RunStore, SinkError, Upload, with_format};
use support::s3::{BUCKET, FaultyS3, S3Fault, S3Server};
use support::*;

// ---------------------------------------------------------------------------------------------
// Helpers

/// A tmpfs for the test, or a failure that says what it needs.
fn small_disk(size: &str) -> Tmpfs {
    Tmpfs::mount(size).expect("these tests mount a small tmpfs (a full disk): run them as root, as CI does")
}

fn text_of(out: &Output) -> String {
    all_output(out)
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The S3 export command for `sim` into `to` through `endpoint` (a proxy or the server itself).
fn s3_export(sim: &SimServer, s3: &S3Server, endpoint: &str, to: &str, run_id: &str) -> tokio::process::Command {
    let mut cmd = export_cmd(sim, Path::new(to), run_id);
    cmd.envs(s3.env()).env("AWS_ENDPOINT_URL", endpoint);
    cmd
}

/// `kill -STOP` of a process, undone (`kill -CONT`) when dropped, whatever the test does.
struct Frozen(u32);

impl Frozen {
    fn stop(pid: u32) -> Frozen {
        let ok = std::process::Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -STOP {pid}");
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
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

fn pipeline_options(yaml: bool) -> ExportOptions {
    ExportOptions {
        run_id: "r".into(),
        format: Format::Objects,
        destination: "local".into(),
        region: None,
        type_filter: Vec::new(),
        page_size: 500,
        max_list_passes: 5,
        concurrency: 4,
        shutdown_grace: Duration::from_secs(1),
        content: export::ContentMode::Both,
        kinds: flowvault::architect::KindSelection::flows_only(),
        yaml: yaml.then(|| YamlOptions {
            batch_size: 4,
            retry_wait: Duration::from_millis(50),
            jobs_in_flight: 2,
        }),
        organization: None,
        progress: None,
        since: None,
    }
}

/// A store over a local directory that refuses (or panics on) the documents `bad` picks.
struct Refusing {
    inner: LocalStore,
    bad: Box<dyn Fn(&str) -> bool + Send + Sync>,
    panic: bool,
}

#[async_trait]
impl RunStore for Refusing {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn put(&self, name: &str, bytes: Bytes, content_type: &str) -> Result<(), SinkError> {
        if (self.bad)(name) {
            if self.panic {
                panic!("a write task panics on {name}");
            }
            return Err(SinkError::Store {
                message: format!("the store refused {name}"),
                retryable: false,
            });
        }
        self.inner.put(name, bytes, content_type).await
    }

    async fn create_upload(&self, name: &str, content_type: &str) -> Result<Box<dyn Upload>, SinkError> {
        self.inner.create_upload(name, content_type).await
    }

    async fn remove(&self, name: &str) -> Result<(), SinkError> {
        self.inner.remove(name).await
    }

    async fn copy(&self, name: &str, from: &CopySource, sha256: &str) -> Result<(), SinkError> {
        self.inner.copy(name, from, sha256).await
    }
}

/// An org for `--yaml` (its published flows get a YAML document each).
fn yaml_org() -> SimConfig {
    org(9)
}

/// A published flow of [`yaml_org`], whose YAML write a test refuses.
fn yaml_victim() -> String {
    let config = yaml_org();
    let flow = config.flows.iter().filter(|f| f.published_version().is_some()).nth(1);
    flow.expect("a published flow").id().to_string()
}

/// Every document the manifest names is on disk under `run_dir` with its size and SHA-256.
fn assert_documents_on_disk(run_dir: &Path, m: &Manifest) {
    for (row, doc) in m.documents() {
        let bytes = std::fs::read(run_dir.join(&doc.path))
            .unwrap_or_else(|e| panic!("{} of flow {} is on disk: {e}", doc.path, row.id));
        assert_eq!(bytes.len() as u64, doc.bytes, "{}", doc.path);
        assert_eq!(sha256_hex(&bytes), doc.sha256, "{}", doc.path);
    }
}

// ---------------------------------------------------------------------------------------------
// A full disk

/// Exports `sim` onto `disk`, which cannot take it all, and checks that nothing claims more than
/// the disk took: never exit 0, every document a row names on disk as the manifest says, a
/// manifest path printed only when one was written, and `runs` and `verify` agreeing.
async fn a_full_disk_is_never_a_complete_run(format: &str, sim: &SimServer, disk: &Tmpfs) {
    let out = run(export_cmd(sim, disk.path(), "full").args(["--format", format])).await;
    let text = text_of(&out);
    assert!(matches!(out.status.code(), Some(1 | 3)), "{format}: {text}");
    assert!(
        text.contains("No space left on device"),
        "{format}: the OS error is named: {text}"
    );
    let run_dir = disk.path().join("full");
    let manifest = std::fs::read(run_dir.join("manifest.json"))
        .ok()
        .map(|b| Manifest::from_slice(&b).expect("a manifest that was written is whole"));
    let printed = stdout_of(&out).contains(&format!("manifest: {}", run_dir.join("manifest.json").display()));
    assert_eq!(
        printed,
        manifest.is_some(),
        "{format}: a manifest path only if written: {text}"
    );
    if let Some(m) = &manifest {
        assert!(!m.complete, "{format}");
        if out.status.code() == Some(3) {
            assert!(
                m.totals.failed > 0,
                "{format}: an incomplete run names the flows it lost"
            );
        }
        match m.archive.as_deref() {
            Some(archive) => {
                let bytes = std::fs::read(run_dir.join(archive)).expect("the archive the manifest names");
                assert_archive_matches_manifest(&bytes, m);
            }
            None if format == "objects" => assert_documents_on_disk(&run_dir, m),
            None => assert_eq!(m.documents().count(), 0, "no archive: no documents claimed"),
        }
    }
    let runs = run(flowvault().args(["runs"]).arg(disk.path())).await;
    let line = stdout_of(&runs)
        .lines()
        .find(|l| l.starts_with("full "))
        .map(str::to_string);
    if let Some(line) = line {
        assert!(!line.contains(" complete "), "{format}: runs says {line}");
    }
    let verify = run(flowvault().arg("verify").arg(&run_dir)).await;
    if manifest.is_none() {
        assert_ne!(verify.status.code(), Some(0), "{format}: {}", text_of(&verify));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_on_a_full_disk_never_exit_0_and_every_row_matches_the_disk() {
    // 2 MB of flows onto 1 MiB.
    let sim = start_sim(incompressible_org(40, 50_000)).await;
    a_full_disk_is_never_a_complete_run("objects", &sim, &small_disk("1m")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tar_gz_on_a_disk_that_takes_the_archive_but_not_its_manifest_never_exits_0() {
    // The same run measured on a roomy disk: the archive fits the small one, its manifest does not.
    let sim = start_sim(org(400)).await;
    let roomy = tempfile::tempdir().unwrap();
    let out = run(&mut export_cmd(&sim, roomy.path(), "probe")).await;
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    let size = |name: &str| std::fs::metadata(roomy.path().join("probe").join(name)).unwrap().len();
    let (archive, manifest) = (size("flows.tar.gz"), size("manifest.json"));
    let disk = small_disk(&format!("{}k", (archive + manifest / 2) / 1024 + 1));
    a_full_disk_is_never_a_complete_run("tar-gz", &sim, &disk).await;
}

// ---------------------------------------------------------------------------------------------
// Two runs, one run id

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_local_exports_with_one_run_id_leave_one_intact_run_and_the_other_exits_1() {
    let mut config = org(60);
    config.latency = Duration::from_millis(5);
    let sim = start_sim(config).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut cmd_a, mut cmd_b) = (
        export_cmd(&sim, dir.path(), "same"),
        export_cmd(&sim, dir.path(), "same"),
    );
    let (a, b) = tokio::join!(run(&mut cmd_a), run(&mut cmd_b));
    let mut codes = [a.status.code(), b.status.code()];
    codes.sort();
    assert_eq!(codes, [Some(0), Some(1)], "{}\n---\n{}", text_of(&a), text_of(&b));
    let loser = if a.status.code() == Some(1) { &a } else { &b };
    assert!(text_of(loser).contains("already holds a run"), "{}", text_of(loser));
    let m = read_manifest(&dir.path().join("same"));
    assert!(m.complete);
    assert_eq!(m.totals.exported, 60);
    let verify = run(flowvault().arg("verify").arg(dir.path().join("same"))).await;
    assert_eq!(verify.status.code(), Some(0), "{}", text_of(&verify));
}

/// Two orgs' jobs started together with one run id and one prefix: one wins, its run holds its
/// own org only and verifies; the other exits 1 having written nothing of the run.
async fn two_orgs_racing_for_one_s3_run_id(s3: &S3Server, endpoint: &str) -> String {
    let mut other = SimConfig::generated(25, 7, CLIENT_ID, CLIENT_SECRET);
    other.organization["id"] = "0a0b0c0d-0000-4000-a000-000000000bbb".into();
    other.organization["thirdPartyOrgName"] = "other-org".into();
    let (sim_a, sim_b) = (start_sim(org(30)).await, start_sim(other).await);
    let to = format!("s3://{BUCKET}/race");
    let (mut cmd_a, mut cmd_b) = (
        s3_export(&sim_a, s3, endpoint, &to, "same"),
        s3_export(&sim_b, s3, endpoint, &to, "same"),
    );
    let (a, b) = tokio::join!(run(&mut cmd_a), run(&mut cmd_b));
    let mut codes = [a.status.code(), b.status.code()];
    codes.sort();
    assert_eq!(codes, [Some(0), Some(1)], "{}\n---\n{}", text_of(&a), text_of(&b));
    let (winner, loser, listed) = if a.status.code() == Some(0) {
        (&a, &b, sim_a.flows().len())
    } else {
        (&b, &a, sim_b.flows().len())
    };
    assert!(text_of(loser).contains("already holds a run"), "{}", text_of(loser));
    let m: Manifest = serde_json::from_slice(&s3.get("race/same/manifest.json").await).unwrap();
    assert!(m.complete, "{}", text_of(winner));
    assert_eq!(
        m.totals.listed, listed as u64,
        "the stored run is the winner's org alone"
    );
    let archive = s3.get("race/same/flows.tar.gz").await;
    assert_archive_matches_manifest(&archive, &m);
    let verify = run(flowvault().args(["verify", &format!("{to}/same")]).envs(s3.env())).await;
    assert_eq!(verify.status.code(), Some(0), "{}", text_of(&verify));
    format!("{}\n{}", text_of(&a), text_of(&b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_orgs_with_one_run_id_on_moto_leave_one_intact_run() {
    let s3 = S3Server::moto().await;
    two_orgs_racing_for_one_s3_run_id(&s3, &s3.endpoint.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_orgs_with_one_run_id_on_seaweedfs_leave_one_intact_run() {
    let s3 = S3Server::seaweedfs().await;
    two_orgs_racing_for_one_s3_run_id(&s3, &s3.endpoint.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_ignores_if_none_match_still_lets_one_run_claim_the_run_id() {
    // moto behind the proxy (SeaweedFS would refuse the proxied requests' signatures).
    let s3 = S3Server::moto().await;
    let proxy = FaultyS3::start(&s3.endpoint, S3Fault::IgnoreIfNoneMatch).await;
    let text = two_orgs_racing_for_one_s3_run_id(&s3, &proxy.endpoint).await;
    assert!(text.contains("ignores If-None-Match"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_run_ids_of_two_jobs_started_together_differ() {
    let sim = start_sim(org(5)).await;
    let dir = tempfile::tempdir().unwrap();
    // As a scheduler starts a job: no --run-id, so each takes the default.
    let job = || {
        let mut cmd = flowvault();
        cmd.arg("export")
            .env("GENESYSCLOUD_OAUTHCLIENT_ID", CLIENT_ID)
            .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", CLIENT_SECRET)
            .env("FLOWVAULT_API_URL", sim.url())
            .args(["--rate-limit", "off", "--to"])
            .arg(dir.path());
        cmd
    };
    let (mut cmd_a, mut cmd_b) = (job(), job());
    let (a, b) = tokio::join!(run(&mut cmd_a), run(&mut cmd_b));
    assert_eq!(
        (a.status.code(), b.status.code()),
        (Some(0), Some(0)),
        "{}{}",
        text_of(&a),
        text_of(&b)
    );
    let runs = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(runs, 2, "two runs, two run ids");
}

// ---------------------------------------------------------------------------------------------
// A frozen store

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_frozen_mid_upload_ends_the_run_with_exit_1_instead_of_hanging() {
    let s3 = S3Server::seaweedfs().await;
    let pid = s3.pid().expect("a SeaweedFS this test started");
    let sim = start_sim(incompressible_org(16, 1_000_000)).await;
    let mut cmd = s3_export(&sim, &s3, &s3.endpoint, &format!("s3://{BUCKET}/frozen"), "r");
    cmd.args(["--part-size", "5MiB", "--s3-timeout", "2s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    s3.wait_for_multipart_upload().await;
    let frozen = Frozen::stop(pid);
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("the run ends on its own while the store is frozen")
        .unwrap();
    drop(frozen);
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("timed out"),
        "one line says the store stopped answering: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_store_is_frozen_is_honoured_within_the_shutdown_grace() {
    let s3 = S3Server::seaweedfs().await;
    let pid = s3.pid().expect("a SeaweedFS this test started");
    let sim = start_sim(incompressible_org(16, 1_000_000)).await;
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = s3_export(&sim, &s3, &s3.endpoint, &format!("s3://{BUCKET}/term"), "r");
    cmd.args(["--part-size", "5MiB", "--shutdown-grace", "10s"])
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap());
    let mut child = cmd.spawn().unwrap();
    s3.wait_for_multipart_upload().await;
    let frozen = Frozen::stop(pid);
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(&child, "TERM");
    // --shutdown-grace (10 s) + 5 s.
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
    drop(frozen);
    let text = std::fs::read_to_string(log.path()).unwrap();
    let status = status
        .unwrap_or_else(|_| {
            panic!("SIGTERM is honoured within --shutdown-grace + 5 s while the store is frozen: {text}")
        })
        .unwrap();
    assert!(matches!(status.code(), Some(1 | 143)), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Crashed runs' multipart uploads

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runs_multipart_upload_is_reported_and_aborted_by_the_next_run() {
    let s3 = S3Server::moto().await;
    let sim = start_sim(incompressible_org(16, 1_000_000)).await;
    let to = format!("s3://{BUCKET}/crash");
    let mut cmd = s3_export(&sim, &s3, &s3.endpoint, &to, "killed");
    cmd.args(["--part-size", "5MiB"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    s3.wait_for_multipart_upload().await;
    child.kill().await.unwrap();
    assert!(s3.open_uploads().await >= 1, "the killed run left its upload");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let small = start_sim(org(5)).await;
    let out =
        run(s3_export(&small, &s3, &s3.endpoint, &to, "next").args(["--abort-incomplete-uploads-after", "1s"])).await;
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("incomplete multipart upload")
            && text.contains("crash/killed/flows.tar.gz")
            && text.contains("aborted it"),
        "{text}"
    );
    assert_eq!(s3.open_uploads().await, 0, "the crashed run's upload is gone");
}

// ---------------------------------------------------------------------------------------------
// Incremental runs under change

/// The ids of `config`'s flows in listing order (the simulated org lists them as configured).
fn listing_order(config: &SimConfig) -> Vec<String> {
    config.flows.iter().map(|f| f.id().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_run_records_flows_deleted_while_it_lists_as_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let first = start_sim(org(150)).await;
    let out = run(export_cmd(&first, dir.path(), "first").args(["--page-size", "50"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));

    let mut config = org(150);
    let deleted: Vec<String> = listing_order(&config)[..3].to_vec();
    config.listing_changes = vec![ListingChange {
        after_pages: 1,
        delete: deleted.clone(),
        create: Vec::new(),
    }];
    let changed = start_sim(config).await;
    let out = run(export_cmd(&changed, dir.path(), "second").args(["--page-size", "50", "--since", "latest"])).await;
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let m = read_manifest(&dir.path().join("second"));
    for id in &deleted {
        let row = m.flows.iter().find(|r| &r.id == id).expect("a listed flow has a row");
        assert_eq!(row.outcome, Outcome::NotFound, "{id}: {text}");
    }
    assert_eq!((m.totals.not_found, m.totals.exported, m.totals.carried), (3, 147, 147));
    let verify = run(flowvault().arg("verify").arg(dir.path().join("second"))).await;
    assert_eq!(verify.status.code(), Some(0), "{}", text_of(&verify));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_previous_archive_too_big_for_tmpdir_is_fetched_with_one_warning_naming_it() {
    let scratch = small_disk("1m");
    let sim = start_sim(incompressible_org(30, 60_000)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut export_cmd(&sim, dir.path(), "first")).await;
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    let out = run(export_cmd(&sim, dir.path(), "second")
        .args(["--since", "latest"])
        .env("TMPDIR", scratch.path()))
    .await;
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let m = read_manifest(&dir.path().join("second"));
    assert!(m.complete);
    assert_eq!((m.totals.exported, m.totals.carried), (30, 0), "every flow fetched");
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("TMPDIR") && l.contains("previous archive"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(!text.contains("missing or damaged"), "{text}");
    assert!(stdout_of(&out).contains(&format!("{} fetched", 30)), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_with_a_64_kib_tmpdir_completes_with_its_spools_in_memory() {
    let scratch = small_disk("64k");
    let sim = start_sim(org(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(export_cmd(&sim, dir.path(), "r").env("TMPDIR", scratch.path())).await;
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let m = read_manifest(&dir.path().join("r"));
    assert!(m.complete);
    assert_eq!(m.totals.exported, 200);
    assert!(
        text.contains(&scratch.path().display().to_string()),
        "the warning names TMPDIR: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_credentials_during_an_incremental_run_still_carry_every_unchanged_flow() {
    let dir = tempfile::tempdir().unwrap();
    let first = start_sim(org(60)).await;
    let out = run(&mut export_cmd(&first, dir.path(), "first")).await;
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));

    let mut config = org(60);
    // The first flows in listing order changed: they need an API call, which the revocation refuses.
    let changed: Vec<String> = listing_order(&config)[..4].to_vec();
    for flow in config
        .flows
        .iter_mut()
        .filter(|f| changed.contains(&f.id().to_string()))
    {
        flow.meta["name"] = format!("renamed {}", flow.id()).into();
    }
    config.revoke_after_requests = Some(3);
    let sim = start_sim(config).await;
    let out = run(export_cmd(&sim, dir.path(), "second").args(["--since", "latest", "--concurrency", "2"])).await;
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let m = read_manifest(&dir.path().join("second"));
    assert_eq!(m.totals.listed, 60, "{text}");
    for row in m.flows.iter().filter(|r| !changed.contains(&r.id)) {
        assert_eq!(
            (row.outcome, row.source),
            (Outcome::Exported, Some(Source::Carried)),
            "{}: {text}",
            row.id
        );
    }
    let carried_documents = m
        .flows
        .iter()
        .filter(|r| r.source == Some(Source::Carried) && r.outcome == Outcome::Exported)
        .map(|r| r.documents.len())
        .sum::<usize>();
    assert!(
        text.contains(&format!("{carried_documents} read, verified and written")),
        "the log's counts are the manifest's ({carried_documents}): {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_since_that_names_no_run_is_a_usage_error_not_a_silent_full_run() {
    let sim = start_sim(org(5)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(export_cmd(&sim, dir.path(), "r").env("FLOWVAULT_SINCE", "yesterday")).await;
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("--since"), "{text}");
    assert!(!dir.path().join("r").exists(), "nothing of the run is written");
}

// ---------------------------------------------------------------------------------------------
// Every phase's writes settle into their rows (issue #21's run writer)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yaml_write_refused_by_a_local_store_fails_that_flow_only() {
    let sim = start_sim(yaml_org()).await;
    let victim = yaml_victim();
    let dir = tempfile::tempdir().unwrap();
    let mut inner = LocalStore::open(dir.path(), "r").await.unwrap();
    inner.claim().await.unwrap();
    let tail = format!("{victim}.yaml");
    let store = Refusing {
        inner,
        bad: Box::new(move |name| name.ends_with(&tail)),
        panic: false,
    };
    let client = client_for(&sim);
    client.authenticate().await.unwrap();
    let sink = with_format(Arc::new(store), Format::Objects, 2);
    let report = export::run(client, sink, pipeline_options(true), StopSignal::default()).await;
    assert!(matches!(report.ending, Ending::Incomplete(_)), "{:?}", report.ending);
    let run_dir = dir.path().join("r");
    let m = read_manifest(&run_dir);
    assert_yaml_refused_for(&m, &victim);
    assert_documents_on_disk(&run_dir, &m);
}

/// The victim's row is failed without a YAML document but keeps its JSON; every other flow is
/// exported with its YAML.
fn assert_yaml_refused_for(m: &Manifest, victim: &str) {
    assert!(!m.complete);
    for row in &m.flows {
        if row.id == victim {
            assert_eq!(row.outcome, Outcome::Failed, "{row:?}");
            assert!(row.document(Content::Yaml).is_none(), "the refused YAML is not claimed");
            assert!(row.document(Content::Latest).is_some(), "its JSON document stays");
            assert!(row.error.as_deref().unwrap().contains(".yaml"), "{row:?}");
        } else {
            assert_eq!(row.outcome, Outcome::Exported, "{row:?}");
            assert_eq!(
                row.document(Content::Yaml).is_some(),
                row.published_version.is_some(),
                "{row:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yaml_write_refused_by_s3_ends_with_exit_3_and_fails_that_flow_only() {
    // moto behind the proxy (SeaweedFS would refuse the proxied requests' signatures).
    let s3 = S3Server::moto().await;
    let victim = yaml_victim();
    let tail: &'static str = Box::leak(format!("{victim}.yaml").into_boxed_str());
    let proxy = FaultyS3::start(&s3.endpoint, S3Fault::DenyPutsEndingWith(tail)).await;
    let sim = start_sim(yaml_org()).await;
    let out = run(
        s3_export(&sim, &s3, &proxy.endpoint, &format!("s3://{BUCKET}/yaml"), "r").args([
            "--format",
            "objects",
            "--yaml",
            "--yaml-retry-wait",
            "50ms",
        ]),
    )
    .await;
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    let m: Manifest = serde_json::from_slice(&s3.get("yaml/r/manifest.json").await).unwrap();
    assert_yaml_refused_for(&m, &victim);
    for (_, doc) in m.documents() {
        let bytes = s3.get(&format!("yaml/r/{}", doc.path)).await;
        assert_eq!(sha256_hex(&bytes), doc.sha256, "{}", doc.path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_write_task_marks_its_own_flow() {
    let sim = start_sim(org(12)).await;
    let victim = listing_order(&org(12))[5].clone();
    let dir = tempfile::tempdir().unwrap();
    let mut inner = LocalStore::open(dir.path(), "r").await.unwrap();
    inner.claim().await.unwrap();
    let needle = victim.clone();
    let store = Refusing {
        inner,
        bad: Box::new(move |name| name.contains(&needle) && name.ends_with(".json")),
        panic: true,
    };
    let client = client_for(&sim);
    client.authenticate().await.unwrap();
    let sink = with_format(Arc::new(store), Format::Objects, 2);
    let report = export::run(client, sink, pipeline_options(false), StopSignal::default()).await;
    assert!(matches!(report.ending, Ending::Incomplete(_)), "{:?}", report.ending);
    let m = read_manifest(&dir.path().join("r"));
    let row = m.flows.iter().find(|r| r.id == victim).unwrap();
    assert_eq!(row.outcome, Outcome::Failed, "{row:?}");
    assert!(row.error.as_deref().unwrap().contains("panic"), "{row:?}");
    assert_eq!(m.totals.failed, 1);
    assert_documents_on_disk(&dir.path().join("r"), &m);
}

#[test]
fn listing_pass_phases_are_typed_and_serialized_as_before() {
    use flowvault::genesys::PassRecord;
    use flowvault::genesys::flows::Phase;
    let pass = PassRecord {
        phase: Phase::Final,
        ..PassRecord::default()
    };
    let json = serde_json::to_value(&pass).unwrap();
    assert_eq!(json["phase"], "final");
    assert_eq!(serde_json::to_value(PassRecord::default()).unwrap()["phase"], "initial");
    let back: PassRecord = serde_json::from_value(json).unwrap();
    assert_eq!(back.phase, Phase::Final);
}
