//! `verify`: proves a run against its manifest, and the manifest against itself. Every document
//! is streamed through SHA-256 with one read buffer, never more than the manifest's byte count
//! plus one read (members no row names are skipped unread), so memory stays flat whatever the
//! archive holds. The manifest must parse with a known schema and agree with itself (rows,
//! totals, listing, `complete`); every path it names must lie inside the run; every document a
//! row names must exist and nothing else may; tar member names must be safe; each JSON document
//! must be `{"flow", "configuration"}` of the row's flow (an Architect object's, `{"kind",
//! "object"}` or `{"kind", "table", "rows"}` of its object; audio is hashed only); every
//! document of an Architect object row is checked like a flow's; the archive's last member must be the
//! manifest and equal the sidecar. `quick` (S3 objects only) compares the checksums the store
//! recorded instead of reading: a weaker check.
//!
//! The rules are public so `restore` reads only what `verify` accepts: [`verify`] for a run,
//! [`consistency`] for a manifest, [`unsafe_path`] / [`unsafe_member`] for names.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;

use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{ReadError, RunHandle};
use crate::document::{Identity, ObjectIdentity, identify, identify_object};
use crate::manifest::{Document, FlowRecord, Manifest, ObjectRecord, Outcome, Totals};
use crate::sink::{ARCHIVE_NAME, MANIFEST_NAME};

/// One thing that does not hold, with the flow, path, expected and found where they apply.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// Flow id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<String>,
    /// Flow name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_name: Option<String>,
    /// The Architect object's kind, for a problem of an object's document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_kind: Option<String>,
    /// The Architect object's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// The Architect object's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_name: Option<String>,
    /// Document path (tar member or object, relative to the run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What is wrong.
    pub problem: String,
    /// What the manifest says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What is stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
}

impl Problem {
    /// A problem of the manifest itself about one row: of the run as a whole (a manifest that
    /// lies about one row cannot be trusted about the others), the flow named in the text.
    pub fn manifest_row(row: &FlowRecord, problem: impl std::fmt::Display) -> Problem {
        Problem::at(MANIFEST_NAME, format!("flow {} ({:?}): {problem}", row.id, row.name))
    }

    /// A problem of the run as a whole (no flow, no path).
    pub fn run(problem: impl Into<String>) -> Problem {
        Problem {
            flow_id: None,
            flow_name: None,
            object_kind: None,
            object_id: None,
            object_name: None,
            path: None,
            problem: problem.into(),
            expected: None,
            found: None,
        }
    }

    /// A problem of one stored path.
    pub fn at(path: &str, problem: impl Into<String>) -> Problem {
        Problem {
            path: Some(path.to_string()),
            ..Problem::run(problem)
        }
    }

    /// A problem of one flow's document.
    pub fn of(row: &FlowRecord, doc: &Document, problem: impl Into<String>) -> Problem {
        Problem {
            flow_id: Some(row.id.clone()),
            flow_name: Some(row.name.clone()),
            ..Problem::at(&doc.path, problem)
        }
    }

    /// A problem of one Architect object's document.
    pub fn of_object(row: &ObjectRecord, doc: &Document, problem: impl Into<String>) -> Problem {
        Problem {
            object_kind: Some(row.kind.clone()),
            object_id: Some(row.id.clone()),
            object_name: Some(row.name.clone()),
            ..Problem::at(&doc.path, problem)
        }
    }

    /// A problem of the run as a whole, not of one flow or one Architect object.
    pub fn is_run_level(&self) -> bool {
        self.flow_id.is_none() && self.object_id.is_none()
    }

    /// With what the manifest says and what is stored.
    pub fn expected(mut self, expected: impl Into<String>, found: impl Into<String>) -> Problem {
        self.expected = Some(expected.into());
        self.found = Some(found.into());
        self
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(id) = &self.flow_id {
            write!(f, "flow {id}")?;
            if let Some(name) = &self.flow_name {
                write!(f, " ({name:?})")?;
            }
            write!(f, ": ")?;
        }
        if let (Some(kind), Some(id)) = (&self.object_kind, &self.object_id) {
            write!(f, "{kind} {id}")?;
            if let Some(name) = &self.object_name {
                write!(f, " ({name:?})")?;
            }
            write!(f, ": ")?;
        }
        if let Some(path) = &self.path {
            write!(f, "{path}: ")?;
        }
        write!(f, "{}", self.problem)?;
        if let (Some(e), Some(x)) = (&self.expected, &self.found) {
            write!(f, " (expected {e}, found {x})")?;
        }
        Ok(())
    }
}

