//! Destinations behind one small trait. The pipeline hands each flow document to [`Sink::put`],
//! then [`Sink::finish`]es with the manifest (written last), or [`Sink::abort`]s when the
//! destination itself broke. Nothing upstream of this module knows whether bytes go to a
//! directory, a tarball or a bucket.
//!
//! A sink is a *format* over a *store*: [`ObjectsSink`] writes one object per flow and
//! [`TarGzSink`] streams one archive, each into one run ([`RunDir`]) of any [`Store`] — a local
//! directory ([`local::LocalStore`]), an S3 prefix ([`s3::S3Store`]) or memory
//! ([`memory::MemoryStore`]). So the archive logic exists once, and a new store gets both
//! formats. The same [`Store`] is the read side (`runs`, `verify`, `diff`, `restore`,
//! `export --since`). [`open_store`] is the one way from a [`Destination`] and [`StoreOptions`]
//! to a store, and the only place the kind of destination is matched; [`open`] claims a run in
//! it and returns the sink.

pub mod local;
pub mod memory;
pub mod objects;
pub mod s3;
mod store;
pub mod targz;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

pub use objects::ObjectsSink;
pub use store::{CopySource, Entry, RunDir, Store, StoreOptions, Upload};
pub use targz::{TarGzEncoder, TarGzSink};

/// Name of the manifest inside a run (and the last member of a tarball).
pub const MANIFEST_NAME: &str = "manifest.json";
/// Name of the archive inside a run, for the tar-gz format.
pub const ARCHIVE_NAME: &str = "flows.tar.gz";

/// A destination for one run's flow documents and manifest.
#[async_trait]
pub trait Sink: Send {
    /// Where this run is being written, for messages and the manifest.
    fn location(&self) -> String;

    /// Stores one flow document under `name` (a safe relative path such as `flows/bot/x--id.json`).
    /// An `Err` means the destination is unusable and the run must stop.
    async fn put(&mut self, name: &str, document: Bytes) -> Result<(), SinkError>;

    /// Waits for documents still being written and returns those that could not be stored, so
    /// their manifest rows can say so. An `Err` means the whole run's output is unusable.
    async fn settle(&mut self) -> Result<Vec<StoreFailure>, SinkError> {
        Ok(Vec::new())
    }

    /// Completes the run, whether or not every flow made it: seals any archive with what was
    /// put (the manifest as its last member), then writes the manifest beside it, last.
    async fn finish(&mut self, manifest: &Spooled) -> Result<(), SinkError>;

    /// The destination broke: discards any partial archive so nothing half-written looks whole,
    /// then writes the (incomplete) manifest where it still can.
    async fn abort(&mut self, manifest: &Spooled) -> Result<(), SinkError>;

    /// Whether documents already `put` survive an abort (true for one object per flow).
    fn keeps_documents_on_abort(&self) -> bool;

    /// Labels everything written from now on with the org it came from (S3 object metadata).
    fn set_org(&self, _org_id: &str) {}

    /// The run ended before it wrote anything (it could not authenticate): gives back the claim
    /// of the run id, so a retry with the same id can have it.
    async fn release(&mut self) {}

    /// Whether [`Sink::copy`] works here: documents copied by the store itself (S3 `CopyObject`
    /// into one object per flow), without passing through flowvault.
    fn can_copy(&self) -> bool {
        false
    }

    /// Stores `name` as a copy of `from`, which the caller has verified holds the document whose
    /// SHA-256 is `sha256`; the copy is checked against it where the store reports one.
    async fn copy(&mut self, name: &str, from: CopySource, _sha256: String) -> Result<(), SinkError> {
        Err(from.cannot_copy_into(&self.location(), name))
    }
}

/// A document too large to hold in memory at once (a 50,000-flow manifest is tens of megabytes):
/// spooled to an unnamed temporary file, or held in memory when it is small or no file can be had.
pub enum Spooled {
    /// In a temporary file of this length.
    File(std::fs::File, u64),
    /// In memory.
    Memory(Bytes),
}

