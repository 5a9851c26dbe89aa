//! The previous run an incremental export (`--since`) carries unchanged flows from.
//!
//! A flow is carried, not fetched, when its listing row (every field, canonicalized) is the one
//! the previous run recorded, and every document this run wants of it is in the previous run at
//! the same path, same content and version, and still has the SHA-256 the previous manifest
//! says. Anything else — a changed row, a new flow, a document missing or damaged — is fetched.
//! A previous run that cannot be used at all (missing, incomplete, another org, too old to rest
//! on: `--full-every`) makes a full run, and the manifest says why.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use tracing::{info, warn};

use super::naming::path_hash;
use super::rows::RowLog;
use crate::archive::{self, Latest, RunHandle};
use crate::genesys::{FlowId, Organization};
use crate::manifest::{Content, Document, FlowRecord, Manifest, ObjectRecord, Outcome, RunRef, Source};
use crate::sink::{CopySource, StoreOptions};

/// `--since` and `--full-every`.
#[derive(Debug, Clone)]
pub struct SinceOptions {
    /// A run as `verify` takes it (`DEST/RUN`, `s3://bucket/prefix/RUN`), or with `latest` the
    /// destination whose newest complete run to use.
    pub spec: String,
    /// Use the newest complete run of `spec`.
    pub latest: bool,
    /// A run is full when the last full run started longer ago than this.
    pub full_every: Duration,
    /// How to reach the store the run is in.
    pub store: StoreOptions,
}

/// A usable previous run.
pub(super) struct Base {
    /// Its run id.
    pub run_id: String,
    /// The full run it rests on.
    pub last_full: RunRef,
    /// The page size its listing ended with (what the API accepted), to start this run's at.
    pub page_size: Option<u64>,
    /// The previous run's carryable rows, on disk, and where each flow's is.
    rows: RowLog,
    index: HashMap<FlowId, usize>,
    /// The previous run's exported Architect objects, by kind and id.
    objects: HashMap<(String, String), ObjectRecord>,
    run: RunHandle,
    /// The previous archive's members, extracted (and verified) on first use.
    archive: Option<OnceCell<Option<Extracted>>>,
    /// Copy objects inside the store rather than through flowvault.
    server_copy: bool,
    /// Documents carried by a copy inside the store, and through flowvault.
    copied: std::sync::atomic::AtomicU64,
    read: std::sync::atomic::AtomicU64,
}

/// How a carried document reaches the new run.
pub(super) enum Carry {
    /// Its bytes, read and verified.
    Bytes(Bytes),
    /// A store-side copy of a verified object.
    Copy(CopySource),
}

/// What carrying a flow came to.
pub(super) struct Carried {
    pub documents: Vec<(Document, Carry)>,
    pub from: String,
    pub fetched_in: String,
}

/// Opens the previous run `options` name, or says why this run is a full one (`None`: no
/// `--since`). `org` is the org this run reads.
pub(super) async fn open(
    options: Option<&SinceOptions>,
    org: Option<&Organization>,
    server_copy: bool,
) -> (Option<Base>, Option<String>) {
    let Some(options) = options else {
        return (None, None);
    };
    match try_open(options, org, server_copy).await {
        Ok(base) => {
            info!(
                previous = %base.run.location,
                carryable = base.index.len(),
                "incremental run: unchanged flows are carried over from {}",
                base.run.location
            );
            (Some(base), None)
        }
        Err((why, expected)) => {
            if expected {
                info!("fetching every flow: {why}");
            } else {
                warn!("fetching every flow: {why}");
            }
            (None, Some(why))
        }
    }
}

