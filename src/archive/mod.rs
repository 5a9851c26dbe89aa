//! Reading runs back: find a run in a destination (local or S3, by path, URL or `--latest`),
//! list a destination's runs, and read a run's manifest and documents — for `runs`, `verify`
//! and `diff`. Everything goes through the destination's [`Store`] (opened by
//! [`crate::sink::open_store`]) and the same location parsing as `export --to`.

pub mod diff;
pub mod verify;

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use crate::manifest::{Manifest, ManifestError, Totals};
use crate::sink::{ARCHIVE_NAME, BadDestination, Destination, Entry, MANIFEST_NAME, SinkError, Store, StoreOptions};

/// A run that cannot be found or read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The location is not a path or an `s3://` URL.
    #[error(transparent)]
    Location(#[from] BadDestination),
    /// The destination cannot be read (missing, denied, unreachable).
    #[error(transparent)]
    Store(#[from] SinkError),
    /// Nothing is stored at the location.
    #[error("no run at {location}: {why}")]
    NoRun {
        /// Where it was looked for.
        location: String,
        /// What to fix.
        why: String,
    },
    /// `--latest` found no (complete) run.
    #[error("no {what}run in {destination}")]
    NoRuns {
        /// The destination.
        destination: String,
        /// `complete ` or empty.
        what: &'static str,
    },
    /// The manifest cannot be read.
    #[error("{location}: {source}")]
    Manifest {
        /// The run.
        location: String,
        /// Why.
        source: ManifestError,
    },
    /// The archive cannot be read.
    #[error("{0}")]
    Archive(String),
    /// The location given names a destination, not a run (a usage error).
    #[error("`{given}` names no run: {fix}")]
    NotARun {
        /// What was given.
        given: String,
        /// How to name a run.
        fix: &'static str,
    },
}

impl ReadError {
    /// True when the location given is malformed (the user's input, exit 2), not a failure to
    /// read what it names (exit 1): the one rule every command that takes a run follows.
    pub fn is_usage(&self) -> bool {
        matches!(self, ReadError::Location(_) | ReadError::NotARun { .. })
    }
}

/// Which run of a destination `--latest` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latest {
    /// The newest run.
    Any,
    /// The newest run whose manifest says complete.
    Complete,
}

/// A run found in a destination, with its sidecar manifest's bytes as stored.
pub struct RunHandle {
    /// Reads the destination holding the run.
    pub reader: Arc<dyn Store>,
    /// The run id (its directory or prefix name).
    pub run_id: String,
    /// `DEST/RUN`.
    pub location: String,
    /// Whether `RUN/manifest.json` exists (read it with [`RunHandle::sidecar`]).
    pub has_sidecar: bool,
    /// Whether `RUN/flows.tar.gz` exists.
    pub has_archive: bool,
}

impl RunHandle {
    /// A name within the run, relative to the destination root.
    pub fn name(&self, member: &str) -> String {
        format!("{}/{member}", self.run_id)
    }

    /// `RUN/manifest.json` as stored, if it exists.
    pub async fn sidecar(&self) -> Result<Option<Bytes>, ReadError> {
        if !self.has_sidecar {
            return Ok(None);
        }
        Ok(self.reader.read(&self.name(MANIFEST_NAME)).await?)
    }