/// What `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// `DEST/RUN`.
    pub location: String,
    /// `full` (every byte read) or `quick` (stored checksums compared, nothing downloaded).
    pub mode: &'static str,
    /// The run's format, from its manifest.
    pub format: Option<String>,
    /// Documents whose bytes (or stored checksum) matched.
    pub documents_verified: u64,
    /// Bytes read and hashed.
    pub bytes_read: u64,
    /// Why the run is not complete, as its manifest says (`None` for a complete run): bytes that
    /// verify do not make an incomplete run whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
    /// Everything that does not hold; empty when the run verifies.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Problems of the run as a whole (the manifest, the archive), not of one flow or object.
    pub fn run_problems(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.is_run_level())
    }

    /// Problems of Architect object `id` of `kind`.
    pub fn object_problems<'a>(&'a self, kind: &'a str, id: &'a str) -> impl Iterator<Item = &'a Problem> {
        self.problems
            .iter()
            .filter(move |p| p.object_kind.as_deref() == Some(kind) && p.object_id.as_deref() == Some(id))
    }

    /// Problems of flow `id`.
    pub fn flow_problems<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Problem> {
        self.problems.iter().filter(move |p| p.flow_id.as_deref() == Some(id))
    }
}

/// Who a stored JSON document says it is about.
#[derive(Debug, Clone)]
enum Who {
    /// A flow document's flow.
    Flow(Identity),
    /// An Architect object's (or a table's rows') object.
    Object(ObjectIdentity),
}

/// How a stored document is read: a flow document, an Architect object's JSON, or bytes only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Flow,
    Object,
    Bytes,
}

impl Shape {
    fn of(path: &str) -> Shape {
        match (path.starts_with("architect/"), path.ends_with(".json")) {
            (_, false) => Shape::Bytes,
            (true, true) => Shape::Object,
            (false, true) => Shape::Flow,
        }
    }
}

/// A document as stored: its size, SHA-256 (`None`: not read, its size already differs), and
/// the flow or object it is about (JSON documents).
#[derive(Debug, Clone)]
struct Seen {
    size: u64,
    sha256: Option<String>,
    flow: Result<Option<Who>, String>,
}

impl Seen {
    /// Stored but not read (unnamed by any row, or of the wrong size).
    fn unread(size: u64) -> Seen {
        Seen {
            size,
            sha256: None,
            flow: Ok(None),
        }
    }
}

/// Counts and hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// Reads one stored document as a stream: its size and SHA-256 and, for a JSON document, the
/// flow or object it is about. Reads at most `limit + 1` bytes through one buffer, whatever it holds.
fn inspect(body: impl Read, shape: Shape, limit: u64) -> std::io::Result<Seen> {
    let mut reader = std::io::BufReader::with_capacity(
        64 * 1024,
        Hashing {
            inner: body.take(limit.saturating_add(1)),
            hasher: Sha256::new(),
            read: 0,
        },
    );
    let flow = match shape {
        Shape::Flow => identify(&mut reader)
            .map(|i| Some(Who::Flow(i)))
            .map_err(|e| e.to_string()),
        Shape::Object => identify_object(&mut reader)
            .map(|i| Some(Who::Object(i)))
            .map_err(|e| e.to_string()),
        Shape::Bytes => Ok(None),
    };
    std::io::copy(&mut reader, &mut std::io::sink())?;
    let hashing = reader.into_inner();
    Ok(Seen {
        size: hashing.read,
        sha256: Some(hex::encode(hashing.hasher.finalize())),
        flow,
    })
}

