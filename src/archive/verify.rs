//! `verify`: proves a run against its manifest. Every document is read (streamed: one document in
//! memory at a time) and its size and SHA-256 recomputed; the manifest must parse with a known
//! schema; every document a row names must exist and nothing else may; tar member names must be
//! safe; each JSON document must be `{"flow", "configuration"}` of the row's flow; the archive's
//! last member must be the manifest and equal the sidecar. `quick` (S3 objects only) compares the
//! checksums the store recorded instead of reading: a weaker check.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;

use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::{ReadError, RunHandle};
use crate::manifest::{Document, FlowRecord, Manifest, Outcome};
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
    fn run(problem: impl Into<String>) -> Problem {
        Problem {
            flow_id: None,
            flow_name: None,
            path: None,
            problem: problem.into(),
            expected: None,
            found: None,
        }
    }

    fn at(path: &str, problem: impl Into<String>) -> Problem {
        Problem {
            path: Some(path.to_string()),
            ..Problem::run(problem)
        }
    }

    fn of(row: &FlowRecord, doc: &Document, problem: impl Into<String>) -> Problem {
        Problem {
            flow_id: Some(row.id.clone()),
            flow_name: Some(row.name.clone()),
            ..Problem::at(&doc.path, problem)
        }
    }

    fn expected(mut self, expected: impl Into<String>, found: impl Into<String>) -> Problem {
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
    /// Everything that does not hold; empty when the run verifies.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A document as stored: its size, SHA-256, and the flow it is about (JSON documents).
#[derive(Debug, Clone)]
struct Seen {
    size: u64,
    sha256: String,
    flow: Result<Option<(String, String, String)>, String>,
}

fn inspect(path: &str, body: &[u8]) -> Seen {
    let flow = if path.ends_with(".json") {
        document_flow(body).map(Some)
    } else {
        Ok(None)
    };
    Seen {
        size: body.len() as u64,
        sha256: hex::encode(Sha256::digest(body)),
        flow,
    }
}

/// The id, name and type of the flow a `{"flow", "configuration"}` document is about.
fn document_flow(body: &[u8]) -> Result<(String, String, String), String> {
    #[derive(serde::Deserialize)]
    struct Doc {
        flow: serde_json::Map<String, serde_json::Value>,
        #[allow(dead_code)]
        configuration: serde::de::IgnoredAny,
    }
    let doc: Doc =
        serde_json::from_slice(body).map_err(|e| format!("not a {{\"flow\", \"configuration\"}} document: {e}"))?;
    let field = |k: &str| doc.flow.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    Ok((field("id"), field("name"), field("type")))
}

/// Verifies `run`; `Err` only when the run cannot be read at all.
pub async fn verify(run: &RunHandle, quick: bool) -> Result<VerifyReport, ReadError> {
    let mut report = VerifyReport {
        location: run.location.clone(),
        mode: if quick { "quick" } else { "full" },
        format: None,
        documents_verified: 0,
        bytes_read: 0,
        problems: Vec::new(),
    };
    let sidecar = run.sidecar().await?;
    let manifest = match &sidecar {
        Some(bytes) => Manifest::from_slice(bytes).map_err(|e| Problem::at(MANIFEST_NAME, e.to_string())),
        None => Err(Problem::at(MANIFEST_NAME, "the manifest beside the run is missing")),
    };
    if run.has_archive {
        let (stored, tail) = read_archive(run, &mut report).await?;
        let manifest = manifest.or_else(|p| {
            report.problems.push(p);
            tail.as_deref()
                .ok_or(())
                .and_then(|b| Manifest::from_slice(b).map_err(|_| ()))
        });
        if let (Some(tail), Some(sidecar)) = (&tail, &sidecar)
            && tail.as_slice() != sidecar.as_ref()
        {
            report.problems.push(Problem::at(
                MANIFEST_NAME,
                "the manifest beside the archive differs from the archive's last member",
            ));
        }
        if let Ok(m) = manifest {
            report.format = Some(m.format.clone());
            compare(&m, &stored, &mut report);
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
    report.format = Some(manifest.format.clone());
    if manifest.archive.is_some() {
        report.problems.push(Problem::at(
            ARCHIVE_NAME,
            "the manifest names an archive that is not stored",
        ));
        return Ok(report);
    }
    verify_objects(run, &manifest, quick, &mut report).await?;
    Ok(report)
}

/// Streams the archive: every member's size, hash and flow; the manifest member's bytes if it is
/// last. Unsafe names, duplicates, a misplaced manifest and a truncated stream are problems.
async fn read_archive(
    run: &RunHandle,
    report: &mut VerifyReport,
) -> Result<(BTreeMap<String, Seen>, Option<Vec<u8>>), ReadError> {
    let Some(stream) = run.reader.open(&run.name(ARCHIVE_NAME)).await? else {
        return Err(ReadError::NoRun {
            location: run.location.clone(),
            why: format!("{ARCHIVE_NAME} vanished while it was read"),
        });
    };
    let (stored, tail, problems, bytes) = tokio::task::spawn_blocking(move || {
        let sync = tokio_util::io::SyncIoBridge::new(stream);
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(sync));
        let mut stored = BTreeMap::new();
        let mut problems = Vec::new();
        let (mut last, mut tail, mut bytes) = (String::new(), None, 0u64);
        let entries = match archive.entries() {
            Ok(e) => e,
            Err(e) => {
                return (
                    stored,
                    None,
                    vec![Problem::at(ARCHIVE_NAME, format!("cannot be read: {e}"))],
                    0,
                );
            }
        };
        for entry in entries {
            let mut entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    problems.push(truncated(&last, &e));
                    return (stored, None, problems, bytes);
                }
            };
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            if let Some(why) = unsafe_member(&name, entry.header().entry_type()) {
                problems.push(Problem::at(&name, why));
            }
            let mut body = Vec::new();
            if let Err(e) = entry.read_to_end(&mut body) {
                problems.push(truncated(&name, &e));
                return (stored, None, problems, bytes);
            }
            bytes += body.len() as u64;
            if name == MANIFEST_NAME {
                tail = Some(body);
            } else {
                tail = None;
                let seen = inspect(&name, &body);
                if stored.insert(name.clone(), seen).is_some() {
                    problems.push(Problem::at(&name, "the archive holds this member twice"));
                }
            }
            last = name;
        }
        if last != MANIFEST_NAME {
            problems
                .push(Problem::at(ARCHIVE_NAME, "the last member is not manifest.json").expected(MANIFEST_NAME, last));
        }
        (stored, tail, problems, bytes)
    })
    .await
    .map_err(|e| ReadError::Archive(e.to_string()))?;
    report.problems.extend(problems);
    report.bytes_read += bytes;
    Ok((stored, tail))
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

/// Why a tar member name or type is unsafe to extract, if it is.
fn unsafe_member(name: &str, kind: tar::EntryType) -> Option<String> {
    if !matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous) {
        return Some(format!("not a regular file (tar type {:?})", kind));
    }
    path_outside_run(name).map(|why| format!("unsafe member name ({why})"))
}