    /// The run's manifest read row by row (`row` sees each with `state`; no row is kept), from
    /// the sidecar; the manifest is returned without its rows, with the state. A run without a
    /// sidecar is read whole instead.
    pub async fn manifest_streamed<S: Send + 'static>(
        &self,
        mut state: S,
        mut row: impl FnMut(&mut S, crate::manifest::FlowRecord) -> bool + Send + 'static,
    ) -> Result<(Manifest, S), ReadError> {
        if self.has_sidecar {
            let name = self.name(MANIFEST_NAME);
            if let Some(read) = stream_manifest(&self.reader, &name, &self.location, state, row).await? {
                return Ok(read);
            }
            return Err(ReadError::NoRun {
                location: self.location.clone(),
                why: "its manifest.json went away while it was being read".into(),
            });
        }
        let mut m = self.manifest().await?;
        for r in std::mem::take(&mut m.flows) {
            if !row(&mut state, r) {
                break;
            }
        }
        Ok((m, state))
    }

    /// The run's manifest: the sidecar, or the archive's last member when there is no sidecar.
    pub async fn manifest(&self) -> Result<Manifest, ReadError> {
        let bytes = match self.sidecar().await? {
            Some(b) => b,
            None if self.has_archive => archive_manifest(self).await?,
            None => {
                return Err(ReadError::NoRun {
                    location: self.location.clone(),
                    why: "it has no manifest.json (a run still in progress, or one that crashed)".into(),
                });
            }
        };
        Manifest::from_slice(&bytes).map_err(|source| ReadError::Manifest {
            location: self.location.clone(),
            source,
        })
    }

    /// One document's bytes, from the objects or by streaming the archive to its member.
    pub async fn document(&self, path: &str) -> Result<Option<Bytes>, ReadError> {
        if !self.has_archive {
            return Ok(self.reader.read(&self.name(path)).await?);
        }
        let wanted = path.to_string();
        let found = each_member(self, move |name| name == wanted, |_, body| Some(body.to_vec())).await?;
        Ok(found.into_iter().next().map(Bytes::from))
    }
}

/// Streams the run's archive through `visit` (member name and bytes, one member in memory at a
/// time) and collects what it returns. Members `want` refuses are skipped unread (the manifest
/// member alone can be tens of megabytes).
pub(crate) async fn each_member<T: Send + 'static>(
    run: &RunHandle,
    want: impl Fn(&str) -> bool + Send + 'static,
    mut visit: impl FnMut(&str, &[u8]) -> Option<T> + Send + 'static,
) -> Result<Vec<T>, ReadError> {
    let name = run.name(ARCHIVE_NAME);
    let Some(stream) = run.reader.open(&name).await? else {
        return Err(ReadError::NoRun {
            location: run.location.clone(),
            why: format!("{ARCHIVE_NAME} is missing"),
        });
    };
    let location = run.location.clone();
    tokio::task::spawn_blocking(move || {
        let sync = tokio_util::io::SyncIoBridge::new(stream);
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(sync));
        let mut out = Vec::new();
        let entries = archive
            .entries()
            .map_err(|e| ReadError::Archive(format!("{location}/{ARCHIVE_NAME} cannot be read: {e}")))?;
        for entry in entries {
            let mut entry =
                entry.map_err(|e| ReadError::Archive(format!("{location}/{ARCHIVE_NAME} is corrupt: {e}")))?;
            let member = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            if !want(&member) {
                continue;
            }
            let mut body = Vec::new();
            entry
                .read_to_end(&mut body)
                .map_err(|e| ReadError::Archive(format!("{location}/{ARCHIVE_NAME} is corrupt at {member}: {e}")))?;
            out.extend(visit(&member, &body));
        }
        Ok(out)
    })
    .await
    .map_err(|e| ReadError::Archive(e.to_string()))?
}

pub(crate) async fn archive_manifest(run: &RunHandle) -> Result<Bytes, ReadError> {
    let mut found = each_member(run, |name| name == MANIFEST_NAME, |_, body| Some(body.to_vec())).await?;
    match found.pop() {
        Some(body) => Ok(Bytes::from(body)),
        None => Err(ReadError::Archive(format!(
            "{}/{ARCHIVE_NAME} has no {MANIFEST_NAME}",
            run.location
        ))),
    }
}

/// A run as the user named it, parsed once for every command that takes a run (`verify`,
/// `diff`, `restore`, `export --since`): a run of a destination, or the newest (complete) one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunSpec {
    /// `DEST/RUN`, `DEST/RUN/flows.tar.gz` or `s3://bucket/prefix/RUN`.
    Run {
        /// The destination holding the run.
        root: Destination,
        /// The run id.
        run_id: String,
    },
    /// `DEST` with `--latest` / `--latest-complete`.
    Latest {
        /// The destination.
        destination: Destination,
        /// Which run.
        which: Latest,
    },
}