/// Verifies `run`; `Err` only when the run cannot be read at all.
pub async fn verify(run: &RunHandle, quick: bool) -> Result<VerifyReport, ReadError> {
    let mut report = VerifyReport {
        location: run.location.clone(),
        mode: if quick { "quick" } else { "full" },
        format: None,
        documents_verified: 0,
        bytes_read: 0,
        incomplete: None,
        problems: Vec::new(),
    };
    let sidecar = run.sidecar().await?;
    let mut manifest = match &sidecar {
        Some(bytes) => Manifest::from_slice(bytes).map_err(|e| Problem::at(MANIFEST_NAME, e.to_string())),
        None => Err(Problem::at(MANIFEST_NAME, "the manifest beside the run is missing")),
    };
    if run.has_archive {
        if let Err(p) = &manifest {
            // The archive's own copy of the manifest still says what the archive must hold.
            report.problems.push(p.clone());
            manifest = match super::archive_manifest(run)
                .await
                .ok()
                .map(|b| Manifest::from_slice(&b))
            {
                Some(Ok(m)) => Ok(m),
                _ => Err(p.clone()),
            };
        }
        let digest = sidecar
            .as_ref()
            .map(|b| (b.len() as u64, hex::encode(Sha256::digest(b))));
        let stored = read_archive(run, manifest.as_ref().ok(), digest, &mut report).await?;
        if let Ok(m) = manifest {
            judge(&m, &stored, &mut report);
        }
        return Ok(report);
    }
    let manifest = match manifest {
        Ok(m) => m,
        Err(p) => {
            report.problems.push(p);
            return Ok(report);
        }
    };
    if manifest.archive.is_some() {
        report.format = Some(manifest.format.clone());
        report.problems.push(Problem::at(
            ARCHIVE_NAME,
            "the manifest names an archive that is not stored",
        ));
        report.problems.extend(consistency(&manifest));
        report.incomplete = incomplete(&manifest);
        return Ok(report);
    }
    let stored = read_objects(run, &manifest, quick, &mut report).await?;
    judge(&manifest, &stored, &mut report);
    Ok(report)
}

/// The manifest against itself and against what is stored.
fn judge(manifest: &Manifest, stored: &BTreeMap<String, Seen>, report: &mut VerifyReport) {
    report.format = Some(manifest.format.clone());
    report.problems.extend(consistency(manifest));
    compare(manifest, stored, report);
    report.incomplete = incomplete(manifest);
}

/// Why an incomplete run is incomplete, with its counts; `None` when the manifest says complete.
fn incomplete(m: &Manifest) -> Option<String> {
    if m.complete {
        return None;
    }
    let reason = m
        .incomplete_reason
        .clone()
        .unwrap_or_else(|| "the manifest says \"complete\": false".into());
    Some(format!(
        "{reason} ({} of {} flows exported, {} failed, {} skipped)",
        m.totals.exported, m.totals.listed, m.totals.failed, m.totals.skipped
    ))
}

fn totals_text(t: &Totals) -> String {
    format!(
        "listed {}, exported {}, not_found {}, failed {}, skipped {}, carried {}",
        t.listed, t.exported, t.not_found, t.failed, t.skipped, t.carried
    )
}

/// The manifest against itself: its totals count its rows; a manifest that says complete has
/// no failed or skipped row, no listing discrepancy, and as many rows as its listing found
/// (and its listing passes); no flow has two rows and no document path two owners.
pub fn consistency(m: &Manifest) -> Vec<Problem> {
    let mut problems = Vec::new();
    let counted = Totals::of(m.flows.iter());
    if counted != m.totals {
        problems.push(
            Problem::at(
                MANIFEST_NAME,
                "the totals do not count the rows (a row removed or added?)",
            )
            .expected(totals_text(&m.totals), totals_text(&counted)),
        );
    }
    let (mut ids, mut paths) = (HashSet::new(), HashSet::new());
    for row in &m.flows {
        if !row.id.is_empty() && !ids.insert(row.id.as_str()) {
            problems.push(Problem::manifest_row(row, "the flow has two rows"));
        }
        for doc in &row.documents {
            if !paths.insert(doc.path.as_str()) {
                problems.push(Problem::manifest_row(
                    row,
                    format!("{}: two documents name this path", doc.path),
                ));
            }
        }
        if m.complete && matches!(row.outcome, Outcome::Failed | Outcome::Skipped) {
            let outcome = if row.outcome == Outcome::Failed {
                "failed"
            } else {
                "skipped"
            };
            problems.push(Problem::manifest_row(
                row,
                format!("the manifest says complete, yet this flow is {outcome}"),
            ));
        }
    }
    problems.extend(object_consistency(m, &mut paths));
    if m.complete {
        problems.extend(complete_listing(m));
    }
    problems
}