/// Pieces a spooled document is read and written in.
const SPOOL_CHUNK: usize = 1024 * 1024;
/// Up to this size a spooled document is written with one request.
const SPOOL_WHOLE: u64 = 8 * 1024 * 1024;

impl Spooled {
    /// Spools what `write` writes: to a temporary file, or to memory if none can be created or
    /// the file cannot take it all (a nearly full `TMPDIR`), with one warning naming it.
    pub fn write(write: impl Fn(&mut dyn std::io::Write) -> std::io::Result<()>) -> std::io::Result<Spooled> {
        let spooled = tempfile::tempfile().and_then(|file| {
            let mut out = std::io::BufWriter::with_capacity(64 * 1024, file);
            write(&mut out)?;
            let file = out.into_inner().map_err(|e| e.into_error())?;
            let len = file.metadata()?.len();
            Ok(Spooled::File(file, len))
        });
        match spooled {
            Ok(spooled) => Ok(spooled),
            Err(e) => {
                tracing::warn!(
                    "cannot spool to a temporary file in {} ({e}); holding it in memory instead (set TMPDIR to a directory with room)",
                    std::env::temp_dir().display()
                );
                let mut out = Vec::new();
                write(&mut out)?;
                Ok(Spooled::Memory(Bytes::from(out)))
            }
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Spooled::File(_, len) => *len,
            Spooled::Memory(b) => b.len() as u64,
        }
    }

    /// True when it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its pieces in order, each at most [`SPOOL_CHUNK`] bytes; reading stops at the first error.
    pub fn pieces(&self) -> impl Iterator<Item = std::io::Result<Bytes>> + '_ {
        let mut offset = 0u64;
        let mut failed = false;
        std::iter::from_fn(move || {
            let end = self.len().min(offset + SPOOL_CHUNK as u64);
            if failed || offset >= end {
                return None;
            }
            let piece = match self {
                Spooled::Memory(b) => Ok(b.slice(offset as usize..end as usize)),
                Spooled::File(file, _) => {
                    use std::os::unix::fs::FileExt;
                    let mut buf = vec![0; (end - offset) as usize];
                    file.read_exact_at(&mut buf, offset).map(|()| Bytes::from(buf))
                }
            };
            failed = piece.is_err();
            offset = end;
            Some(piece)
        })
    }

    /// The whole document in memory.
    pub fn to_bytes(&self) -> std::io::Result<Bytes> {
        match self {
            Spooled::Memory(b) => Ok(b.clone()),
            Spooled::File(..) => {
                let mut all = Vec::with_capacity(self.len() as usize);
                for piece in self.pieces() {
                    all.extend_from_slice(&piece?);
                }
                Ok(Bytes::from(all))
            }
        }
    }

    /// Writes it to `store` as `name`: one request when small, in pieces otherwise.
    pub async fn store_as(&self, store: &dyn Store, name: &str) -> Result<(), SinkError> {
        let io = |e: std::io::Error| SinkError::Store {
            message: format!("cannot read the spooled {name} back: {e}"),
            retryable: false,
        };
        if self.len() <= SPOOL_WHOLE {
            return store.put(name, self.to_bytes().map_err(io)?, "application/json").await;
        }
        let mut upload = store.create_upload(name, "application/json").await?;
        let written = async {
            for piece in self.pieces() {
                upload.write(piece.map_err(io)?.to_vec()).await?;
            }
            upload.complete().await
        }
        .await;
        if written.is_err() {
            upload.discard().await;
        }
        written
    }
}

impl From<Vec<u8>> for Spooled {
    fn from(bytes: Vec<u8>) -> Spooled {
        Spooled::Memory(Bytes::from(bytes))
    }
}

/// When a destination last answered (milliseconds after [`ANSWER_EPOCH`]), over every store of
/// the process: how a stopped run tells a store that stopped answering from one that is slow.
static LAST_ANSWER_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static ANSWER_EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