impl RunSpec {
    /// Parses `spec` without touching any store: a malformed location is a usage error here,
    /// before any network call.
    pub fn parse(spec: &str, latest: Option<Latest>) -> Result<RunSpec, ReadError> {
        let destination = Destination::parse(spec)?;
        if let Some(which) = latest {
            return Ok(RunSpec::Latest { destination, which });
        }
        let (root, run_id) = split_run(spec, destination)?;
        Ok(RunSpec::Run { root, run_id })
    }
}

/// Finds the run `spec` names: `DEST/RUN`, a path to a `flows.tar.gz`, `s3://bucket/prefix/RUN`,
/// or, with `latest`, the newest (complete) run of the destination `spec`.
pub async fn locate(spec: &str, latest: Option<Latest>, options: &StoreOptions) -> Result<RunHandle, ReadError> {
    match RunSpec::parse(spec, latest)? {
        RunSpec::Latest { destination, which } => {
            let reader = crate::sink::open_store(&destination, options).await?;
            let runs = list_runs(&reader).await?;
            let pick = runs
                .iter()
                .find(|r| which == Latest::Any || r.complete == Some(true))
                .ok_or_else(|| ReadError::NoRuns {
                    destination: reader.location(),
                    what: if which == Latest::Complete { "complete " } else { "" },
                })?;
            handle(reader, pick.run_id.clone()).await
        }
        RunSpec::Run { root, run_id } => {
            let reader = crate::sink::open_store(&root, options).await?;
            handle(reader, run_id).await
        }
    }
}

/// `DEST/RUN` (or `DEST/RUN/flows.tar.gz`), already parsed as `destination` → the destination
/// and the run id. Parsed before trimming, so a bare `s3://` is a malformed URL, not a path.
fn split_run(spec: &str, destination: Destination) -> Result<(Destination, String), ReadError> {
    destination.split_run().map_err(|fix| ReadError::NotARun {
        given: spec.to_string(),
        fix,
    })
}

/// Whether the listing `entries` of run `run_id` hold `member`.
fn holds(entries: &[Entry], run_id: &str, member: &str) -> bool {
    let name = format!("{run_id}/{member}");
    entries.iter().any(|e| e.name == name)
}

async fn handle(reader: Arc<dyn Store>, run_id: String) -> Result<RunHandle, ReadError> {
    let location = format!("{}/{run_id}", reader.location().trim_end_matches('/'));
    let entries = reader.list(&run_id).await?;
    let has_archive = holds(&entries, &run_id, ARCHIVE_NAME);
    let has_sidecar = holds(&entries, &run_id, MANIFEST_NAME);
    if entries.is_empty() {
        return Err(ReadError::NoRun {
            location,
            why: "nothing is stored there; check the path or URL (`flowvault runs DEST` lists the runs)".into(),
        });
    }
    Ok(RunHandle {
        reader,
        run_id,
        location,
        has_sidecar,
        has_archive,
    })
}

/// One run of a destination, as `flowvault runs` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// The run id.
    pub run_id: String,
    /// From the manifest.
    pub started_at: Option<String>,
    /// From the manifest.
    pub finished_at: Option<String>,
    /// `tar-gz` or `objects`.
    pub format: Option<String>,
    /// The manifest's `complete`; `None` when there is no readable manifest.
    pub complete: Option<bool>,
    /// Flows per outcome.
    pub totals: Option<Totals>,
    /// The org it was read from (short name or id).
    pub organization: Option<String>,
    /// Bytes stored under the run.
    pub bytes: u64,
    /// Why the manifest could not be read.
    pub problem: Option<String>,
}

