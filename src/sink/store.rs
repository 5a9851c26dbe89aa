//! The one storage seam: a [`Store`] is a destination root (a local directory, an S3 bucket and
//! prefix, memory) that writes, uploads in pieces, reads whole or streamed, lists, reports its
//! stored checksums, copies inside itself and claims run ids. Names are relative to the root
//! (`RUN/manifest.json`, `RUN/flows/…`); a [`RunDir`] is one run's place in a store, which the
//! formats write through. Opened by [`super::open_store`] from a destination and one
//! [`StoreOptions`] value; nothing above `sink/` knows which kind of store it holds.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncRead;

use super::SinkError;
use super::s3::S3Options;

/// How to reach and write every kind of store, in one value: callers outside `sink/` and
/// `settings/` hold it and pass it on, never look inside.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// For `s3://` destinations.
    pub(crate) s3: S3Options,
}

impl From<S3Options> for StoreOptions {
    fn from(s3: S3Options) -> Self {
        StoreOptions { s3 }
    }
}

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its name relative to the store's root.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A stored object another store of the same kind and place may copy without the bytes passing
/// through flowvault. Opaque: only the store that made it ([`Store::copy_source`]) and stores
/// that can copy from it ([`Store::copy`]) look inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySource {
    /// Which store (kind and endpoint) holds it: a copy works only within one.
    pub(crate) origin: String,
    /// The object's address within that store (for S3, `bucket/key`).
    pub(crate) key: String,
    /// Where it is, for messages (`s3://bucket/key`).
    pub(crate) location: String,
}

impl std::fmt::Display for CopySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.location)
    }
}

impl CopySource {
    /// The error of a store that cannot copy this object into `location`/`name`.
    pub(crate) fn cannot_copy_into(&self, location: &str, name: &str) -> SinkError {
        SinkError::Store {
            message: format!("{location} cannot copy {self} into {name}"),
            retryable: false,
        }
    }
}

/// A readable, writable object store rooted at a destination. One implementation per kind of
/// destination (`local.rs`, `s3.rs`, `memory.rs`); a new kind of store is one more.
#[async_trait]
pub trait Store: Send + Sync {
    /// The root, e.g. `/backups` or `s3://bucket/prefix`.
    fn location(&self) -> String;

    /// Objects the objects format writes at once into this store.
    fn writes_in_flight(&self) -> usize;

    /// Checks that run `run_id` can be written here (the root writable, the run id free)
    /// without claiming it or writing any of the run (`plan`).
    async fn check_run(&self, run_id: &str) -> Result<(), SinkError>;

    /// Checks as [`Store::check_run`] and claims `run_id` for this process before anything of
    /// the run is written: a second writer of the same run id fails here.
    async fn claim(&self, run_id: &str) -> Result<(), SinkError>;

    /// Gives back the claim of `run_id` when nothing was written (the run failed to start).
    async fn release(&self, _run_id: &str) {}

    /// Writes one small object and removes it again (`doctor`); `Ok(Some(why))` when the write
    /// worked but the removal was refused.
    async fn probe(&self) -> Result<Option<String>, SinkError>;

    /// Labels objects written from now on with the org they came from, where the store can.
    fn set_org(&self, _org_id: &str) {}

    /// Writes one whole object, replacing nothing that a reader could see half-written.
    async fn put(&self, name: &str, bytes: Bytes, content_type: &str) -> Result<(), SinkError>;

    /// Starts an object written in pieces (an archive); it appears under `name` only when completed.
    async fn create_upload(&self, name: &str, content_type: &str) -> Result<Box<dyn Upload>, SinkError>;

    /// Removes an object (an archive whose manifest could not be written beside it must not
    /// look whole).
    async fn remove(&self, name: &str) -> Result<(), SinkError>;

    /// Where `name` is for a store-side copy, if this store can be copied from.
    fn copy_source(&self, _name: &str) -> Option<CopySource> {
        None
    }

    /// Whether [`Store::copy`] works here.
    fn can_copy(&self) -> bool {
        false
    }

    /// Stores `name` as a copy of `from` made by the store itself; `sha256` (hex) is what the
    /// copy must hold, checked where the store reports it.
    async fn copy(&self, name: &str, from: &CopySource, _sha256: &str) -> Result<(), SinkError> {
        Err(from.cannot_copy_into(&self.location(), name))
    }

    /// The names of the root's top-level directories (run ids), sorted; names starting with
    /// `.` (claims, probes) are not runs.
    async fn run_ids(&self) -> Result<Vec<String>, SinkError>;

    /// Every object under `dir/`, names relative to the root, sorted.
    async fn list(&self, dir: &str) -> Result<Vec<Entry>, SinkError>;

    /// A stream of one object (`Ok(None)` when it does not exist).
    async fn open(&self, name: &str) -> Result<Option<Box<dyn AsyncRead + Send + Unpin>>, SinkError>;

    /// One whole object (`Ok(None)` when it does not exist).
    async fn read(&self, name: &str) -> Result<Option<Bytes>, SinkError>;

    /// One object from byte `offset` to its end (`Ok(None)` when it does not exist): how `runs`
    /// reads a manifest's last bytes without its rows.
    async fn read_from(&self, name: &str, offset: u64) -> Result<Option<Bytes>, SinkError> {
        let whole = self.read(name).await?;
        Ok(whole.map(|b| b.slice((offset as usize).min(b.len())..)))
    }

    /// The SHA-256 the store itself recorded for an object (base64), when it keeps one.
    async fn stored_sha256(&self, _name: &str) -> Result<Option<String>, SinkError> {
        Ok(None)
    }
}

/// An object written in pieces: invisible under its name until [`Upload::complete`].
#[async_trait]
pub trait Upload: Send {
    /// Appends bytes.
    async fn write(&mut self, bytes: Vec<u8>) -> Result<(), SinkError>;
    /// Makes the object appear, whole, under its name.
    async fn complete(&mut self) -> Result<(), SinkError>;
    /// Drops what was written; nothing appears.
    async fn discard(&mut self);
}

/// One run's place in a store: the formats name objects relative to the run (`flows/…`,
/// `manifest.json`), the store relative to its root (`RUN/flows/…`).
#[derive(Clone)]
pub struct RunDir {
    store: Arc<dyn Store>,
    run_id: String,
}

impl RunDir {
    /// Run `run_id` of `store` (claimed, or in memory for a test).
    pub fn new(store: Arc<dyn Store>, run_id: &str) -> Self {
        RunDir {
            store,
            run_id: run_id.to_string(),
        }
    }

    /// The store holding the run.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The run's member `member` as the store names it.
    pub fn name(&self, member: &str) -> String {
        format!("{}/{member}", self.run_id)
    }

    /// Where the run is, e.g. `/backups/RUN` or `s3://bucket/prefix/RUN`.
    pub fn location(&self) -> String {
        let root = self.store.location();
        if root.ends_with('/') {
            format!("{root}{}", self.run_id)
        } else {
            format!("{root}/{}", self.run_id)
        }
    }

    /// Gives back the run's claim when nothing was written.
    pub async fn release(&self) {
        self.store.release(&self.run_id).await;
    }
}
