//! Local destinations: a directory of JSON documents, or one streamed `flows.tar.gz`.
//!
//! Files are written under a temporary name and renamed into place, so a crash never leaves a
//! truncated document or archive under its final name. The tarball is `flows.tar.gz.partial`
//! until it is sealed.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::fs;
use tokio::io::AsyncWriteExt;

use super::{ARCHIVE_NAME, MANIFEST_NAME, Sink, SinkError, TarGzEncoder};

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SinkError + use<> {
    let path = path.to_path_buf();
    move |source| SinkError::Io { action, path, source }
}

/// Checks, before any Genesys call, that `root` can hold a new run `run_id`: it is (or can be
/// made) a writable directory, and `root/run_id` does not already hold a run.
pub async fn preflight(root: &Path, run_id: &str) -> Result<(), SinkError> {
    if let Ok(meta) = fs::metadata(root).await
        && !meta.is_dir()
    {
        return Err(SinkError::Destination(format!(
            "destination {} is a file, not a directory; point --to at a directory",
            root.display()
        )));
    }
    fs::create_dir_all(root)
        .await
        .map_err(io_err("create the destination directory", root))?;
    let probe = root.join(format!(".flowvault-write-check-{}", std::process::id()));
    write_atomically(&probe, b"").await?;
    fs::remove_file(&probe).await.map_err(io_err("remove", &probe))?;
    refuse_existing_run(&root.join(run_id)).await
}

async fn refuse_existing_run(dir: &Path) -> Result<(), SinkError> {
    for existing in [MANIFEST_NAME, ARCHIVE_NAME, "flows"] {
        if fs::try_exists(dir.join(existing)).await.unwrap_or(false) {
            return Err(SinkError::Destination(format!(
                "{} already holds a run (found {existing}); choose another --run-id",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Creates `root/run_id` after the same checks as [`preflight`].
async fn create_run_dir(root: &Path, run_id: &str) -> Result<PathBuf, SinkError> {
    preflight(root, run_id).await?;
    let dir = root.join(run_id);
    fs::create_dir_all(&dir)
        .await
        .map_err(io_err("create the run directory", &dir))?;
    Ok(dir)
}

/// Writes `bytes` to `path` through a temporary file and a rename.
async fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SinkError> {
    let tmp = path.with_extension("partial");
    let mut file = fs::File::create(&tmp).await.map_err(io_err("create", &tmp))?;
    file.write_all(bytes).await.map_err(io_err("write", &tmp))?;
    file.sync_all().await.map_err(io_err("sync", &tmp))?;
    drop(file);
    fs::rename(&tmp, path).await.map_err(io_err("rename into place", path))
}

/// One JSON document per flow under `root/RUN/flows/`, manifest at `root/RUN/manifest.json`.
#[derive(Debug)]
pub struct LocalObjectsSink {
    dir: PathBuf,
}

impl LocalObjectsSink {
    /// Prepares `root/run_id/flows/` and checks that it is writable.
    pub async fn create(root: &Path, run_id: &str) -> Result<Self, SinkError> {
        let dir = create_run_dir(root, run_id).await?;
        let flows = dir.join("flows");
        fs::create_dir_all(&flows).await.map_err(io_err("create", &flows))?;
        let probe = flows.join(".flowvault-write-check");
        write_atomically(&probe, b"").await?;
        fs::remove_file(&probe).await.map_err(io_err("remove", &probe))?;
        Ok(LocalObjectsSink { dir })
    }
}

#[async_trait]
impl Sink for LocalObjectsSink {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    async fn put(&mut self, name: &str, document: Bytes) -> Result<(), SinkError> {
        let path = self.dir.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).await.map_err(io_err("create", parent))?;
        }
        write_atomically(&path, &document).await
    }

    async fn finish(&mut self, manifest: Bytes) -> Result<(), SinkError> {
        write_atomically(&self.dir.join(MANIFEST_NAME), &manifest).await
    }

    async fn abort(&mut self, manifest: Bytes) -> Result<(), SinkError> {
        self.finish(manifest).await
    }

    fn keeps_documents_on_abort(&self) -> bool {
        true
    }
}

/// `root/RUN/flows.tar.gz`, streamed to disk as flows arrive, and `root/RUN/manifest.json`.
pub struct LocalTarGzSink {
    dir: PathBuf,
    partial: PathBuf,
    file: Option<fs::File>,
    encoder: Option<TarGzEncoder>,
}

impl LocalTarGzSink {
    /// Prepares `root/run_id/` and opens the partial archive there.
    pub async fn create(root: &Path, run_id: &str) -> Result<Self, SinkError> {
        let dir = create_run_dir(root, run_id).await?;
        let partial = dir.join(format!("{ARCHIVE_NAME}.partial"));
        let file = fs::File::create(&partial).await.map_err(io_err("create", &partial))?;
        Ok(LocalTarGzSink {
            dir,
            partial,
            file: Some(file),
            encoder: Some(TarGzEncoder::new()),
        })
    }

    async fn drain(&mut self, bytes: Vec<u8>) -> Result<(), SinkError> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| SinkError::Destination("the archive is already closed".into()))?;
        file.write_all(&bytes).await.map_err(io_err("write", &self.partial))
    }
}

#[async_trait]
impl Sink for LocalTarGzSink {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    async fn put(&mut self, name: &str, document: Bytes) -> Result<(), SinkError> {
        let encoder = self
            .encoder
            .as_mut()
            .ok_or_else(|| SinkError::Destination("the archive is already closed".into()))?;
        encoder
            .append(name, &document)
            .map_err(io_err("encode", &self.partial))?;
        let out = encoder.take_output();
        self.drain(out).await
    }

    async fn finish(&mut self, manifest: Bytes) -> Result<(), SinkError> {
        let mut encoder = self
            .encoder
            .take()
            .ok_or_else(|| SinkError::Destination("the archive is already closed".into()))?;
        encoder
            .append(MANIFEST_NAME, &manifest)
            .map_err(io_err("encode", &self.partial))?;
        let head = encoder.take_output();
        self.drain(head).await?;
        let tail = encoder.finish().map_err(io_err("finish", &self.partial))?;
        self.drain(tail).await?;
        if let Some(mut file) = self.file.take() {
            file.flush().await.map_err(io_err("flush", &self.partial))?;
            file.sync_all().await.map_err(io_err("sync", &self.partial))?;
        }
        let archive = self.dir.join(ARCHIVE_NAME);
        fs::rename(&self.partial, &archive)
            .await
            .map_err(io_err("rename into place", &archive))?;
        write_atomically(&self.dir.join(MANIFEST_NAME), &manifest).await
    }

    async fn abort(&mut self, manifest: Bytes) -> Result<(), SinkError> {
        self.encoder = None;
        self.file = None;
        let removed = fs::remove_file(&self.partial).await;
        if let Err(e) = removed
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.partial.display(), error = %e, "could not remove the partial archive");
        }
        write_atomically(&self.dir.join(MANIFEST_NAME), &manifest).await
    }

    fn keeps_documents_on_abort(&self) -> bool {
        false
    }
}