/// Why a path (a tar member, or a document the manifest names) is not safely inside the run,
/// if it is not: absolute, `..`, `\\`, an empty segment or control characters.
pub fn path_outside_run(path: &str) -> Option<&'static str> {
    if path.starts_with('/') || path.contains('\\') || path.split('/').any(|s| s == ".." || s.is_empty()) {
        return Some("absolute, `..`, `\\` or an empty segment");
    }
    if path.chars().any(char::is_control) {
        return Some("control characters");
    }
    None
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
            named.insert(doc.path.as_str());
            if let Some(why) = path_outside_run(&doc.path) {
                let problem = format!("the manifest names a path outside the run ({why}); it is not read");
                report.problems.push(Problem::at(&doc.path, problem));
                continue;
            }
            match stored.get(&doc.path) {
                None => report.problems.push(Problem::of(row, doc, "the document is missing")),
                Some(seen) => check(row, doc, seen, report),
            }
        }
    }
    for path in stored.keys().filter(|p| !named.contains(p.as_str())) {
        report
            .problems
            .push(Problem::at(path, "stored, but no manifest row names it"));
    }
}

fn check(row: &FlowRecord, doc: &Document, seen: &Seen, report: &mut VerifyReport) {
    let before = report.problems.len();
    if seen.size != doc.bytes {
        report.problems.push(
            Problem::of(row, doc, "size differs")
                .expected(format!("{} bytes", doc.bytes), format!("{} bytes", seen.size)),
        );
    }
    if seen.sha256 != doc.sha256 {
        report
            .problems
            .push(Problem::of(row, doc, "SHA-256 differs").expected(&doc.sha256, &seen.sha256));
    }
    match &seen.flow {
        Err(why) => report.problems.push(Problem::of(row, doc, why.clone())),
        Ok(Some((id, name, flow_type))) => {
            for (what, want, got) in [
                ("flow.id", &row.id, id),
                ("flow.name", &row.name, name),
                ("flow.type", &row.flow_type, flow_type),
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
/// document the manifest names, and report objects no row names.
async fn verify_objects(
    run: &RunHandle,
    manifest: &Manifest,
    quick: bool,
    report: &mut VerifyReport,
) -> Result<(), ReadError> {
    let listed: BTreeMap<String, u64> = run
        .reader
        .list(&run.run_id)
        .await?
        .into_iter()
        .map(|e| (e.name[run.run_id.len() + 1..].to_string(), e.size))
        .collect();
    let mut stored = BTreeMap::new();
    for (row, doc) in manifest.documents() {
        let Some(size) = listed.get(&doc.path) else {
            continue; // reported by `compare` as missing
        };
        let seen = if quick {
            quick_seen(run, row, doc, *size, report).await?
        } else {
            read_seen(run, &doc.path, report).await?
        };
        if let Some(seen) = seen {
            stored.insert(doc.path.clone(), seen);
        }
    }
    for (path, size) in listed.iter().filter(|(p, _)| p.as_str() != MANIFEST_NAME) {
        if !manifest.documents().any(|(_, d)| &d.path == path) {
            stored.insert(
                path.clone(),
                Seen {
                    size: *size,
                    sha256: String::new(),
                    flow: Ok(None),
                },
            );
        }
    }
    compare(manifest, &stored, report);
    Ok(())
}

async fn read_seen(run: &RunHandle, path: &str, report: &mut VerifyReport) -> Result<Option<Seen>, ReadError> {
    let Some(mut stream) = run.reader.open(&run.name(path)).await? else {
        return Ok(None);
    };
    let mut body = Vec::new();
    if let Err(e) = stream.read_to_end(&mut body).await {
        report.problems.push(Problem::at(path, format!("cannot be read: {e}")));
        return Ok(None);
    }
    report.bytes_read += body.len() as u64;
    Ok(Some(inspect(path, &body)))
}

/// The store's own SHA-256 as the document's hash, and the listed size; nothing downloaded.
async fn quick_seen(
    run: &RunHandle,
    row: &FlowRecord,
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
                sha256,
                flow: Ok(None),
            }))
        }
        None => {
            report.problems.push(Problem::of(
                row,
                doc,
                "the store keeps no SHA-256 checksum for it; run verify without --quick",
            ));
            Ok(None)
        }
    }
}
