//! A local directory as a run store: `ROOT/RUN/...`.
//!
//! Files are written under a temporary name and renamed into place, so a crash never leaves a
//! truncated document or archive under its final name. An archive is `NAME.partial` until it is
//! completed. The run directory is created with the first write, so a run that never starts
//! leaves nothing behind.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Writes `bytes` to `path` through a temporary file, an fsync and a rename. Plain blocking I/O on
/// the blocking pool: every error of the write, the flush or the fsync (ENOSPC, EIO) is returned,
/// where tokio's buffered file would report a failed write only to a later call. A failed write
/// removes its temporary file, so a full disk leaves no truncated document behind.
async fn write_atomically(path: &Path, bytes: Bytes) -> Result<(), SinkError> {
    let path = path.to_path_buf();
    let joined = tokio::task::spawn_blocking(move || {
        let tmp = path.with_extension("partial");
        let written = write_synced(&tmp, &bytes)
            .and_then(|()| std::fs::rename(&tmp, &path).map_err(io_err("rename into place", &path)));
        super::note_answer();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    })
    .await;
    joined.unwrap_or_else(|e| {
        Err(SinkError::Store {
            message: format!("a file write task failed: {e}"),
            retryable: false,
        })
    })
}

/// Creates `path` and writes `bytes` to it durably.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), SinkError> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).map_err(io_err("create", path))?;
    file.write_all(bytes).map_err(io_err("write", path))?;
    file.flush().map_err(io_err("flush", path))?;
    file.sync_all().map_err(io_err("sync", path))
}

/// `ROOT/RUN` on the local filesystem.
#[derive(Debug)]
pub struct LocalStore {
    dir: PathBuf,
    created: OnceCell<()>,
    /// The run directory, open and locked while this run writes it (see [`LocalStore::claim`]).
    claim: Option<std::fs::File>,
    /// Whether anything was written; a claimed run that wrote nothing removes its directory.
    wrote: AtomicBool,
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
        write_atomically(&probe, Bytes::new()).await?;
        fs::remove_file(&probe).await.map_err(io_err("remove", &probe))?;
        let store = LocalStore {
            dir: root.join(run_id),
            created: OnceCell::new(),
            claim: None,
            wrote: AtomicBool::new(false),
        };
        store.check_free().await?;
        Ok(store)
    }

    /// Fails when the run directory already holds a run.
    async fn check_free(&self) -> Result<(), SinkError> {
        for existing in [MANIFEST_NAME, ARCHIVE_NAME, "flows"] {
            if fs::try_exists(self.dir.join(existing)).await.unwrap_or(false) {
                return Err(SinkError::RunExists {
                    location: self.dir.display().to_string(),
                    found: existing.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Claims the run id for this process before anything is written: the run directory is
    /// created and locked (`flock`, released by the OS when the process ends, even by a crash),
    /// then checked again. A second export with the same run id fails here, touching nothing.
    pub async fn claim(&mut self) -> Result<(), SinkError> {
        fs::create_dir_all(&self.dir)
            .await
            .map_err(io_err("create the run directory", &self.dir))?;
        let dir = std::fs::File::open(&self.dir).map_err(io_err("open the run directory", &self.dir))?;
        match dir.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(SinkError::RunExists {
                    location: self.dir.display().to_string(),
                    found: "another export writing this run id now".into(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err("lock the run directory", &self.dir)(e)),
        }
        self.claim = Some(dir);
        self.check_free().await?;
        let _ = self.created.set(());
        Ok(())
    }

    /// `dir/name`, with its parent directories created.
    async fn prepare(&self, name: &str) -> Result<PathBuf, SinkError> {
        self.wrote.store(true, Ordering::Relaxed);
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

impl Drop for LocalStore {
    /// A claimed run that wrote nothing (it failed to authenticate) leaves no empty directory.
    fn drop(&mut self) {
        if self.claim.is_some() && !self.wrote.load(Ordering::Relaxed) {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

#[async_trait]
impl RunStore for LocalStore {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    async fn remove(&self, name: &str) -> Result<(), SinkError> {
        let path = self.dir.join(name);
        fs::remove_file(&path).await.map_err(io_err("remove", &path))
    }

    async fn release(&self) {
        if self.claim.is_some() && !self.wrote.load(Ordering::Relaxed) {
            let _ = fs::remove_dir(&self.dir).await;
        }
    }

    async fn put(&self, name: &str, bytes: Bytes, _content_type: &str) -> Result<(), SinkError> {
        let path = self.prepare(name).await?;
        write_atomically(&path, bytes).await
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
        // tokio's file hands a write to the blocking pool and reports its error to a later call:
        // the flush waits for it, so a full disk fails this write, not a later one (or none).
        file.write_all(&bytes).await.map_err(io_err("write", &self.partial))?;
        let flushed = file.flush().await.map_err(io_err("write", &self.partial));
        super::note_answer();
        flushed
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