/// The base, or why there is none and whether that is expected (a full run due) or a problem.
async fn try_open(
    options: &SinceOptions,
    org: Option<&Organization>,
    server_copy: bool,
) -> Result<Base, (String, bool)> {
    let problem = |why: String| (why, false);
    let latest = options.latest.then_some(Latest::Complete);
    let run = archive::locate(&options.spec, latest, &options.store)
        .await
        .map_err(|e| problem(format!("the previous run cannot be used: {e}")))?;
    // Read row by row: only the carryable rows are kept, in a temporary file.
    let (m, (rows, index)) = run
        .manifest_streamed((RowLog::new(), HashMap::new()), |(rows, index), row| {
            if carryable(&row) {
                let id = FlowId::new(&row.id);
                index.insert(id, rows.push(row));
            }
            true
        })
        .await
        .map_err(|e| problem(format!("the previous run cannot be used: {e}")))?;
    let location = run.location.clone();
    if !m.complete {
        return Err(problem(format!("the previous run {location} is not complete")));
    }
    if let (Some(now), Some(then)) = (org, &m.organization)
        && now.id != then.id
    {
        return Err(problem(format!(
            "the previous run {location} is of another org ({}, not {})",
            then.describe(),
            now.describe()
        )));
    }
    let last_full = last_full_run(&m);
    if let Some(age) = age_of(&last_full.started_at)
        && age > options.full_every
    {
        let why = format!(
            "a full run is due: the last full run ({}, started {}) is older than --full-every {}",
            last_full.run_id,
            last_full.started_at,
            humantime(options.full_every)
        );
        return Err((why, true));
    }
    let objects = m
        .objects
        .into_iter()
        .filter(|o| o.outcome == Outcome::Exported && o.listing_sha256.is_some())
        .map(|o| ((o.kind.clone(), o.id.clone()), o))
        .collect();
    Ok(Base {
        run_id: run.run_id.clone(),
        last_full,
        page_size: m.listing.passes.last().map(|p| p.page_size).filter(|s| *s > 0),
        rows,
        index,
        objects,
        archive: run.has_archive.then(OnceCell::new),
        server_copy: server_copy && !run.has_archive,
        run,
        copied: Default::default(),
        read: Default::default(),
    })
}

/// The full run a manifest rests on: its own record, or itself for a manifest from before
/// incremental runs (a full run).
fn last_full_run(m: &Manifest) -> RunRef {
    m.last_full_run.clone().unwrap_or_else(|| RunRef {
        run_id: m.run_id.clone(),
        started_at: m.started_at.clone(),
    })
}

fn age_of(started_at: &str) -> Option<Duration> {
    let started = time::OffsetDateTime::parse(started_at, &time::format_description::well_known::Rfc3339).ok()?;
    let age = time::OffsetDateTime::now_utc() - started;
    Some(Duration::try_from(age).unwrap_or(Duration::ZERO))
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        _ if s >= 86_400 && s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        _ if s >= 3600 && s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s >= 60 && s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// Whether a flow can be carried from this row: exported, with documents and a listing fingerprint.
fn carryable(row: &FlowRecord) -> bool {
    row.outcome == Outcome::Exported && !row.documents.is_empty() && row.listing_sha256.is_some()
}

/// What a flow's carry rests on: the previous run's documents, and the run that fetched them.
pub(super) struct Planned {
    documents: Vec<Document>,
    fetched_in: String,
}

/// One document this run wants of a flow.
pub(super) struct Want<'a> {
    pub contents: &'a [Content],
    pub version: Option<&'a str>,
    pub path: &'a str,
}

