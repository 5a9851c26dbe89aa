//! Where a case writes (local or S3, tar-gz or objects), and a run read back from any of them.

use std::collections::BTreeMap;

use flowvault::manifest::Manifest;
use flowvault::sim::SimServer;

use super::s3::{BUCKET, S3Server};
use super::*;

/// Where a case writes: local or S3, tar-gz or objects.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    LocalTarGz,
    LocalObjects,
    MotoTarGz,
    SeaweedObjects,
    MotoObjects,
    SeaweedTarGz,
}

pub const ALL_TARGETS: [Target; 4] = [
    Target::LocalTarGz,
    Target::LocalObjects,
    Target::MotoTarGz,
    Target::SeaweedObjects,
];

/// Every store with every format.
pub const EVERY_TARGET: [Target; 6] = [
    Target::LocalTarGz,
    Target::LocalObjects,
    Target::MotoTarGz,
    Target::SeaweedObjects,
    Target::MotoObjects,
    Target::SeaweedTarGz,
];

/// A finished run: exit code, output, manifest, and the stored documents by path.
pub struct Run {
    pub code: Option<i32>,
    pub text: String,
    pub manifest: Manifest,
    pub documents: BTreeMap<String, Vec<u8>>,
    /// The S3 server the run went to (kept running so a test can look further).
    pub s3: Option<S3Server>,
}

impl Target {
    /// Its format, and the S3 server it writes to (started now), if any.
    pub async fn start(self) -> (&'static str, Option<S3Server>) {
        match self {
            Target::LocalTarGz => ("tar-gz", None),
            Target::LocalObjects => ("objects", None),
            Target::MotoTarGz => ("tar-gz", Some(S3Server::moto().await)),
            Target::SeaweedObjects => ("objects", Some(S3Server::seaweedfs().await)),
            Target::MotoObjects => ("objects", Some(S3Server::moto().await)),
            Target::SeaweedTarGz => ("tar-gz", Some(S3Server::seaweedfs().await)),
        }
    }
}

/// Exports `sim` to `target` with `extra` flags and reads everything back.
pub async fn export_to(sim: &SimServer, target: Target, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (format, s3) = target.start().await;
    let to = match &s3 {
        Some(_) => format!("s3://{BUCKET}/c"),
        None => dir.path().to_string_lossy().into_owned(),
    };
    let mut cmd = export_cmd(sim, std::path::Path::new(&to), "r");
    cmd.args(["--format", format]).args(extra);
    if let Some(s3) = &s3 {
        cmd.envs(s3.env());
    }
    let out = run(&mut cmd).await;
    let text = all_output(&out);
    assert_no_secrets(&text, sim);
    let (manifest, documents) = match &s3 {
        None => read_local(&dir.path().join("r"), format),
        Some(s3) => read_s3(s3, format).await,
    };
    Run {
        code: out.status.code(),
        text,
        manifest,
        documents,
        s3,
    }
}

fn read_local(run_dir: &std::path::Path, format: &str) -> (Manifest, BTreeMap<String, Vec<u8>>) {
    let manifest = read_manifest(run_dir);
    let documents = if format == "tar-gz" {
        let archive = std::fs::read(run_dir.join("flows.tar.gz")).expect("the archive exists");
        assert_archive_matches_manifest(&archive, &manifest);
        read_tar_gz(&archive)
            .into_iter()
            .filter(|(n, _)| n != "manifest.json")
            .collect()
    } else {
        read_tree(run_dir)
            .into_iter()
            .filter(|(n, _)| n != "manifest.json")
            .collect()
    };
    (manifest, documents)
}

async fn read_s3(s3: &S3Server, format: &str) -> (Manifest, BTreeMap<String, Vec<u8>>) {
    let manifest: Manifest = serde_json::from_slice(&s3.get("c/r/manifest.json").await).unwrap();
    let mut documents = BTreeMap::new();
    if format == "tar-gz" {
        let archive = s3.get("c/r/flows.tar.gz").await;
        assert_archive_matches_manifest(&archive, &manifest);
        documents.extend(read_tar_gz(&archive).into_iter().filter(|(n, _)| n != "manifest.json"));
    } else {
        for key in s3.keys("c/r/flows/").await {
            let name = key.trim_start_matches("c/r/").to_string();
            documents.insert(name, s3.get(&key).await);
        }
    }
    (manifest, documents)
}