/// The object rows against themselves: no object has two rows, no path two owners, and a
/// manifest that says complete has no failed or skipped object.
fn object_consistency<'a>(m: &'a Manifest, paths: &mut HashSet<&'a str>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut ids = HashSet::new();
    let about = |row: &ObjectRecord, problem: String| {
        Problem::at(
            MANIFEST_NAME,
            format!("{} {} ({:?}): {problem}", row.kind, row.id, row.name),
        )
    };
    for row in &m.objects {
        if !ids.insert((row.kind.as_str(), row.id.as_str())) {
            problems.push(about(row, "the object has two rows".into()));
        }
        for doc in &row.documents {
            if !paths.insert(doc.path.as_str()) {
                problems.push(about(row, format!("{}: two documents name this path", doc.path)));
            }
        }
        if m.complete && matches!(row.outcome, Outcome::Failed | Outcome::Skipped) {
            problems.push(about(
                row,
                format!("the manifest says complete, yet this object is {:?}", row.outcome).to_lowercase(),
            ));
        }
    }
    problems
}

/// What a complete manifest's listing must agree with.
fn complete_listing(m: &Manifest) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Some(d) = &m.listing.discrepancy {
        problems.push(Problem::at(
            MANIFEST_NAME,
            format!("the manifest says complete, yet its listing was not proven: {d}"),
        ));
    }
    if m.incomplete_reason.is_some() {
        problems.push(Problem::at(
            MANIFEST_NAME,
            "the manifest says complete, yet gives a reason it is incomplete",
        ));
    }
    let rows = m.flows.len() as u64;
    if m.listing.listed != rows {
        problems.push(
            Problem::at(
                MANIFEST_NAME,
                "the listing found another number of flows than there are rows",
            )
            .expected(format!("{} rows", m.listing.listed), format!("{rows} rows")),
        );
    }
    let passes: u64 = m.listing.passes.iter().map(|p| p.new_flows).sum();
    if !m.listing.passes.is_empty() && passes != m.listing.listed {
        problems.push(
            Problem::at(
                MANIFEST_NAME,
                "the listing passes found another number of flows than the listing",
            )
            .expected(format!("{} flows", m.listing.listed), format!("{passes} flows")),
        );
    }
    problems
}

/// Why a path (a tar member, or a document the manifest names) is not safely inside the run,
/// if it is not: empty, absolute, `..` or `.`, `\`, an empty segment, or control characters.
pub fn path_outside_run(path: &str) -> Option<&'static str> {
    if path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path.split('/').any(|s| s == ".." || s == "." || s.is_empty())
    {
        return Some("absolute, `..`, `\\` or an empty segment");
    }
    if path.chars().any(char::is_control) {
        return Some("control characters");
    }
    None
}

/// [`path_outside_run`] as a sentence: what a row's path must never be.
pub fn unsafe_path(name: &str) -> Option<String> {
    path_outside_run(name).map(|why| format!("not inside the run ({why})"))
}

/// Why a tar member name or type is unsafe to extract, if it is.
pub fn unsafe_member(name: &str, kind: tar::EntryType) -> Option<String> {
    if !matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous) {
        return Some(format!("not a regular file (tar type {:?})", kind));
    }
    path_outside_run(name).map(|why| format!("unsafe member name ({why})"))
}

/// The documents a manifest names (flows' and objects'), by safe path, with their byte counts.
fn expected_sizes(manifest: Option<&Manifest>) -> HashMap<String, u64> {
    manifest
        .map(|m| {
            owned_documents(m)
                .filter(|(_, d)| unsafe_path(&d.path).is_none())
                .map(|(_, d)| (d.path.clone(), d.bytes))
                .collect()
        })
        .unwrap_or_default()
}

/// The row a document belongs to: a flow's or an Architect object's.
#[derive(Debug, Clone, Copy)]
enum Owner<'a> {
    Flow(&'a FlowRecord),
    Object(&'a ObjectRecord),
}

impl Owner<'_> {
    fn problem(self, doc: &Document, problem: impl Into<String>) -> Problem {
        match self {
            Owner::Flow(row) => Problem::of(row, doc, problem),
            Owner::Object(row) => Problem::of_object(row, doc, problem),
        }
    }
}