fn since_epoch() -> u64 {
    let epoch = ANSWER_EPOCH.get_or_init(std::time::Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Notes that a store answered a request (any answer, an error too).
pub fn note_answer() {
    LAST_ANSWER_MS.store(since_epoch(), std::sync::atomic::Ordering::Relaxed);
}

/// How long no store has answered.
pub fn silent_for() -> std::time::Duration {
    let last = LAST_ANSWER_MS.load(std::sync::atomic::Ordering::Relaxed);
    std::time::Duration::from_millis(since_epoch().saturating_sub(last))
}

/// Bytes free for an unprivileged writer on the filesystem holding `dir` (`None` when unknown).
pub fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `stat` a valid out-pointer for the call's duration.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
    (rc == 0).then_some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// A document that could not be stored.
#[derive(Debug)]
pub struct StoreFailure {
    /// The document's name within the run.
    pub name: String,
    /// Why.
    pub error: SinkError,
}

/// A failure to use or write to the destination; each variant says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The local destination exists and is not a directory.
    #[error("destination {} is a file, not a directory; point --to at a directory", path.display())]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The bucket does not exist.
    #[error("bucket `{bucket}` does not exist at {endpoint}; create it or fix --to")]
    BucketMissing {
        /// The bucket.
        bucket: String,
        /// The endpoint asked.
        endpoint: String,
    },
    /// The store refused these credentials.
    #[error("access to {target} at {endpoint} is denied (HTTP 403); check the AWS credentials and the bucket policy")]
    AccessDenied {
        /// What was refused, e.g. "bucket `b`".
        target: String,
        /// The endpoint asked.
        endpoint: String,
    },
    /// The run id already holds a run here.
    #[error("{location} already holds a run (found {found}); choose another --run-id")]
    RunExists {
        /// The run's location.
        location: String,
        /// What was found there.
        found: String,
    },
    /// A local file operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// To which file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An object storage request failed; `retryable` when trying again later could succeed.
    #[error("{message}")]
    Store {
        /// The request, the object and the store's answer.
        message: String,
        /// Whether a later retry could succeed (timeouts, 5xx) or not (denied, missing bucket).
        retryable: bool,
    },
    /// The sink was used after it was finished or aborted.
    #[error("the archive is already closed")]
    Closed,
}

/// Output layout of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// One gzipped tarball `RUN/flows.tar.gz` (the manifest is also its last member).
    #[default]
    TarGz,
    /// One JSON document per flow under `RUN/flows/`.
    Objects,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::TarGz => "tar-gz",
            Format::Objects => "objects",
        })
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tar-gz" => Ok(Format::TarGz),
            "objects" => Ok(Format::Objects),
            other => Err(format!("unknown format `{other}`; use tar-gz or objects")),
        }
    }
}

/// Where runs are written: a local directory or an S3 bucket and prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A local directory.
    Local(PathBuf),
    /// `s3://bucket/prefix`.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, without leading or trailing `/`.
        prefix: String,
    },
}

/// A destination string that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid destination `{given}`: {why}")]
pub struct BadDestination {
    /// What was given.
    pub given: String,
    /// What is wrong and how to fix it.
    pub why: String,
}

impl Destination {
    /// Parses `--to`: `s3://bucket[/prefix]` or a local path.
    pub fn parse(input: &str) -> Result<Destination, BadDestination> {
        let bad = |why: &str| BadDestination {
            given: input.to_string(),
            why: why.to_string(),
        };
        if input.trim().is_empty() {
            return Err(bad("it is empty; give a directory or s3://bucket/prefix"));
        }
        let lower = input.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("s3://").map(|_| &input[5..]) {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            validate_bucket(bucket).map_err(|why| bad(&why))?;
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|seg| seg == ".." || seg == ".") {
                return Err(bad("the prefix must not contain `.` or `..` segments"));
            }
            if prefix.contains("//") {
                return Err(bad("the prefix must not contain empty segments (`//`)"));
            }
            return Ok(Destination::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        if let Some((scheme, _)) = input.split_once("://") {
            return Err(bad(&format!(
                "unsupported scheme `{scheme}://`; use a local path or s3://bucket/prefix"
            )));
        }
        Ok(Destination::Local(PathBuf::from(input)))
    }
}

impl Destination {
    /// Whether the destination is an S3 bucket (the S3-only settings apply to it).
    pub fn is_s3(&self) -> bool {
        matches!(self, Destination::S3 { .. })
    }