/// Streams manifest `name` through `row` (see [`RunHandle::manifest_streamed`]); `None` when it
/// does not exist.
async fn stream_manifest<S: Send + 'static>(
    reader: &Arc<dyn Store>,
    name: &str,
    location: &str,
    mut state: S,
    mut row: impl FnMut(&mut S, crate::manifest::FlowRecord) -> bool + Send + 'static,
) -> Result<Option<(Manifest, S)>, ReadError> {
    let Some(stream) = reader.open(name).await? else {
        return Ok(None);
    };
    let location = location.to_string();
    tokio::task::spawn_blocking(move || {
        let sync = tokio_util::io::SyncIoBridge::new(stream);
        let read = crate::manifest::read_streamed(sync, |r| row(&mut state, r));
        read.map(|m| (m, state))
            .map_err(|source| ReadError::Manifest { location, source })
    })
    .await
    .map_err(|e| ReadError::Archive(e.to_string()))?
    .map(Some)
}

/// The head of run `run_id`'s manifest (everything but its rows, which come last): read as a
/// stream and stopped at the first row, so listing runs does not read every run's rows. Its
/// last bytes are read too: a manifest cut off mid-rows has a whole head but no end (the head
/// is returned with why the manifest is unreadable).
async fn read_head(reader: &Arc<dyn Store>, run_id: &str, size: u64) -> Result<(Manifest, Option<String>), String> {
    let name = format!("{run_id}/{MANIFEST_NAME}");
    let head = match stream_manifest(reader, &name, run_id, (), |_, _| false).await {
        Ok(Some((m, ()))) => m,
        Err(ReadError::Manifest { source, .. }) => return Err(source.to_string()),
        Err(e) => return Err(e.to_string()),
        Ok(None) => return Err("no manifest.json: in progress, or crashed".to_string()),
    };
    let tail = reader
        .read_from(&name, size.saturating_sub(TRAILER_WINDOW))
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    if ends_like_a_manifest(&tail) {
        return Ok((head, None));
    }
    // Not the ending flowvault writes: parse it to its end (rows skipped, none kept) to decide.
    match stream_manifest(reader, &name, run_id, (), |_, _| true).await {
        Ok(Some(_)) => Ok((head, None)),
        Ok(None) => Err("no manifest.json: in progress, or crashed".to_string()),
        Err(ReadError::Manifest { source, .. }) => Ok((
            head,
            Some(format!("the manifest is cut off or damaged, so unreadable: {source}")),
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Bytes read from a manifest's end to see that it is whole.
const TRAILER_WINDOW: u64 = 64;

/// Whether `tail` is how every manifest flowvault writes ends: the rows' array closed at the
/// top level (`\n  ]\n}`, or `"flows": []` when there are none). Inside the rows every line is
/// indented deeper, so a manifest cut anywhere before its end cannot end like this.
pub fn ends_like_a_manifest(tail: &[u8]) -> bool {
    let text = tail.trim_ascii_end();
    text.ends_with(b"\n  ]\n}") || text.ends_with(b"\"flows\": []\n}")
}

/// Why a run whose manifest reads is still not whole: its archive (tar-gz) or its documents
/// (objects) are not all stored.
fn missing_part(m: &Manifest, entries: &[Entry], run_id: &str) -> Option<String> {
    if let Some(archive) = &m.archive {
        return (!holds(entries, run_id, archive))
            .then(|| format!("its manifest names {archive}, which is not stored (a run without its archive)"));
    }
    let documents = entries
        .iter()
        .filter(|e| e.name != format!("{run_id}/{MANIFEST_NAME}"))
        .count() as u64;
    (documents < m.totals.exported).then(|| {
        format!(
            "{} flows were exported but only {documents} documents are stored",
            m.totals.exported
        )
    })
}

/// The runs of a destination, newest first.
pub async fn list_runs(reader: &Arc<dyn Store>) -> Result<Vec<RunSummary>, ReadError> {
    let mut runs = Vec::new();
    for run_id in reader.run_ids().await? {
        let entries = reader.list(&run_id).await?;
        if entries.is_empty() {
            continue;
        }
        let bytes = entries.iter().map(|e| e.size).sum();
        let sidecar = format!("{run_id}/{MANIFEST_NAME}");
        let parsed = match entries.iter().find(|e| e.name == sidecar) {
            Some(e) => read_head(reader, &run_id, e.size).await,
            None => Err("no manifest.json: in progress, or crashed".to_string()),
        };
        runs.push(match parsed {
            Ok((m, cut_off)) => {
                let missing = missing_part(&m, &entries, &run_id);
                RunSummary {
                    run_id,
                    started_at: Some(m.started_at),
                    finished_at: Some(m.finished_at),
                    format: Some(m.format),
                    // A manifest that does not read to its end says nothing reliable.
                    complete: cut_off.is_none().then_some(m.complete && missing.is_none()),
                    totals: Some(m.totals),
                    organization: m.organization.map(|o| o.third_party_org_name.unwrap_or(o.id)),
                    bytes,
                    problem: cut_off.or(missing),
                }
            }
            Err(problem) => RunSummary {
                run_id,
                started_at: None,
                finished_at: None,
                format: None,
                complete: None,
                totals: None,
                organization: None,
                bytes,
                problem: Some(problem),
            },
        });
    }
    runs.sort_by(|a, b| (&b.started_at, &b.run_id).cmp(&(&a.started_at, &a.run_id)));
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{FlowRecord, write_streamed};

    fn manifest(rows: usize) -> Manifest {
        let v1 = r#"{"schema":"flowvault.manifest/v2","run_id":"r","tool":{"name":"flowvault","version":"0.1.0"},
            "started_at":"a","finished_at":"b","region":null,"api_url":"https://api.x/","format":"tar-gz",
            "destination":"/b","archive":"flows.tar.gz","complete":true,"incomplete_reason":null,
            "listing":{"api_total":1,"listed":1,"pages":1,"type_filter":[],"discrepancy":null},
            "totals":{"listed":0,"exported":0,"not_found":0,"failed":0,"skipped":0},"flows":[]}"#;
        let mut m = Manifest::from_slice(v1.as_bytes()).unwrap();
        for i in 0..rows {
            m.flows.push(FlowRecord::listed(
                format!("f{i}"),
                "Main\n  ]\n}".into(),
                "BOT".into(),
                None,
                (None, None),
                "why".into(),
            ));
        }
        m
    }

    #[test]
    fn every_manifest_flowvault_writes_ends_like_one_and_no_cut_of_it_does() {
        for rows in [0, 1, 3] {
            let whole = manifest(rows).to_bytes();
            assert!(ends_like_a_manifest(&whole), "{rows} rows");
            let head = Manifest {
                flows: Vec::new(),
                ..manifest(rows)
            };
            let mut streamed = Vec::new();
            write_streamed(&head, manifest(rows).flows.into_iter(), &mut streamed).unwrap();
            assert!(ends_like_a_manifest(&streamed), "{rows} rows, streamed");
            for cut in 1..whole.len() - 2 {
                assert!(!ends_like_a_manifest(&whole[..cut]), "{rows} rows cut at {cut}");
            }
        }
    }

    #[test]
    fn a_location_is_parsed_once_and_bad_input_is_usage() {
        let usage = |spec: &str| RunSpec::parse(spec, None).unwrap_err().is_usage();
        assert!(usage("s3://"), "a bare s3:// is a malformed URL, not a path");
        assert!(usage("s3://Bad_Bucket/x/r"));
        assert!(usage("s3://bucket"), "a bucket names no run");
        assert!(usage("."));
        assert_eq!(
            RunSpec::parse("s3://bucket/p/RUN/flows.tar.gz", None).unwrap(),
            RunSpec::Run {
                root: Destination::parse("s3://bucket/p").unwrap(),
                run_id: "RUN".into()
            }
        );
        assert_eq!(
            RunSpec::parse("/backups/RUN/", None).unwrap(),
            RunSpec::Run {
                root: Destination::parse("/backups").unwrap(),
                run_id: "RUN".into()
            }
        );
        assert!(matches!(
            RunSpec::parse("s3://bucket", Some(Latest::Complete)),
            Ok(RunSpec::Latest { .. })
        ));
    }
}
