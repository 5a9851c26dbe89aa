//! A local directory as a store: runs are `ROOT/RUN/...`.
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
use tokio::io::{AsyncRead, AsyncWriteExt};

use super::{ARCHIVE_NAME, Entry, MANIFEST_NAME, SinkError, Store, Upload};

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

/// Documents written at once in the objects format (each is fsynced).
const WRITES_IN_FLIGHT: usize = 4;

/// A directory on the local filesystem, runs as `ROOT/RUN/...`.
#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
    /// The run directory this process claimed, open and locked while it writes (see
    /// [`LocalStore::claim`]).
    claim: std::sync::Mutex<Option<(PathBuf, std::fs::File)>>,
    /// Whether anything was written; a claimed run that wrote nothing removes its directory.
    wrote: AtomicBool,
}

impl LocalStore {
    /// The directory `root`; nothing is checked or created yet.
    pub fn new(root: &Path) -> Self {
        LocalStore {
            root: root.to_path_buf(),
            claim: std::sync::Mutex::new(None),
            wrote: AtomicBool::new(false),
        }
    }

    /// Checks that the root is (or can be made) a writable directory, with a probe file
    /// written durably and removed.
    async fn prepare_root(&self) -> Result<(), SinkError> {
        let root = &self.root;
        if let Ok(meta) = fs::metadata(root).await
            && !meta.is_dir()
        {
            return Err(SinkError::NotADirectory { path: root.clone() });
        }
        fs::create_dir_all(root)
            .await
            .map_err(io_err("create the destination directory", root))?;
        let probe = root.join(format!(".flowvault-write-check-{}", std::process::id()));
        write_atomically(&probe, Bytes::new()).await?;
        fs::remove_file(&probe).await.map_err(io_err("remove", &probe))
    }

    /// Fails when the run directory already holds a run.
    async fn check_free(&self, dir: &Path) -> Result<(), SinkError> {
        for existing in [MANIFEST_NAME, ARCHIVE_NAME, "flows"] {
            if fs::try_exists(dir.join(existing)).await.unwrap_or(false) {
                return Err(SinkError::RunExists {
                    location: dir.display().to_string(),
                    found: existing.to_string(),
                });
            }
        }
        Ok(())
    }

    /// `root/name`, with its parent directories created.
    async fn prepare(&self, name: &str) -> Result<PathBuf, SinkError> {
        self.wrote.store(true, Ordering::Relaxed);
        let path = self.root.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).await.map_err(io_err("create", parent))?;
        }
        Ok(path)
    }

    /// The claimed run directory, when nothing was written into the store.
    fn unused_claim(&self) -> Option<PathBuf> {
        let claim = self.claim.lock().unwrap_or_else(|e| e.into_inner());
        let (dir, _) = claim.as_ref()?;
        (!self.wrote.load(Ordering::Relaxed)).then(|| dir.clone())
    }
}

impl Drop for LocalStore {
    /// A claimed run that wrote nothing (it failed to authenticate) leaves no empty directory.
    fn drop(&mut self) {
        if let Some(dir) = self.unused_claim() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[async_trait]
impl Store for LocalStore {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn writes_in_flight(&self) -> usize {
        WRITES_IN_FLIGHT
    }

    async fn check_run(&self, run_id: &str) -> Result<(), SinkError> {
        self.prepare_root().await?;
        self.check_free(&self.root.join(run_id)).await
    }

    /// Claims the run id for this process before anything is written: the run directory is
    /// created and locked (`flock`, released by the OS when the process ends, even by a crash),
    /// then checked again. A second export with the same run id fails here, touching nothing.
    async fn claim(&self, run_id: &str) -> Result<(), SinkError> {
        self.check_run(run_id).await?;
        let dir = self.root.join(run_id);
        fs::create_dir_all(&dir)
            .await
            .map_err(io_err("create the run directory", &dir))?;
        let handle = std::fs::File::open(&dir).map_err(io_err("open the run directory", &dir))?;
        match handle.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(SinkError::RunExists {
                    location: dir.display().to_string(),
                    found: "another export writing this run id now".into(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err("lock the run directory", &dir)(e)),
        }
        *self.claim.lock().unwrap_or_else(|e| e.into_inner()) = Some((dir.clone(), handle));
        self.check_free(&dir).await
    }

    async fn release(&self, _run_id: &str) {
        if let Some(dir) = self.unused_claim() {
            let _ = fs::remove_dir(dir).await;
        }
    }

    async fn probe(&self) -> Result<Option<String>, SinkError> {
        self.prepare_root().await.map(|()| None)
    }

    async fn remove(&self, name: &str) -> Result<(), SinkError> {
        let path = self.root.join(name);
        fs::remove_file(&path).await.map_err(io_err("remove", &path))
    }

    async fn put(&self, name: &str, bytes: Bytes, _content_type: &str) -> Result<(), SinkError> {
        let path = self.prepare(name).await?;
        write_atomically(&path, bytes).await
    }

    async fn create_upload(&self, name: &str, _content_type: &str) -> Result<Box<dyn Upload>, SinkError> {
        let path = self.prepare(name).await?;
        let partial = self.root.join(format!("{name}.partial"));
        let file = fs::File::create(&partial).await.map_err(io_err("create", &partial))?;
        Ok(Box::new(LocalUpload {
            path,
            partial,
            file: Some(file),
        }))
    }

    async fn run_ids(&self) -> Result<Vec<String>, SinkError> {
        let read_error = |e| io_err("read the directory", &self.root)(e);
        let mut dir = fs::read_dir(&self.root).await.map_err(read_error)?;
        let mut ids = Vec::new();
        while let Some(entry) = dir.next_entry().await.map_err(read_error)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().await.is_ok_and(|t| t.is_dir()) && !name.starts_with('.') {
                ids.push(name);
            }
        }
        ids.sort();
        Ok(ids)
    }

    async fn list(&self, dir: &str) -> Result<Vec<Entry>, SinkError> {
        let root = self.root.clone();
        let start = self.root.join(dir);
        tokio::task::spawn_blocking(move || walk(&root, &start))
            .await
            .map_err(|e| SinkError::Store {
                message: e.to_string(),
                retryable: false,
            })?
    }

    async fn open(&self, name: &str) -> Result<Option<Box<dyn AsyncRead + Send + Unpin>>, SinkError> {
        let path = self.root.join(name);
        match fs::File::open(&path).await {
            Ok(f) => Ok(Some(Box::new(f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("open", &path)(e)),
        }
    }

    async fn read(&self, name: &str) -> Result<Option<Bytes>, SinkError> {
        let path = self.root.join(name);
        match fs::read(&path).await {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    async fn read_from(&self, name: &str, offset: u64) -> Result<Option<Bytes>, SinkError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let path = self.root.join(name);
        let mut file = match fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("open", &path)(e)),
        };
        let mut out = Vec::new();
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(io_err("read", &path))?;
        file.read_to_end(&mut out).await.map_err(io_err("read", &path))?;
        Ok(Some(Bytes::from(out)))
    }
}

/// Every regular file under `start`, named relative to `root` with `/` separators.
fn walk(root: &Path, start: &Path) -> Result<Vec<Entry>, SinkError> {
    let mut out = Vec::new();
    let mut stack = vec![start.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("read the directory", &dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("read the directory", &dir))?;
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).map_err(io_err("inspect", &path))?;
            if meta.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                let name = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push(Entry { name, size: meta.len() });
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
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