/// Every document a manifest names, flows' then objects', with its row.
fn owned_documents(m: &Manifest) -> impl Iterator<Item = (Owner<'_>, &Document)> {
    m.documents()
        .map(|(r, d)| (Owner::Flow(r), d))
        .chain(m.object_documents().map(|(r, d)| (Owner::Object(r), d)))
}

/// What one pass over the archive found.
#[derive(Default)]
struct ArchiveRead {
    stored: BTreeMap<String, Seen>,
    problems: Vec<Problem>,
    bytes: u64,
}

/// Streams the archive once: each member the manifest names is hashed (at most its expected
/// size plus one read), others are skipped unread; the manifest member is hashed and compared
/// with the sidecar's `digest` (length, SHA-256). Unsafe names, duplicates, a misplaced
/// manifest and a truncated stream are problems.
async fn read_archive(
    run: &RunHandle,
    manifest: Option<&Manifest>,
    digest: Option<(u64, String)>,
    report: &mut VerifyReport,
) -> Result<BTreeMap<String, Seen>, ReadError> {
    let Some(stream) = run.reader.open(&run.name(ARCHIVE_NAME)).await? else {
        return Err(ReadError::NoRun {
            location: run.location.clone(),
            why: format!("{ARCHIVE_NAME} vanished while it was read"),
        });
    };
    let expected = expected_sizes(manifest);
    let read = tokio::task::spawn_blocking(move || {
        let sync = tokio_util::io::SyncIoBridge::new(stream);
        scan_archive(sync, &expected, digest)
    })
    .await
    .map_err(|e| ReadError::Archive(e.to_string()))?;
    report.problems.extend(read.problems);
    report.bytes_read += read.bytes;
    Ok(read.stored)
}

/// The blocking pass of [`read_archive`].
fn scan_archive(body: impl Read, expected: &HashMap<String, u64>, digest: Option<(u64, String)>) -> ArchiveRead {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(body));
    let mut out = ArchiveRead::default();
    let (mut last, mut tail) = (String::new(), None::<Seen>);
    let entries = match archive.entries() {
        Ok(e) => e,
        Err(e) => {
            out.problems
                .push(Problem::at(ARCHIVE_NAME, format!("cannot be read: {e}")));
            return out;
        }
    };
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                out.problems.push(truncated(&last, &e));
                return out;
            }
        };
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if let Some(why) = unsafe_member(&name, entry.header().entry_type()) {
            out.problems.push(Problem::at(&name, why));
        }
        let size = entry.header().size().unwrap_or(0);
        let limit = match (name.as_str(), expected.get(&name)) {
            (MANIFEST_NAME, _) => digest.as_ref().map(|d| d.0),
            (_, Some(want)) => Some(*want),
            _ => None,
        };
        let seen = match limit {
            Some(limit) if limit == size => match inspect(&mut entry, member_shape(&name), limit) {
                Ok(seen) => seen,
                Err(e) => {
                    out.problems.push(truncated(&name, &e));
                    return out;
                }
            },
            _ => Seen::unread(size),
        };
        out.bytes += if seen.sha256.is_some() { seen.size } else { 0 };
        if name == MANIFEST_NAME {
            tail = Some(seen);
        } else {
            tail = None;
            if out.stored.insert(name.clone(), seen).is_some() {
                out.problems
                    .push(Problem::at(&name, "the archive holds this member twice"));
            }
        }
        last = name;
    }
    if last != MANIFEST_NAME {
        out.problems
            .push(Problem::at(ARCHIVE_NAME, "the last member is not manifest.json").expected(MANIFEST_NAME, last));
    }
    if let (Some(tail), Some((len, sha))) = (&tail, &digest)
        && (tail.size != *len || tail.sha256.as_ref() != Some(sha))
    {
        out.problems.push(Problem::at(
            MANIFEST_NAME,
            "the manifest beside the archive differs from the archive's last member",
        ));
    }
    out
}

/// How an archive member is read (the manifest member is hashed only).
fn member_shape(name: &str) -> Shape {
    if name == MANIFEST_NAME {
        Shape::Bytes
    } else {
        Shape::of(name)
    }
}