impl Base {
    /// The previous run's documents for flow `id` when its listing row is unchanged and every
    /// wanted document is there (same content, version and path); `optional` ones are added when
    /// present.
    pub fn plan(&self, id: &str, listing_sha256: &str, wanted: &[Want<'_>], optional: &[Want<'_>]) -> Option<Planned> {
        let row = self.rows.get(*self.index.get(&FlowId::new(id))?)?;
        if row.listing_sha256.as_deref() != Some(listing_sha256) {
            return None;
        }
        let find = |w: &Want<'_>| {
            row.documents
                .iter()
                .find(|d| d.path == w.path && d.contents == w.contents && d.version.as_deref() == w.version)
                .cloned()
        };
        let mut documents = wanted.iter().map(find).collect::<Option<Vec<_>>>()?;
        documents.extend(optional.iter().filter_map(find));
        // The run that fetched it: the previous one, or further back for a row it carried.
        let fetched_in = match row.source {
            Some(Source::Carried) => row.fetched_in.unwrap_or_else(|| self.run_id.clone()),
            _ => self.run_id.clone(),
        };
        Some(Planned { documents, fetched_in })
    }

    /// Reads and verifies the `planned` documents of flow `id` (or, for objects in S3, checks the
    /// store's SHA-256 so they can be copied inside it). `None`, with the reason logged, when any
    /// of them cannot be carried: the flow is then fetched.
    pub async fn carry(&self, id: &str, planned: Planned) -> Option<Carried> {
        // A previous archive that could not be unpacked was reported once: its flows are fetched.
        if let Some(cell) = &self.archive
            && cell
                .get_or_init(|| extract(&self.run, &self.rows, &self.objects))
                .await
                .is_none()
        {
            return None;
        }
        let mut out = Vec::with_capacity(planned.documents.len());
        for doc in planned.documents {
            match self.carry_one(&doc).await {
                Ok(carry) => out.push((doc, carry)),
                Err(why) => {
                    warn!(
                        "flow {id} is fetched: its document {} in {} {why}",
                        doc.path, self.run.location
                    );
                    return None;
                }
            }
        }
        Some(Carried {
            documents: out,
            from: self.run_id.clone(),
            fetched_in: planned.fetched_in,
        })
    }

    async fn carry_one(&self, doc: &Document) -> Result<Carry, String> {
        if let Some(cell) = &self.archive {
            let extracted = cell.get_or_init(|| extract(&self.run, &self.rows, &self.objects)).await;
            let Some(extracted) = extracted else {
                return Err("cannot be read (the previous archive is unreadable)".into());
            };
            let bytes = extracted.read(&doc.path).ok_or("is missing or damaged")?;
            return verified(bytes, &doc.sha256);
        }
        let name = self.run.name(&doc.path);
        if self.server_copy
            && let Some(source) = self.run.reader.copy_source(&name)
        {
            match self.run.reader.stored_sha256(&name).await {
                Ok(Some(b64)) => {
                    let stored = base64::engine::general_purpose::STANDARD
                        .decode(&b64)
                        .map(hex::encode)
                        .unwrap_or_default();
                    return if stored == doc.sha256 {
                        Ok(Carry::Copy(source))
                    } else {
                        Err(format!("has SHA-256 {stored}, not {}", doc.sha256))
                    };
                }
                Ok(None) => {} // stored without a checksum: read it instead
                Err(e) => return Err(format!("cannot be checked: {e}")),
            }
        }
        match self.run.reader.read(&name).await {
            Ok(Some(bytes)) => verified(bytes, &doc.sha256),
            Ok(None) => Err("is missing".into()),
            Err(e) => Err(format!("cannot be read: {e}")),
        }
    }

    /// The previous run's row of Architect object `id` of `kind`, when it was exported.
    pub fn object(&self, kind: &str, id: &str) -> Option<&ObjectRecord> {
        self.objects.get(&(kind.to_string(), id.to_string()))
    }

    /// Reads and verifies one document of an Architect object from the previous run (or checks
    /// it for a copy inside the store); `None`, with the reason logged, when it cannot be carried.
    pub async fn carry_document(&self, what: &str, doc: &Document) -> Option<Carry> {
        match self.carry_one(doc).await {
            Ok(carry) => Some(carry),
            Err(why) => {
                warn!(
                    "{what} is fetched: its document {} in {} {why}",
                    doc.path, self.run.location
                );
                None
            }
        }
    }

    /// Counts documents carried into the new run once they are written (so the log's counts are
    /// the manifest's): `copies` copied inside the store, `reads` read, verified and written.
    pub fn count_carried(&self, copies: u64, reads: u64) {
        self.copied.fetch_add(copies, std::sync::atomic::Ordering::Relaxed);
        self.read.fetch_add(reads, std::sync::atomic::Ordering::Relaxed);
    }

    /// Logs how the carried documents travelled.
    pub fn log_summary(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        info!(
            copied = self.copied.load(Relaxed),
            read = self.read.load(Relaxed),
            "carried documents: {} copied inside the store, {} read, verified and written",
            self.copied.load(Relaxed),
            self.read.load(Relaxed)
        );
    }
}

fn verified(bytes: Bytes, sha256: &str) -> Result<Carry, String> {
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual == sha256 {
        Ok(Carry::Bytes(bytes))
    } else {
        Err(format!("has SHA-256 {actual}, not {sha256} as its manifest says"))
    }
}

/// The previous archive's members that the manifest names, unpacked into a temporary file.
struct Extracted {
    file: Arc<File>,
    /// By path hash: where each member is in the file.
    members: HashMap<u64, (u64, u32)>,
}

impl Extracted {
    fn read(&self, path: &str) -> Option<Bytes> {
        let (offset, len) = *self.members.get(&path_hash(path))?;
        let mut buf = vec![0; len as usize];
        self.file.read_exact_at(&mut buf, offset).ok()?;
        Some(Bytes::from(buf))
    }
}

