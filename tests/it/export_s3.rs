//! Exporting to real S3-compatible servers, read back with a stock S3 client. Every case runs
//! twice: against moto and against SeaweedFS (which also checks signatures and checksums), each
//! started per test on free ports.

use crate::support;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_s3::types::ChecksumMode;
use base64::Engine;
use flowvault::manifest::{Manifest, Outcome};
use flowvault::sim::{ConfigSource, SimConfig, generate_org};
use support::s3::{BUCKET, S3Server, SECRET_KEY};
use support::*;

/// An org with awkward names, a flow deleted after listing, flaky flows and a 4000-action flow.
fn awkward_org() -> (SimConfig, String) {
    let mut flows = generate_org(30, 5, true);
    let big = flows.iter_mut().find(|f| f.flow_type() == "BOT").unwrap();
    if let ConfigSource::Generated { seed, .. } = big.config {
        big.config = ConfigSource::Generated {
            seed,
            target_bytes: 4000 * 150,
        };
    }
    let mut config = SimConfig::with_flows(flows, CLIENT_ID, CLIENT_SECRET);
    let gone = config.flows[17].id().to_string();
    config.deleted_after_listing.insert(gone.clone());
    config.flaky.insert(config.flows[3].id().to_string(), 2);
    config.flaky.insert(config.flows[25].id().to_string(), 1);
    (config, gone)
}

fn s3_export(sim: &flowvault::sim::SimServer, s3: &S3Server, to: &str, run_id: &str) -> tokio::process::Command {
    let mut cmd = export_cmd(sim, std::path::Path::new(to), run_id);
    cmd.envs(s3.env());
    cmd
}

fn assert_clean(out: &std::process::Output, sim: &flowvault::sim::SimServer) {
    let text = all_output(out);
    assert_no_secrets(&text, sim);
    assert!(!text.contains(SECRET_KEY), "the AWS secret key leaked:\n{text}");
}