fn truncated(after: &str, e: &std::io::Error) -> Problem {
    let after = if after.is_empty() {
        "its start".to_string()
    } else {
        format!("member {after}")
    };
    Problem::at(
        ARCHIVE_NAME,
        format!("the archive is truncated or corrupt after {after}: {e}"),
    )
}

/// Every document the manifest names against what is stored, then whatever no row names.
fn compare(manifest: &Manifest, stored: &BTreeMap<String, Seen>, report: &mut VerifyReport) {
    let mut named = HashSet::new();
    for row in &manifest.flows {
        if row.outcome == Outcome::Exported && row.documents.is_empty() {
            report.problems.push(Problem {
                flow_id: Some(row.id.clone()),
                flow_name: Some(row.name.clone()),
                ..Problem::run("the row says exported but names no document")
            });
        }
        for doc in &row.documents {
            if let Some(why) = unsafe_path(&doc.path) {
                // Of the run: a manifest that points outside the run is not trusted at all.
                let problem = format!(
                    "flow {} ({:?}): the manifest names a path {why}; it is not read",
                    row.id, row.name
                );
                report.problems.push(Problem::at(&doc.path, problem));
                continue;
            }
            named.insert(doc.path.as_str());
            match stored.get(&doc.path) {
                None => report.problems.push(Problem::of(row, doc, "the document is missing")),
                Some(seen) => check(row, doc, seen, report),
            }
        }
    }
    for row in &manifest.objects {
        compare_object(row, stored, &mut named, report);
    }
    for path in stored.keys().filter(|p| !named.contains(p.as_str())) {
        report
            .problems
            .push(Problem::at(path, "stored, but no manifest row names it"));
    }
}

/// One Architect object's documents against what is stored: every one present, of its size and
/// SHA-256, and a JSON one about this object.
fn compare_object<'a>(
    row: &'a ObjectRecord,
    stored: &BTreeMap<String, Seen>,
    named: &mut HashSet<&'a str>,
    report: &mut VerifyReport,
) {
    if row.outcome == Outcome::Exported && row.documents.is_empty() {
        report.problems.push(Problem {
            object_kind: Some(row.kind.clone()),
            object_id: Some(row.id.clone()),
            object_name: Some(row.name.clone()),
            ..Problem::run("the row says exported but names no document")
        });
    }
    for doc in &row.documents {
        if let Some(why) = unsafe_path(&doc.path) {
            let problem = format!(
                "{} {} ({:?}): the manifest names a path {why}; it is not read",
                row.kind, row.id, row.name
            );
            report.problems.push(Problem::at(&doc.path, problem));
            continue;
        }
        named.insert(doc.path.as_str());
        let Some(seen) = stored.get(&doc.path) else {
            report
                .problems
                .push(Problem::of_object(row, doc, "the document is missing"));
            continue;
        };
        let before = report.problems.len();
        check_bytes(Owner::Object(row), doc, seen, report);
        match &seen.flow {
            Err(why) => report.problems.push(Problem::of_object(row, doc, why.clone())),
            Ok(Some(Who::Object(who))) => {
                for (what, want, got) in [("kind", &row.kind, &who.kind), ("id", &row.id, &who.id)] {
                    if want != got {
                        report.problems.push(
                            Problem::of_object(row, doc, format!("the document's {what} is not the row's"))
                                .expected(want, got),
                        );
                    }
                }
            }
            Ok(Some(Who::Flow(_))) => report.problems.push(Problem::of_object(
                row,
                doc,
                "the document is a flow's, not an Architect object's",
            )),
            Ok(None) => {}
        }
        if report.problems.len() == before {
            report.documents_verified += 1;
        }
    }
}

/// The stored size and SHA-256 against the manifest's.
fn check_bytes(owner: Owner<'_>, doc: &Document, seen: &Seen, report: &mut VerifyReport) {
    if seen.size != doc.bytes {
        report.problems.push(
            owner
                .problem(doc, "size differs")
                .expected(format!("{} bytes", doc.bytes), format!("{} bytes", seen.size)),
        );
    }
    if let Some(sha256) = &seen.sha256
        && *sha256 != doc.sha256
    {
        report
            .problems
            .push(owner.problem(doc, "SHA-256 differs").expected(&doc.sha256, sha256));
    }
}