/// Streams the previous archive once, keeping the members some carryable row names (a tar.gz
/// can only be read front to back; the new archive wants them in its own order). When the scratch
/// directory cannot hold them (checked first, and on any failed write), one warning names it and
/// the space needed, and the flows are fetched instead.
async fn extract(
    run: &RunHandle,
    rows: &RowLog,
    objects: &HashMap<(String, String), ObjectRecord>,
) -> Option<Extracted> {
    let object_documents = || objects.values().flat_map(|o| o.documents.iter());
    let needed: u64 = rows
        .iter()
        .flat_map(|(_, r)| r.documents.into_iter().map(|d| d.bytes))
        .sum::<u64>()
        + object_documents().map(|d| d.bytes).sum::<u64>();
    let scratch = std::env::temp_dir();
    let no_room = |why: String| {
        warn!(
            "cannot unpack the previous archive {} into TMPDIR {} ({why}; its documents need {needed} bytes): the flows it holds are fetched instead; set TMPDIR to a directory with room",
            run.location,
            scratch.display()
        );
    };
    if let Some(free) = crate::sink::free_bytes(&scratch)
        && free < needed
    {
        no_room(format!("{free} bytes free"));
        return None;
    }
    let file = match tempfile::tempfile() {
        Ok(f) => Arc::new(f),
        Err(e) => {
            no_room(format!("cannot create a temporary file: {e}"));
            return None;
        }
    };
    // The paths are hashed, not held: 50,000 flows' paths would be megabytes.
    let wanted: std::collections::HashSet<u64> = rows
        .iter()
        .flat_map(|(_, r)| r.documents.into_iter().map(|d| path_hash(&d.path)))
        .chain(object_documents().map(|d| path_hash(&d.path)))
        .collect();
    let writer = file.clone();
    let failed: Arc<std::sync::Mutex<Option<std::io::Error>>> = Arc::default();
    let failure = failed.clone();
    let mut end = 0u64;
    let unpacked = archive::each_member(
        run,
        move |name| wanted.contains(&path_hash(name)),
        move |name, body| {
            let len = u32::try_from(body.len()).ok()?;
            if let Err(e) = writer.write_all_at(body, end) {
                failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                return None;
            }
            let at = end;
            end += u64::from(len);
            Some((path_hash(name), (at, len)))
        },
    )
    .await;
    if let Some(e) = failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
        no_room(e.to_string());
        return None;
    }
    match unpacked {
        Ok(members) => Some(Extracted {
            file,
            members: members.into_iter().collect(),
        }),
        Err(e) => {
            warn!("the previous archive cannot be read ({e}); its flows are fetched");
            None
        }
    }
}

/// Checks, before a run starts, that the previous run `--since` names exists (`latest` always
/// does: without a complete run the run is full). `Err` says what to fix: a usage error.
pub async fn check_exists(options: &SinceOptions) -> Result<(), String> {
    if options.latest {
        return Ok(());
    }
    match archive::locate(&options.spec, None, &options.store).await {
        Ok(_) => Ok(()),
        Err(e @ (archive::ReadError::NoRun { .. } | archive::ReadError::Location(_))) => Err(e.to_string()),
        Err(archive::ReadError::Store(crate::sink::SinkError::Io { source, path, .. }))
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Err(format!("{} does not exist", path.display()))
        }
        // Anything else (a store that cannot be read now) is the run's to report: it goes full.
        Err(_) => Ok(()),
    }
}

/// The previous run `--since` names, when it is a tar.gz (unpacked into `TMPDIR` by a run): its
/// location and the bytes of the documents a run would unpack. `None` for anything else.
pub async fn previous_archive_size(options: &SinceOptions) -> Option<(String, u64)> {
    let latest = options.latest.then_some(Latest::Complete);
    let run = archive::locate(&options.spec, latest, &options.store).await.ok()?;
    if !run.has_archive {
        return None;
    }
    let (_, bytes) = run
        .manifest_streamed(0u64, |bytes, row| {
            if carryable(&row) {
                *bytes += row.documents.iter().map(|d| d.bytes).sum::<u64>();
            }
            true
        })
        .await
        .ok()?;
    Some((run.location.clone(), bytes))
}

impl Base {
    /// What flow `id`'s row in the previous run says it references: a carried flow's
    /// configurations are those of that row, so its dependency report is carried with them.
    pub fn dependencies(&self, id: &str) -> Option<crate::manifest::Dependencies> {
        self.rows.get(*self.index.get(&FlowId::new(id))?)?.dependencies
    }
}