async fn objects_format_stores_every_flow_once_with_checksums_matching_the_manifest(s3: S3Server) {
    let (config, gone) = awkward_org();
    let sim = start_sim(config).await;
    let out =
        run(s3_export(&sim, &s3, &format!("s3://{BUCKET}/nightly/org1"), "r1").args(["--format", "objects"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert_clean(&out, &sim);

    let manifest: Manifest = serde_json::from_slice(&s3.get("nightly/org1/r1/manifest.json").await).unwrap();
    assert!(manifest.complete);
    assert_eq!(manifest.totals.listed, 30);
    assert_eq!(manifest.totals.exported, 29);
    assert_eq!(
        manifest.flows.iter().find(|r| r.id == gone).unwrap().outcome,
        Outcome::NotFound
    );

    let keys = s3.keys("nightly/org1/r1/").await;
    assert_eq!(
        keys.len() as u64,
        document_count(&manifest) + 1,
        "the documents and the manifest: {keys:?}"
    );
    let client = s3.client();
    for row in manifest.flows.iter().filter(|r| r.outcome == Outcome::Exported) {
        let key = format!("nightly/org1/r1/{}", row.documents[0].path.as_str());
        let doc = s3.get(&key).await;
        assert_eq!(
            Some(row.documents[0].sha256.as_str()),
            Some(sha256_hex(&doc).as_str()),
            "{key}"
        );
        assert_document_matches(&doc, &sim);
        let head = client
            .head_object()
            .bucket(BUCKET)
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        let expected =
            base64::engine::general_purpose::STANDARD.encode(hex::decode(row.documents[0].sha256.as_str()).unwrap());
        assert_eq!(
            head.checksum_sha256(),
            Some(expected.as_str()),
            "the stored object carries its SHA-256: {key}"
        );
        assert_eq!(head.content_type(), Some("application/json"));
        assert_eq!(
            head.metadata()
                .and_then(|m| m.get("flowvault-run-id"))
                .map(String::as_str),
            Some("r1")
        );
    }
}

async fn a_small_tar_gz_is_one_object_matching_the_manifest(s3: S3Server) {
    let (config, _) = awkward_org();
    let sim = start_sim(config).await;
    let out = run(&mut s3_export(&sim, &s3, &format!("s3://{BUCKET}"), "small")).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert_clean(&out, &sim);
    assert_eq!(
        s3.keys("small/").await,
        vec!["small/flows.tar.gz", "small/manifest.json"]
    );
    let manifest_bytes = s3.get("small/manifest.json").await;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes).unwrap();
    let members = read_tar_gz(&s3.get("small/flows.tar.gz").await);
    assert_eq!(members.last().unwrap(), &("manifest.json".to_string(), manifest_bytes));
    let by_name: HashMap<_, _> = members.iter().cloned().collect();
    for row in manifest.flows.iter().filter(|r| r.outcome == Outcome::Exported) {
        let doc = &by_name[&row.documents[0].path];
        assert_eq!(Some(row.documents[0].sha256.as_str()), Some(sha256_hex(doc).as_str()));
        assert_document_matches(doc, &sim);
    }
    assert_eq!(manifest.totals.exported, 29);
}

async fn a_large_tar_gz_streams_as_a_multipart_upload_and_reads_back_byte_for_byte(s3: S3Server) {
    let sim = start_sim(incompressible_org(24, 1_000_000)).await;
    let out = run(s3_export(&sim, &s3, &format!("s3://{BUCKET}/big"), "mp").args(["--part-size", "5MiB"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert_clean(&out, &sim);
    assert!(
        all_output(&out).contains("completed multipart upload"),
        "{}",
        all_output(&out)
    );

    let archive = s3.get("big/mp/flows.tar.gz").await;
    assert!(
        archive.len() > 15 * 1024 * 1024,
        "at least four parts: {} bytes",
        archive.len()
    );
    let head = s3
        .client()
        .head_object()
        .bucket(BUCKET)
        .key("big/mp/flows.tar.gz")
        .send()
        .await
        .unwrap();
    let etag = head.e_tag().unwrap_or_default();
    assert!(etag.contains('-'), "a multipart ETag ends in -<parts>: {etag}");

    let manifest: Manifest = serde_json::from_slice(&s3.get("big/mp/manifest.json").await).unwrap();
    assert!(manifest.complete);
    assert_archive_matches_manifest(&archive, &manifest);
    let members = read_tar_gz(&archive);
    let by_name: HashMap<_, _> = members.iter().cloned().collect();
    for row in &manifest.flows {
        let doc = &by_name[&row.documents[0].path];
        assert_eq!(Some(row.documents[0].sha256.as_str()), Some(sha256_hex(doc).as_str()));
        assert_document_matches(doc, &sim);
    }
    assert_eq!(s3.open_uploads().await, 0);
}

async fn sigterm_during_a_multipart_upload_seals_what_was_fetched(s3: S3Server) {
    let mut config = incompressible_org(40, 1_000_000);
    config.latency = Duration::from_millis(150);
    let sim = start_sim(config).await;
    let mut child = s3_export(&sim, &s3, &format!("s3://{BUCKET}/int"), "term")
        .args(["--part-size", "5MiB", "--concurrency", "2", "--shutdown-grace", "1s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first part is in flight, then ask the job to stop as a scheduler would.
    s3.wait_for_multipart_upload().await;
    signal(&child, "TERM");
    let out = tokio::time::timeout(Duration::from_secs(60), async {
        let status = child.wait().await.unwrap();
        let mut stderr = String::new();
        use tokio::io::AsyncReadExt;
        child.stderr.take().unwrap().read_to_string(&mut stderr).await.unwrap();
        (status, stderr)
    })
    .await
    .expect("the job stops within its grace period");
    assert_eq!(out.0.code(), Some(143), "{}", out.1);
    assert_eq!(
        s3.keys("int/term/").await,
        vec!["int/term/flows.tar.gz", "int/term/manifest.json"],
        "the archive is sealed with what was fetched"
    );
    assert_eq!(
        s3.open_uploads().await,
        0,
        "the multipart upload was completed, not left open"
    );
    let manifest: Manifest = serde_json::from_slice(&s3.get("int/term/manifest.json").await).unwrap();
    assert!(!manifest.complete);
    assert_eq!(manifest.incomplete_reason.as_deref(), Some("terminated by SIGTERM"));
    assert_eq!(manifest.archive.as_deref(), Some("flows.tar.gz"));
    assert!(manifest.totals.exported > 0, "what was fetched is kept");
    assert_eq!(manifest.totals.listed, 40);
    assert_archive_matches_manifest(&s3.get("int/term/flows.tar.gz").await, &manifest);
}

async fn the_store_failing_mid_upload_fails_the_run_without_a_complete_manifest(s3: S3Server) {
    let mut config = incompressible_org(30, 1_000_000);
    config.latency = Duration::from_millis(100);
    let sim = start_sim(config).await;
    let child = s3_export(&sim, &s3, &format!("s3://{BUCKET}/dies"), "x")
        .args(["--part-size", "5MiB", "--concurrency", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    s3.wait_for_multipart_upload().await;
    if s3.is_external() {
        eprintln!("skipped: FLOWVAULT_TEST_S3_ENDPOINT points at a server this test cannot stop");
        return;
    }
    drop(s3); // the storage endpoint goes away mid-run
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the job gives up")
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("flows.tar.gz"), "the error names the archive: {stderr}");
    assert_no_secrets(&all_output(&out), &sim);
}

async fn a_missing_bucket_fails_before_any_genesys_call(s3: S3Server) {
    let sim = start_sim(org(3)).await;
    let out = run(&mut s3_export(&sim, &s3, "s3://no-such-bucket/x", "r")).await;
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bucket `no-such-bucket` does not exist"), "{stderr}");
    assert_eq!(sim.stats().token_requests.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(sim.stats().api_requests.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_clean(&out, &sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_fails_fast_with_a_clear_line() {
    let sim = start_sim(org(3)).await;
    let dead = format!(
        "http://127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let started = std::time::Instant::now();
    let out = run(flowvault()
        .args([
            "export",
            "--to",
            "s3://flowvault-test/x",
            "--s3-endpoint",
            &dead,
            "--s3-force-path-style",
        ])
        .env("AWS_ACCESS_KEY_ID", "a")
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", CLIENT_ID)
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", CLIENT_SECRET)
        .env("FLOWVAULT_API_URL", sim.url()))
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("could not reach the S3 endpoint"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(sim.stats().token_requests.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_clean(&out, &sim);
}

/// Runs each case against both servers, as `moto::case` and `seaweedfs::case`.
macro_rules! on_each_server {
    ($($case:ident),* $(,)?) => {
        mod moto {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::S3Server::moto().await).await
                }
            )*
        }
        mod seaweedfs {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::S3Server::seaweedfs().await).await
                }
            )*
        }
    };
}

on_each_server!(
    objects_format_stores_every_flow_once_with_checksums_matching_the_manifest,
    a_small_tar_gz_is_one_object_matching_the_manifest,
    a_large_tar_gz_streams_as_a_multipart_upload_and_reads_back_byte_for_byte,
    sigterm_during_a_multipart_upload_seals_what_was_fetched,
    the_store_failing_mid_upload_fails_the_run_without_a_complete_manifest,
    a_missing_bucket_fails_before_any_genesys_call,
);