    /// The local directory, when the destination is one.
    pub fn local_dir(&self) -> Option<&std::path::Path> {
        match self {
            Destination::Local(path) => Some(path),
            Destination::S3 { .. } => None,
        }
    }

    /// A run's location (`DEST/RUN`, `DEST/RUN/flows.tar.gz`, `DEST/RUN/manifest.json`,
    /// `s3://bucket/prefix/RUN`), already parsed as this destination, split into the destination
    /// holding the run and the run id; `Err` says how to name a run instead.
    pub fn split_run(&self) -> Result<(Destination, String), &'static str> {
        let strip = |s: &str| {
            let s = s.trim_end_matches('/');
            s.strip_suffix(ARCHIVE_NAME)
                .or_else(|| s.strip_suffix(MANIFEST_NAME))
                .filter(|rest| rest.is_empty() || rest.ends_with('/'))
                .unwrap_or(s)
                .trim_end_matches('/')
                .to_string()
        };
        match self {
            Destination::Local(path) => {
                let trimmed = PathBuf::from(strip(&path.to_string_lossy()));
                let run_id = trimmed
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .filter(|n| n != "." && n != "..")
                    .ok_or("give DEST/RUN, a path to a flows.tar.gz, or DEST with --latest")?;
                let parent = trimmed.parent().map(|p| p.to_path_buf()).unwrap_or_default();
                let parent = if parent.as_os_str().is_empty() {
                    ".".into()
                } else {
                    parent
                };
                Ok((Destination::Local(parent), run_id))
            }
            Destination::S3 { bucket, prefix } => {
                let prefix = strip(prefix);
                let (root, run_id) = match prefix.rsplit_once('/') {
                    Some((root, run)) => (root.to_string(), run.to_string()),
                    None if !prefix.is_empty() => (String::new(), prefix),
                    None => return Err("give s3://bucket/prefix/RUN, or s3://bucket/prefix with --latest"),
                };
                let root = Destination::S3 {
                    bucket: bucket.clone(),
                    prefix: root,
                };
                Ok((root, run_id))
            }
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Local(p) => write!(f, "{}", p.display()),
            Destination::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Destination::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// Checks an S3 bucket name against the general-purpose bucket naming rules.
pub fn validate_bucket(bucket: &str) -> Result<(), String> {
    if bucket.is_empty() {
        return Err("the bucket name is missing; write s3://BUCKET/PREFIX".into());
    }
    if !(3..=63).contains(&bucket.len()) {
        return Err(format!("bucket name `{bucket}` must be 3 to 63 characters long"));
    }
    if !bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        return Err(format!(
            "bucket name `{bucket}` may hold only lowercase letters, digits, `-` and `.`"
        ));
    }
    let first = bucket.chars().next().unwrap_or('-');
    let last = bucket.chars().last().unwrap_or('-');
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Err(format!(
            "bucket name `{bucket}` must start and end with a letter or digit"
        ));
    }
    if bucket.contains("..") {
        return Err(format!("bucket name `{bucket}` must not contain `..`"));
    }
    Ok(())
}

/// The store a destination names: the one place that turns a kind of destination into a store.
/// Nothing is read or written yet (an S3 client is built; a local path that is a file is
/// refused); each use says what is wrong (a missing bucket, a denied prefix, a missing directory).
pub async fn open_store(destination: &Destination, options: &StoreOptions) -> Result<Arc<dyn Store>, SinkError> {
    match destination {
        Destination::Local(root) => {
            if let Ok(meta) = tokio::fs::metadata(root).await
                && !meta.is_dir()
            {
                return Err(SinkError::NotADirectory { path: root.clone() });
            }
            Ok(Arc::new(local::LocalStore::new(root)))
        }
        Destination::S3 { bucket, prefix } => Ok(Arc::new(s3::S3Store::new(bucket, prefix, &options.s3).await)),
    }
}

/// Checks `destination` once (it is writable, the run id is free), claims the run id for this
/// process (a second export with the same id fails here) and returns the sink for `format`.
/// Nothing of the run is written until the first document or the manifest arrives; a run that
/// fails to authenticate gives its claim back ([`Sink::release`]).
pub async fn open(
    destination: &Destination,
    run_id: &str,
    format: Format,
    options: &StoreOptions,
) -> Result<Box<dyn Sink>, SinkError> {
    let store = open_store(destination, options).await?;
    store.claim(run_id).await?;
    let in_flight = store.writes_in_flight();
    Ok(with_format(RunDir::new(store, run_id), format, in_flight))
}

/// Checks `destination` as [`open`] does (writable, the run id free) without claiming the run id
/// or writing anything (`plan`); returns where the run would go.
pub async fn check(destination: &Destination, run_id: &str, options: &StoreOptions) -> Result<String, SinkError> {
    let store = open_store(destination, options).await?;
    store.check_run(run_id).await?;
    Ok(RunDir::new(store, run_id).location())
}

/// Why a destination's probe (`doctor`) failed.
#[derive(Debug)]
pub enum ProbeError {
    /// The destination cannot be used at all (missing, denied, not a directory).
    Unusable(SinkError),
    /// It can be listed but a probe object cannot be written.
    NotWritable(SinkError),
}

/// Checks `destination` the way a run uses it, then writes and removes one probe under it
/// (`doctor`). Says what was done, with a warning when the probe could not be removed.
pub async fn probe(destination: &Destination, options: &StoreOptions) -> Result<String, ProbeError> {
    const PROBE_RUN: &str = ".flowvault-doctor";
    let store = open_store(destination, options).await.map_err(ProbeError::Unusable)?;
    store.check_run(PROBE_RUN).await.map_err(ProbeError::Unusable)?;
    match store.probe().await {
        Ok(None) => Ok(format!("{destination}: writable (a probe was written and removed)")),
        Ok(Some(warning)) => Ok(format!("{destination}: listed and written; {warning}")),
        Err(e) => Err(ProbeError::NotWritable(e)),
    }
}

/// The sink for `format` into a run of an already checked (and claimed) store.
pub fn with_format(run: RunDir, format: Format, in_flight: usize) -> Box<dyn Sink> {
    match format {
        Format::TarGz => Box::new(TarGzSink::new(run)),
        Format::Objects => Box::new(ObjectsSink::new(run, in_flight)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_local_and_s3_destinations() {
        assert_eq!(Destination::parse("./out").unwrap(), Destination::Local("./out".into()));
        assert_eq!(
            Destination::parse("s3://my-bucket/a/b/").unwrap(),
            Destination::S3 {
                bucket: "my-bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            Destination::parse("s3://my-bucket").unwrap(),
            Destination::S3 {
                bucket: "my-bucket".into(),
                prefix: "".into()
            }
        );
    }

    #[test]
    fn malformed_s3_urls_say_what_is_wrong() {
        for (input, needle) in [
            ("s3://", "bucket name is missing"),
            ("s3://Bad_Bucket", "lowercase"),
            ("s3://ab", "3 to 63"),
            ("s3://-bucket", "start and end"),
            ("s3://bucket/../x", "`..`"),
            ("gs://bucket", "unsupported scheme"),
            ("", "empty"),
        ] {
            let err = Destination::parse(input).unwrap_err().to_string();
            assert!(err.contains(needle), "{input}: {err}");
        }
    }
}