fn check(row: &FlowRecord, doc: &Document, seen: &Seen, report: &mut VerifyReport) {
    let before = report.problems.len();
    check_bytes(Owner::Flow(row), doc, seen, report);
    match &seen.flow {
        Err(why) => report.problems.push(Problem::of(row, doc, why.clone())),
        Ok(Some(Who::Object(_))) => report.problems.push(Problem::of(
            row,
            doc,
            "the document is an Architect object's, not a flow's",
        )),
        Ok(Some(Who::Flow(who))) => {
            for (what, want, got) in [
                ("flow.id", &row.id, &who.id),
                ("flow.name", &row.name, &who.name),
                ("flow.type", &row.flow_type, &who.flow_type),
            ] {
                if want != got {
                    report.problems.push(
                        Problem::of(row, doc, format!("the document's {what} is not the row's")).expected(want, got),
                    );
                }
            }
        }
        Ok(None) => {}
    }
    if report.problems.len() == before {
        report.documents_verified += 1;
    }
}

/// The objects format: list the run, read (or, `quick`, look up the stored checksum of) each
/// document the manifest names, and note objects no row names (unread).
async fn read_objects(
    run: &RunHandle,
    manifest: &Manifest,
    quick: bool,
    report: &mut VerifyReport,
) -> Result<BTreeMap<String, Seen>, ReadError> {
    let listed: BTreeMap<String, u64> = run
        .reader
        .list(&run.run_id)
        .await?
        .into_iter()
        .map(|e| (e.name[run.run_id.len() + 1..].to_string(), e.size))
        .collect();
    let mut stored = BTreeMap::new();
    for (row, doc) in owned_documents(manifest) {
        let Some(size) = listed.get(&doc.path).filter(|_| unsafe_path(&doc.path).is_none()) else {
            continue; // reported by `compare` as missing or unsafe
        };
        let seen = if quick {
            quick_seen(run, row, doc, *size, report).await?
        } else if *size != doc.bytes {
            Some(Seen::unread(*size))
        } else {
            read_seen(run, &doc.path, doc.bytes, report).await?
        };
        if let Some(seen) = seen {
            stored.insert(doc.path.clone(), seen);
        }
    }
    let named: HashSet<&str> = manifest.document_paths().collect();
    for (path, size) in listed.iter().filter(|(p, _)| p.as_str() != MANIFEST_NAME) {
        if !named.contains(path.as_str()) {
            stored.insert(path.clone(), Seen::unread(*size));
        }
    }
    Ok(stored)
}

/// One object streamed through [`inspect`].
async fn read_seen(
    run: &RunHandle,
    path: &str,
    limit: u64,
    report: &mut VerifyReport,
) -> Result<Option<Seen>, ReadError> {
    let Some(stream) = run.reader.open(&run.name(path)).await? else {
        return Ok(None);
    };
    let shape = Shape::of(path);
    let seen = tokio::task::spawn_blocking(move || inspect(tokio_util::io::SyncIoBridge::new(stream), shape, limit))
        .await
        .map_err(|e| ReadError::Archive(e.to_string()))?;
    match seen {
        Ok(seen) => {
            report.bytes_read += seen.size;
            Ok(Some(seen))
        }
        Err(e) => {
            report.problems.push(Problem::at(path, format!("cannot be read: {e}")));
            Ok(None)
        }
    }
}

/// The store's own SHA-256 as the document's hash, and the listed size; nothing downloaded.
async fn quick_seen(
    run: &RunHandle,
    row: Owner<'_>,
    doc: &Document,
    size: u64,
    report: &mut VerifyReport,
) -> Result<Option<Seen>, ReadError> {
    match run.reader.stored_sha256(&run.name(&doc.path)).await? {
        Some(b64) => {
            let sha256 = base64::engine::general_purpose::STANDARD
                .decode(&b64)
                .map(hex::encode)
                .unwrap_or(b64);
            Ok(Some(Seen {
                size,
                sha256: Some(sha256),
                flow: Ok(None),
            }))
        }
        None => {
            report.problems.push(row.problem(
                doc,
                "the store keeps no SHA-256 checksum for it; run verify without --quick",
            ));
            Ok(None)
        }
    }
}
