//! Where a case writes (local or S3, tar-gz or objects), and a run read back from any of them.

use std::collections::BTreeMap;
use std::process::Output;

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

/// The prefix runs go under in a test bucket.
const PREFIX: &str = "c";

/// A destination the test can export to, tamper with and read back.
pub struct Place {
    pub dir: tempfile::TempDir,
    pub s3: Option<S3Server>,
    pub format: &'static str,
}

impl Place {
    pub async fn new(target: Target) -> Place {
        let (format, s3) = target.start().await;
        Place {
            dir: tempfile::tempdir().unwrap(),
            s3,
            format,
        }
    }

    pub fn dest(&self) -> String {
        match &self.s3 {
            Some(_) => format!("s3://{BUCKET}/{PREFIX}"),
            None => self.dir.path().to_string_lossy().into_owned(),
        }
    }

    pub fn run(&self, id: &str) -> String {
        format!("{}/{id}", self.dest())
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        self.s3.as_ref().map(S3Server::env).unwrap_or_default()
    }

    pub async fn export(&self, sim: &SimServer, id: &str) -> Output {
        self.export_with(sim, id, &[]).await
    }

    /// Exports `sim` as run `id` with `extra` flags.
    pub async fn export_with(&self, sim: &SimServer, id: &str, extra: &[&str]) -> Output {
        let mut cmd = export_cmd(sim, std::path::Path::new(&self.dest()), id);
        cmd.args(["--format", self.format]).args(extra).envs(self.env());
        run(&mut cmd).await
    }

    pub async fn flowvault(&self, args: &[&str]) -> Output {
        run(flowvault().args(args).envs(self.env())).await
    }

    pub async fn read(&self, name: &str) -> Vec<u8> {
        match &self.s3 {
            Some(s3) => s3.get(&format!("{PREFIX}/{name}")).await,
            None => std::fs::read(self.dir.path().join(name)).unwrap(),
        }
    }

    pub async fn write(&self, name: &str, body: Vec<u8>) {
        match &self.s3 {
            Some(s3) => s3.put(&format!("{PREFIX}/{name}"), body).await,
            None => {
                let path = self.dir.path().join(name);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, body).unwrap();
            }
        }
    }

    pub async fn remove(&self, name: &str) {
        match &self.s3 {
            Some(s3) => s3.delete(&format!("{PREFIX}/{name}")).await,
            None => std::fs::remove_file(self.dir.path().join(name)).unwrap(),
        }
    }
    /// Exports `sim` as run `id` with `extra` flags and reads it back.
    pub async fn export_read(&self, sim: &SimServer, id: &str, extra: &[&str]) -> Run {
        let out = self.export_with(sim, id, extra).await;
        let text = all_output(&out);
        assert_no_secrets(&text, sim);
        let (manifest, documents) = match &self.s3 {
            None => read_local(&self.dir.path().join(id), self.format),
            Some(s3) => read_s3(s3, id, self.format).await,
        };
        Run {
            code: out.status.code(),
            text,
            manifest,
            documents,
            s3: None,
        }
    }
}

/// Exports `sim` to `target` with `extra` flags and reads everything back.
pub async fn export_to(sim: &SimServer, target: Target, extra: &[&str]) -> Run {
    let place = Place::new(target).await;
    let run = place.export_read(sim, "r", extra).await;
    Run { s3: place.s3, ..run }
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

async fn read_s3(s3: &S3Server, run_id: &str, format: &str) -> (Manifest, BTreeMap<String, Vec<u8>>) {
    let manifest: Manifest =
        serde_json::from_slice(&s3.get(&format!("{PREFIX}/{run_id}/manifest.json")).await).unwrap();
    let mut documents = BTreeMap::new();
    if format == "tar-gz" {
        let archive = s3.get(&format!("{PREFIX}/{run_id}/flows.tar.gz")).await;
        assert_archive_matches_manifest(&archive, &manifest);
        documents.extend(read_tar_gz(&archive).into_iter().filter(|(n, _)| n != "manifest.json"));
    } else {
        for under in ["flows", "architect"] {
            for key in s3.keys(&format!("{PREFIX}/{run_id}/{under}/")).await {
                let name = key.trim_start_matches(&format!("{PREFIX}/{run_id}/")).to_string();
                documents.insert(name, s3.get(&key).await);
            }
        }
    }
    (manifest, documents)
}
