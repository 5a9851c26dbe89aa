//! A local directory as a run store: `ROOT/RUN/...`.
//!
//! Files are written under a temporary name and renamed into place, so a crash never leaves a
//! truncated document or archive under its final name. An archive is `NAME.partial` until it is
//! completed. The run directory is created with the first write, so a run that never starts
//! leaves nothing behind.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::fs;
use tokio::io::AsyncWriteExt;
use tokio::sync::OnceCell;

use super::{ARCHIVE_NAME, MANIFEST_NAME, RunStore, SinkError, Upload};

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SinkError + use<> {
    let path = path.to_path_buf();
    move |source| SinkError::Io { action, path, source }
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

/// `ROOT/RUN` on the local filesystem.
#[derive(Debug)]
pub struct LocalStore {
    dir: PathBuf,
    created: OnceCell<()>,
}

impl LocalStore {
    /// Checks that `root` is (or can be made) a writable directory and that `root/run_id` does not
    /// already hold a run. Creates nothing of the run yet.
    pub async fn open(root: &Path, run_id: &str) -> Result<Self, SinkError> {
        if let Ok(meta) = fs::metadata(root).await
            && !meta.is_dir()
        {
            return Err(SinkError::NotADirectory {
                path: root.to_path_buf(),
            });
        }
        fs::create_dir_all(root)
            .await
            .map_err(io_err("create the destination directory", root))?;
        let probe = root.join(format!(".flowvault-write-check-{}", std::process::id()));
        write_atomically(&probe, b"").await?;
        fs::remove_file(&probe).await.map_err(io_err("remove", &probe))?;
        let dir = root.join(run_id);
        for existing in [MANIFEST_NAME, ARCHIVE_NAME, "flows"] {
            if fs::try_exists(dir.join(existing)).await.unwrap_or(false) {
                return Err(SinkError::RunExists {
                    location: dir.display().to_string(),
                    found: existing.to_string(),
                });
            }
        }
        Ok(LocalStore {
            dir,
            created: OnceCell::new(),
        })
    }

    /// `dir/name`, with its parent directories created.
    async fn prepare(&self, name: &str) -> Result<PathBuf, SinkError> {
        self.created
            .get_or_try_init(|| async {
                fs::create_dir_all(&self.dir)
                    .await
                    .map_err(io_err("create the run directory", &self.dir))
            })
            .await?;
        let path = self.dir.join(name);
        if let Some(parent) = path.parent().filter(|p| *p != self.dir) {
            fs::create_dir_all(parent).await.map_err(io_err("create", parent))?;
        }
        Ok(path)
    }
}

#[async_trait]
impl RunStore for LocalStore {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    async fn put(&self, name: &str, bytes: Bytes, _content_type: &str) -> Result<(), SinkError> {
        let path = self.prepare(name).await?;
        write_atomically(&path, &bytes).await
    }

    async fn create_upload(&self, name: &str, _content_type: &str) -> Result<Box<dyn Upload>, SinkError> {
        let path = self.prepare(name).await?;
        let partial = self.dir.join(format!("{name}.partial"));
        let file = fs::File::create(&partial).await.map_err(io_err("create", &partial))?;
        Ok(Box::new(LocalUpload {
            path,
            partial,
            file: Some(file),
        }))
    }
}

/// A file written as `NAME.partial` and renamed into place when complete.
struct LocalUpload {
    path: PathBuf,
    partial: PathBuf,
    file: Option<fs::File>,
}

#[async_trait]
impl Upload for LocalUpload {
    async fn write(&mut self, bytes: Vec<u8>) -> Result<(), SinkError> {
        let file = self.file.as_mut().ok_or(SinkError::Closed)?;
        file.write_all(&bytes).await.map_err(io_err("write", &self.partial))
    }

    async fn complete(&mut self) -> Result<(), SinkError> {
        let mut file = self.file.take().ok_or(SinkError::Closed)?;
        file.flush().await.map_err(io_err("flush", &self.partial))?;
        file.sync_all().await.map_err(io_err("sync", &self.partial))?;
        drop(file);
        fs::rename(&self.partial, &self.path)
            .await
            .map_err(io_err("rename into place", &self.path))
    }

    async fn discard(&mut self) {
        self.file = None;
        if let Err(e) = fs::remove_file(&self.partial).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.partial.display(), error = %e, "could not remove the partial archive");
        }
    }
}
