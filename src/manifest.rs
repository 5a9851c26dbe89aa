//! The record of a run: what was listed, what happened to each flow, where it went, its size and
//! SHA-256, and whether the run is complete. Written last, so a `manifest.json` with
//! `"complete": true` means the archive beside it is whole.

use serde::{Deserialize, Serialize};

/// The manifest schema identifier written today; bump on incompatible changes.
pub const SCHEMA: &str = "flowvault.manifest/v2";

/// The first schema: one document per flow, its `path`, `bytes` and `sha256` on the row itself.
/// Still read (see [`Manifest::from_slice`]), never written.
pub const SCHEMA_V1: &str = "flowvault.manifest/v1";

/// A manifest that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON, or not shaped like a manifest.
    #[error("the manifest is not valid: {0}")]
    Invalid(String),
    /// A schema this version of flowvault does not know.
    #[error(
        "the manifest's schema `{0}` is unknown to this flowvault ({SCHEMA_V1} and {SCHEMA} are read); upgrade flowvault"
    )]
    UnknownSchema(String),
}

/// What a stored document holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    /// The latest saved configuration (`latestconfiguration`; may be an unpublished draft).
    Latest,
    /// The published configuration (`versions/{publishedVersion}/configuration`): what runs.
    Published,
    /// Archy YAML of the published version, from an export job.
    Yaml,
    /// An Architect object as served (`{"kind", "object"}`).
    Object,
    /// A data table's rows (`{"kind", "table", "rows"}`).
    Rows,
    /// One language's audio of a prompt (the bytes as served).
    Audio,
}

impl Content {
    /// The name used in settings and the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Content::Latest => "latest",
            Content::Published => "published",
            Content::Yaml => "yaml",
            Content::Object => "object",
            Content::Rows => "rows",
            Content::Audio => "audio",
        }
    }
}

/// One stored document of a flow.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Document {
    /// What it holds; two entries (`latest`, `published`) when the saved version is the published
    /// one and one request served both.
    pub contents: Vec<Content>,
    /// The flow version it holds, when known (`savedVersion.id` / `publishedVersion.id` as listed).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
    /// Tar member name, or object path relative to the run.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Hex SHA-256.
    pub sha256: String,
    /// Hex SHA-256 of the `configuration` alone, as served: what `diff` compares, so a change to
    /// the listing row (a lock, an operation) is not taken for a change of the flow.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub configuration_sha256: Option<String>,
    /// The language of an audio document (a prompt's resource).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub language: Option<String>,
}

impl Document {
    /// True when the document holds `content`.
    pub fn holds(&self, content: Content) -> bool {
        self.contents.contains(&content)
    }
}

/// What happened to one listed flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Its document is stored at `path`.
    Exported,
    /// It was listed but deleted before its configuration could be fetched (404/410).
    NotFound,
    /// It could not be fetched or stored; `error` says why.
    Failed,
    /// The run stopped before it was fetched; `error` says why.
    Skipped,
}

/// Where a row's documents came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Fetched from Genesys Cloud by this run.
    Fetched,
    /// Copied from a previous run (`carried_from`), the flow being unchanged since.
    Carried,
}

/// A run, named by id and start time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunRef {
    /// The run id.
    pub run_id: String,
    /// When it started (RFC 3339 UTC).
    pub started_at: String,
}

/// The version of flowvault that wrote a manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tool {
    /// Always `flowvault`.
    pub name: String,
    /// The crate version.
    pub version: String,
}

impl Default for Tool {
    fn default() -> Self {
        Tool {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// What the listing saw, over every pass, reconciled against the API's own count.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Listing {
    /// The `total` the API reported in the last pass (summed over type filters).
    pub api_total: Option<u64>,
    /// Distinct flows received over all passes.
    pub listed: u64,
    /// Pages requested over all passes.
    pub pages: u64,
    /// `--type` filters in force (empty: every type).
    pub type_filter: Vec<String>,
    /// Why the listing cannot prove it saw every flow (the last pass disagreed with `total`, or
    /// passes kept finding new flows); set only when the run is not complete.
    pub discrepancy: Option<String>,
    /// Listing rows that were not flows (each also has a `failed` row).
    #[serde(default)]
    pub malformed: u64,
    /// Each pass: what it served and how many flows were new.
    #[serde(default)]
    pub passes: Vec<ListingPass>,
}

/// Counts per outcome.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Totals {
    /// Flows listed.
    pub listed: u64,
    /// Flows stored.
    pub exported: u64,
    /// Flows deleted after listing.
    pub not_found: u64,
    /// Flows that could not be fetched or stored.
    pub failed: u64,
    /// Flows never attempted because the run stopped.
    pub skipped: u64,
    /// Of the exported flows, those carried over from a previous run rather than fetched.
    #[serde(default)]
    pub carried: u64,
}

impl Totals {
    /// The counts of `rows`.
    pub fn of<'a>(rows: impl Iterator<Item = &'a FlowRecord>) -> Totals {
        let mut t = Totals::default();
        rows.for_each(|row| t.add(row));
        t
    }

    /// Counts one more row.
    pub fn add(&mut self, row: &FlowRecord) {
        self.listed += 1;
        match row.outcome {
            Outcome::Exported => self.exported += 1,
            Outcome::NotFound => self.not_found += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Skipped => self.skipped += 1,
        }
        // A carried row that then failed (its write did) is counted as failed only.
        self.carried += u64::from(row.outcome == Outcome::Exported && row.source == Some(Source::Carried));
    }
}

/// One listed flow and its outcome.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FlowRecord {
    /// Flow id.
    pub id: String,
    /// Flow name as listed.
    pub name: String,
    /// Flow type as listed.
    #[serde(rename = "type")]
    pub flow_type: String,
    /// The flow's division.
    pub division: Option<Division>,
    /// `publishedVersion.id` as listed.
    pub published_version: Option<String>,
    /// `savedVersion.id` as listed.
    pub saved_version: Option<String>,
    /// What happened.
    pub outcome: Outcome,
    /// The documents stored for it (a `failed` row may still have some: those that were stored).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub documents: Vec<Document>,
    /// v1 only: the one document's path, size and hash (moved into `documents` on reading).
    #[serde(skip_serializing, default, rename = "path")]
    v1_path: Option<String>,
    #[serde(skip_serializing, default, rename = "bytes")]
    v1_bytes: Option<u64>,
    #[serde(skip_serializing, default, rename = "sha256")]
    v1_sha256: Option<String>,
    /// Requests sent for its documents.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attempts: Option<u32>,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// Hex SHA-256 of the flow's listing row, canonicalized: what the next incremental run
    /// compares to decide that the flow is unchanged.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub listing_sha256: Option<String>,
    /// Whether its documents were fetched or carried over (exported rows).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source: Option<Source>,
    /// The run its documents were copied from (carried rows).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub carried_from: Option<String>,
    /// The run that fetched its documents from Genesys Cloud (carried rows: maybe an older one).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fetched_in: Option<String>,
    /// The objects its configuration references (from the configuration's `manifest`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dependencies: Option<Dependencies>,
}

impl FlowRecord {
    /// A row for a listed flow, `skipped` until something better is known.
    pub fn listed(
        id: String,
        name: String,
        flow_type: String,
        division: Option<Division>,
        versions: (Option<String>, Option<String>),
        error: String,
    ) -> FlowRecord {
        FlowRecord {
            id,
            name,
            flow_type,
            division,
            published_version: versions.0,
            saved_version: versions.1,
            outcome: Outcome::Skipped,
            documents: Vec::new(),
            v1_path: None,
            v1_bytes: None,
            v1_sha256: None,
            attempts: None,
            error: Some(error),
            listing_sha256: None,
            source: None,
            carried_from: None,
            fetched_in: None,
            dependencies: None,
        }
    }

    /// The flow's documents are stored, fetched by this run.
    pub fn exported(&mut self, documents: Vec<Document>, attempts: u32) {
        self.outcome = Outcome::Exported;
        self.documents = documents;
        self.attempts = Some(attempts);
        self.error = None;
        self.source = Some(Source::Fetched);
    }

    /// The flow's documents are stored, copied from run `from`; `fetched_in` fetched them.
    pub fn carried(&mut self, documents: Vec<Document>, from: String, fetched_in: String) {
        self.outcome = Outcome::Exported;
        self.documents = documents;
        self.attempts = Some(0);
        self.error = None;
        self.source = Some(Source::Carried);
        self.carried_from = Some(from);
        self.fetched_in = Some(fetched_in);
    }

    /// The flow was deleted after it was listed.
    pub fn not_found(&mut self) {
        self.outcome = Outcome::NotFound;
        self.documents.clear();
        self.attempts = None;
        self.error = Some("deleted after it was listed (HTTP 404/410)".into());
    }

    /// The flow could not be fetched or stored in full; `documents` keeps what was stored.
    pub fn failed(&mut self, error: String, attempts: Option<u32>) {
        self.outcome = Outcome::Failed;
        self.attempts = attempts;
        self.error = Some(error);
    }

    /// The document holding `content`, if one was stored.
    pub fn document(&self, content: Content) -> Option<&Document> {
        self.documents.iter().find(|d| d.holds(content))
    }

    /// Moves a v1 row's single document into `documents`.
    fn upgrade_v1(&mut self) {
        if let (Some(path), Some(bytes), Some(sha256)) =
            (self.v1_path.take(), self.v1_bytes.take(), self.v1_sha256.take())
        {
            self.documents.push(Document {
                contents: vec![Content::Latest],
                version: self.saved_version.clone(),
                path,
                bytes,
                sha256,
                configuration_sha256: None,
                language: None,
            });
        }
    }
}

/// The whole record of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// [`SCHEMA`].
    pub schema: String,
    /// The run id (directory or prefix name).
    pub run_id: String,
    /// Who wrote it.
    pub tool: Tool,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// RFC 3339 UTC.
    pub finished_at: String,
    /// The Genesys region, when one was configured rather than an explicit API URL.
    pub region: Option<String>,
    /// The Platform API base URL.
    pub api_url: String,
    /// `tar-gz` or `objects`.
    pub format: String,
    /// The org the run read (`GET /api/v2/organizations/me`); absent in v1 manifests.
    #[serde(default)]
    pub organization: Option<Org>,
    /// Which configurations were asked for: `latest`, `published` or `both` (v1: `latest`).
    #[serde(default = "v1_content")]
    pub content: String,
    /// Whether Archy YAML was exported too.
    #[serde(default)]
    pub yaml: bool,
    /// Where the run was written.
    pub destination: String,
    /// The archive's name within the run, for the tar-gz format.
    pub archive: Option<String>,
    /// True only if the listing was verified and every listed flow ended `exported` or `not_found`.
    pub complete: bool,
    /// Why the run is not complete.
    pub incomplete_reason: Option<String>,
    /// The listing and its reconciliation.
    pub listing: Listing,
    /// Counts per outcome.
    pub totals: Totals,
    /// Flows the org has that the listing did not return (a warning, never a row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unseen: Option<Unseen>,
    /// The previous run unchanged flows were carried over from (`--since`); absent: a full run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Why `--since` was given yet this run fetched every flow (no usable previous run, or a
    /// full run was due).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_note: Option<String>,
    /// The full run this run's documents rest on: itself for a full run, else the last full run
    /// of the chain of runs it carried from (`--full-every` counts from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_full_run: Option<RunRef>,
    /// How the YAML phase's export jobs ran (with `--yaml`): sizes and throttling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yaml_jobs: Option<YamlJobs>,
    /// The Architect phase per kind: whether it was checked and what happened (present when any
    /// Architect kind was asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architect: Option<ArchitectSection>,
    /// One row per listed flow, sorted by type then id (streamed: see [`write_streamed`]; only
    /// `objects` may follow it).
    pub flows: Vec<FlowRecord>,
    /// One row per listed Architect object (prompts, data tables, …), by kind then name then id.
    /// The last field when present (absent when empty): a manifest cut anywhere in its rows is
    /// recognised by its end, and a reader of the head alone stops at the first flow row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<ObjectRecord>,
}

/// One listed Architect object and its outcome.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectRecord {
    /// Its kind (`prompts`, `datatables`, …: `ArchitectKind::as_str`).
    pub kind: String,
    /// Object id.
    pub id: String,
    /// Object name as listed.
    pub name: String,
    /// Its division, when the kind has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub division: Option<Division>,
    /// What happened.
    pub outcome: Outcome,
    /// Its stored documents: the object, a data table's rows, a prompt's audio per language.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub documents: Vec<Document>,
    /// Hex SHA-256 of the object as listed, volatile fields (presigned URLs, `selfUri`) removed:
    /// what the next incremental run compares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing_sha256: Option<String>,
    /// Whether its documents were fetched or carried over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// The run its documents were copied from (carried rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried_from: Option<String>,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ObjectRecord {
    /// The document holding `content` (for audio, the first; see [`ObjectRecord::audio`]).
    pub fn document(&self, content: Content) -> Option<&Document> {
        self.documents.iter().find(|d| d.holds(content))
    }

    /// The audio document of `language`.
    pub fn audio(&self, language: &str) -> Option<&Document> {
        self.documents
            .iter()
            .find(|d| d.holds(Content::Audio) && d.language.as_deref() == Some(language))
    }
}

/// The Architect phase of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ArchitectSection {
    /// One entry per Architect kind asked for, in restore order.
    pub kinds: Vec<KindReport>,
}

/// What the run did with one Architect kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KindReport {
    /// The kind (`ArchitectKind::as_str`).
    pub kind: String,
    /// False when the kind could not be read (`note` says why, naming the missing permission).
    pub checked: bool,
    /// Why the kind was not checked, or what else a reader should know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Objects listed.
    #[serde(default)]
    pub listed: u64,
    /// Objects stored (fetched or carried).
    #[serde(default)]
    pub exported: u64,
    /// Objects that failed or were skipped.
    #[serde(default)]
    pub failed: u64,
    /// Of the exported, those carried from a previous run.
    #[serde(default)]
    pub carried: u64,
    /// API requests sent for the kind (listings, rows, fresh prompt URLs; audio downloads not).
    #[serde(default)]
    pub requests: u64,
}

/// The objects a flow's configuration references (its `manifest`), as the manifest records them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Dependencies {
    /// Architect objects, and whether this archive holds them.
    #[serde(default)]
    pub architect: Vec<ArchitectDependency>,
    /// Everything else (queues, skills, data actions, users, …) by kind and name.
    #[serde(default)]
    pub other: Vec<OtherDependency>,
}

/// An Architect object a flow references.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ArchitectDependency {
    /// The configuration's `manifest` key (`userPrompt`, `dataTable`, …).
    pub kind: String,
    /// Object id.
    pub id: String,
    /// Object name.
    pub name: String,
    /// True when this archive holds the object.
    pub in_archive: bool,
}

/// A non-Architect object a flow references.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OtherDependency {
    /// The configuration's `manifest` key (`queue`, `dataAction`, …).
    pub kind: String,
    /// Object id.
    pub id: String,
    /// Object name.
    pub name: String,
}

/// The YAML phase's export jobs: the sizes it started with, the sizes the backend's throttling
/// (Archy exit code 107) left it at, and how often that happened.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct YamlJobs {
    /// Flows per job at the start.
    pub batch_size: usize,
    /// Jobs in flight at the start.
    pub jobs_in_flight: usize,
    /// Flows per job at the end (halved by each exit-code-107 answer, down to 1).
    pub final_batch_size: usize,
    /// Jobs in flight at the end (halved likewise).
    pub final_jobs_in_flight: usize,
    /// Export jobs registered.
    pub jobs: u64,
    /// Jobs that failed with exit code 107 (throttling).
    pub throttled: u64,
}

fn v1_content() -> String {
    Content::Latest.as_str().into()
}

/// The cross-check of the listing against `GET /api/v2/flows/divisionviews`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Unseen {
    /// True when the check ran; false when it was skipped (`note` says why).
    pub checked: bool,
    /// Why it was skipped, or what the finding means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Flows divisionviews names that the listing did not return.
    #[serde(default)]
    pub flows: Vec<UnseenFlow>,
}

/// A flow seen only through divisionviews.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UnseenFlow {
    /// Flow id.
    pub id: String,
    /// Flow name.
    pub name: String,
    /// Flow type.
    #[serde(rename = "type")]
    pub flow_type: String,
    /// Its division.
    pub division: Option<Division>,
}

impl Manifest {
    /// Reads a manifest of any known schema; a v1 manifest is upgraded to today's shape.
    pub fn from_slice(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        #[derive(Deserialize)]
        struct Head {
            schema: Option<String>,
        }
        let head: Head = serde_json::from_slice(bytes).map_err(|e| ManifestError::Invalid(e.to_string()))?;
        match head.schema.as_deref() {
            Some(SCHEMA) | Some(SCHEMA_V1) => {}
            Some(other) => return Err(ManifestError::UnknownSchema(other.to_string())),
            None => return Err(ManifestError::Invalid("it has no `schema` field".into())),
        }
        let mut m: Manifest = serde_json::from_slice(bytes).map_err(|e| ManifestError::Invalid(e.to_string()))?;
        if m.schema == SCHEMA_V1 {
            m.flows.iter_mut().for_each(FlowRecord::upgrade_v1);
        }
        Ok(m)
    }

    /// Every stored document, with the row it belongs to.
    pub fn documents(&self) -> impl Iterator<Item = (&FlowRecord, &Document)> {
        self.flows.iter().flat_map(|r| r.documents.iter().map(move |d| (r, d)))
    }

    /// Every stored document of an Architect object, with its row.
    pub fn object_documents(&self) -> impl Iterator<Item = (&ObjectRecord, &Document)> {
        self.objects
            .iter()
            .flat_map(|r| r.documents.iter().map(move |d| (r, d)))
    }

    /// The path of every stored document, flows' and objects'.
    pub fn document_paths(&self) -> impl Iterator<Item = &str> {
        self.documents()
            .map(|(_, d)| d.path.as_str())
            .chain(self.object_documents().map(|(_, d)| d.path.as_str()))
    }

    /// Recounts the totals from the rows.
    pub fn recount(&mut self) {
        self.totals = Totals::of(self.flows.iter());
    }

    /// The manifest as pretty JSON with a trailing newline. Measured first, then written into a
    /// buffer of exactly that size: a large org's manifest is megabytes, and a growing buffer
    /// would hold up to twice that at the run's peak.
    pub fn to_bytes(&self) -> Vec<u8> {
        struct Count(usize);
        impl std::io::Write for Count {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0 += buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut count = Count(0);
        let _ = serde_json::to_writer_pretty(&mut count, self);
        let mut out = Vec::with_capacity(count.0 + 1);
        if let Err(e) = serde_json::to_writer_pretty(&mut out, self) {
            out = format!("{{\"error\":\"{e}\"}}").into_bytes();
        }
        out.push(b'\n');
        out
    }
}

/// Reads a manifest from `reader` without holding its rows: `row` is handed each row as it is
/// parsed (v1 rows upgraded), and may return false to stop reading there (a listing of runs needs
/// only the head, and the rows come last). Returns the manifest with `flows` empty.
pub fn read_streamed(
    reader: impl std::io::Read,
    mut row: impl FnMut(FlowRecord) -> bool,
) -> Result<Manifest, ManifestError> {
    use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
    const STOP: &str = "flowvault: stopped reading";

    struct Rows<'a, F>(&'a mut F);
    impl<'de, F: FnMut(FlowRecord) -> bool> DeserializeSeed<'de> for Rows<'_, F> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de, F: FnMut(FlowRecord) -> bool> Visitor<'de> for Rows<'_, F> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of flow rows")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(mut r) = seq.next_element::<FlowRecord>()? {
                r.upgrade_v1();
                if !(self.0)(r) {
                    return Err(A::Error::custom(STOP));
                }
            }
            Ok(())
        }
    }
    struct Top<'a, F> {
        head: &'a mut serde_json::Map<String, serde_json::Value>,
        row: &'a mut F,
    }
    impl<'de, F: FnMut(FlowRecord) -> bool> DeserializeSeed<'de> for Top<'_, F> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de, F: FnMut(FlowRecord) -> bool> Visitor<'de> for Top<'_, F> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a manifest object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<String>()? {
                if key == "flows" {
                    map.next_value_seed(Rows(&mut *self.row))?;
                } else {
                    let value = map.next_value::<serde_json::Value>()?;
                    self.head.insert(key, value);
                }
            }
            Ok(())
        }
    }

    let mut head = serde_json::Map::new();
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(64 * 1024, reader));
    let read = Top {
        head: &mut head,
        row: &mut row,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    match read {
        Ok(()) => {}
        Err(e) if e.to_string().starts_with(STOP) => {}
        Err(e) => return Err(ManifestError::Invalid(e.to_string())),
    }
    match head.get("schema").and_then(|v| v.as_str()) {
        Some(SCHEMA) | Some(SCHEMA_V1) => {}
        Some(other) => return Err(ManifestError::UnknownSchema(other.to_string())),
        None => return Err(ManifestError::Invalid("it has no `schema` field".into())),
    }
    head.insert("flows".into(), serde_json::Value::Array(Vec::new()));
    serde_json::from_value(serde_json::Value::Object(head)).map_err(|e| ManifestError::Invalid(e.to_string()))
}

/// Writes `head` (whose own `flows` must be empty) with `rows` as its flows, byte for byte as
/// [`Manifest::to_bytes`] would write the whole manifest, holding one row at a time: a 50,000-flow
/// org's manifest is tens of megabytes.
pub fn write_streamed(
    head: &Manifest,
    rows: impl Iterator<Item = FlowRecord>,
    out: &mut (impl std::io::Write + ?Sized),
) -> std::io::Result<()> {
    if !head.flows.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the manifest head must not hold rows",
        ));
    }
    let text = serde_json::to_vec_pretty(head).map_err(std::io::Error::other)?;
    // `flows` is the last field: the head ends with `"flows": []` and the closing brace.
    let empty = b"\"flows\": []";
    let at = text
        .windows(empty.len())
        .rposition(|w| w == empty)
        .ok_or_else(|| std::io::Error::other("the manifest head has no flows field"))?;
    let open = at + empty.len() - 1;
    out.write_all(&text[..open])?;
    let mut first = true;
    let mut buffer = Vec::new();
    for row in rows {
        out.write_all(if first { b"\n    " } else { b",\n    " })?;
        first = false;
        buffer.clear();
        serde_json::to_writer_pretty(&mut buffer, &row).map_err(std::io::Error::other)?;
        // Nested two levels deep: every line of the row gains four spaces.
        for (i, line) in buffer.split(|b| *b == b'\n').enumerate() {
            if i > 0 {
                out.write_all(b"\n    ")?;
            }
            out.write_all(line)?;
        }
    }
    if !first {
        out.write_all(b"\n  ")?;
    }
    out.write_all(&text[open..])?;
    out.write_all(b"\n")
}

/// The current time as RFC 3339 UTC with second precision.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The default run id: the current UTC time to the microsecond and a random suffix, as
/// `20261128T210812.123456Z-3fa9`: unique for jobs started together, sorting by time.
pub fn default_run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    // Microseconds keep ids sorting by time; two jobs can still start in the same microsecond (seen
    // in a test), so a random suffix after the time makes them differ without changing the order.
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second].[subsecond digits:6]Z");
    let stamp = now.format(&fmt).unwrap_or_else(|_| "run".into());
    format!("{stamp}-{:04x}", rand::random::<u16>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_org_passes_and_divisions_of_a_written_manifest_read_back_and_write_out_unchanged() {
        let org = r#"{"id":"o1","name":"Acme","thirdPartyOrgName":"acme","domain":null}"#;
        let pass = r#"{"pass":2,"phase":"final","pages":3,"flows":7,"new_flows":1,"api_total":7,"page_size":100}"#;
        let division = r#"{"id":"d1","name":"Home"}"#;
        let back = |json: &str, value: serde_json::Value| {
            assert_eq!(
                value,
                serde_json::from_str::<serde_json::Value>(json).unwrap(),
                "{json}"
            );
        };
        back(
            org,
            serde_json::to_value(serde_json::from_str::<Org>(org).unwrap()).unwrap(),
        );
        back(
            pass,
            serde_json::to_value(serde_json::from_str::<ListingPass>(pass).unwrap()).unwrap(),
        );
        back(
            division,
            serde_json::to_value(serde_json::from_str::<Division>(division).unwrap()).unwrap(),
        );
        let org: Org = serde_json::from_str(org).unwrap();
        assert_eq!(org.describe(), "`acme` (o1)");
    }

    #[test]
    fn a_v1_manifest_is_read_as_rows_with_one_latest_document() {
        let v1 = r#"{"schema":"flowvault.manifest/v1","run_id":"r","tool":{"name":"flowvault","version":"0.1.0"},
            "started_at":"a","finished_at":"b","region":null,"api_url":"https://api.x/","format":"tar-gz",
            "destination":"/b","archive":"flows.tar.gz","complete":true,"incomplete_reason":null,
            "listing":{"api_total":1,"listed":1,"pages":1,"type_filter":[],"discrepancy":null},
            "totals":{"listed":1,"exported":1,"not_found":0,"failed":0,"skipped":0},
            "flows":[{"id":"f1","name":"Main","type":"INBOUNDCALL","division":null,"published_version":"2.0",
              "saved_version":"3.0","outcome":"exported","path":"flows/inboundcall/Main--f1.json","bytes":10,
              "sha256":"ab","attempts":1}]}"#;
        let m = Manifest::from_slice(v1.as_bytes()).unwrap();
        assert_eq!(m.content, "latest");
        let doc = m.flows[0].document(Content::Latest).unwrap();
        assert_eq!(
            (doc.path.as_str(), doc.bytes, doc.sha256.as_str()),
            ("flows/inboundcall/Main--f1.json", 10, "ab")
        );
        assert_eq!(doc.version.as_deref(), Some("3.0"));
        assert!(m.flows[0].document(Content::Published).is_none());
        let v2 = Manifest::from_slice(&m.to_bytes()).unwrap();
        assert_eq!(
            v2.flows[0].documents, m.flows[0].documents,
            "rewritten, it reads the same"
        );
    }

    #[test]
    fn a_streamed_manifest_is_byte_for_byte_the_whole_one() {
        let v1 = r#"{"schema":"flowvault.manifest/v2","run_id":"r","tool":{"name":"flowvault","version":"0.1.0"},
            "started_at":"a","finished_at":"b","region":null,"api_url":"https://api.x/","format":"tar-gz",
            "destination":"/b","archive":"flows.tar.gz","complete":true,"incomplete_reason":null,
            "listing":{"api_total":1,"listed":1,"pages":1,"type_filter":[],"discrepancy":null},
            "totals":{"listed":1,"exported":1,"not_found":0,"failed":0,"skipped":0},
            "flows":[{"id":"f1","name":"Main\nline","type":"INBOUNDCALL","division":{"id":"d","name":"Home"},"published_version":"2.0",
              "saved_version":"3.0","outcome":"exported","documents":[{"contents":["latest"],"path":"p","bytes":1,"sha256":"ab"}],"attempts":1},
              {"id":"f2","name":"Other","type":"BOT","division":null,"published_version":null,
              "saved_version":null,"outcome":"failed","error":"why"}]}"#;
        let whole = Manifest::from_slice(v1.as_bytes()).unwrap();
        for rows in [whole.flows.clone(), Vec::new()] {
            let expected = Manifest {
                flows: rows.clone(),
                ..whole.clone()
            }
            .to_bytes();
            let head = Manifest {
                flows: Vec::new(),
                ..whole.clone()
            };
            let mut out = Vec::new();
            write_streamed(&head, rows.into_iter(), &mut out).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(expected).unwrap());
        }
    }

    #[test]
    fn a_manifest_read_row_by_row_is_the_whole_one_and_can_stop_at_the_head() {
        let v1 = r#"{"schema":"flowvault.manifest/v1","run_id":"r","tool":{"name":"flowvault","version":"0.1.0"},
            "started_at":"a","finished_at":"b","region":null,"api_url":"https://api.x/","format":"tar-gz",
            "destination":"/b","archive":"flows.tar.gz","complete":true,"incomplete_reason":null,
            "listing":{"api_total":1,"listed":1,"pages":1,"type_filter":[],"discrepancy":null},
            "totals":{"listed":2,"exported":2,"not_found":0,"failed":0,"skipped":0},
            "flows":[{"id":"f1","name":"Main","type":"INBOUNDCALL","division":null,"published_version":"2.0",
              "saved_version":"3.0","outcome":"exported","path":"p1","bytes":10,"sha256":"ab","attempts":1},
              {"id":"f2","name":"B","type":"BOT","division":null,"published_version":null,
              "saved_version":"1.0","outcome":"exported","path":"p2","bytes":11,"sha256":"cd","attempts":1}]}"#;
        let whole = Manifest::from_slice(v1.as_bytes()).unwrap();
        let mut rows = Vec::new();
        let head = read_streamed(v1.as_bytes(), |r| {
            rows.push(r);
            true
        })
        .unwrap();
        assert_eq!(Manifest { flows: rows, ..head }, whole);
        let mut seen = 0;
        let head = read_streamed(v1.as_bytes(), |_| {
            seen += 1;
            false
        })
        .unwrap();
        assert_eq!((seen, head.run_id.as_str(), head.totals.listed), (1, "r", 2));
        assert!(read_streamed(&b"{\"schema\":\"flowvault.manifest/v1\",\"flows\":[{"[..], |_| true).is_err());
        assert!(matches!(
            read_streamed(&br#"{"schema":"flowvault.manifest/v9"}"#[..], |_| true),
            Err(ManifestError::UnknownSchema(_))
        ));
    }

    #[test]
    fn architect_objects_read_back_and_a_manifest_without_them_still_reads() {
        let base = r#"{"schema":"flowvault.manifest/v2","run_id":"r","tool":{"name":"flowvault","version":"0.1.0"},
            "started_at":"a","finished_at":"b","region":null,"api_url":"https://api.x/","format":"objects",
            "destination":"/b","archive":null,"complete":true,"incomplete_reason":null,
            "listing":{"api_total":0,"listed":0,"pages":1,"type_filter":[],"discrepancy":null},
            "totals":{"listed":0,"exported":0,"not_found":0,"failed":0,"skipped":0},"flows":[]}"#;
        let old = Manifest::from_slice(base.as_bytes()).unwrap();
        assert!(old.objects.is_empty() && old.architect.is_none());
        let mut m = old.clone();
        m.architect = Some(ArchitectSection {
            kinds: vec![KindReport {
                kind: "ivrs".into(),
                checked: false,
                note: Some("missing permission routing:callRoute:view".into()),
                ..KindReport::default()
            }],
        });
        m.objects.push(ObjectRecord {
            kind: "prompts".into(),
            id: "p1".into(),
            name: "Welcome".into(),
            division: None,
            outcome: Outcome::Exported,
            documents: vec![Document {
                contents: vec![Content::Audio],
                version: None,
                path: "architect/prompts/Welcome--p1.en-us.wav".into(),
                bytes: 3,
                sha256: "ab".into(),
                configuration_sha256: None,
                language: Some("en-us".into()),
            }],
            listing_sha256: Some("cd".into()),
            source: Some(Source::Fetched),
            carried_from: None,
            error: None,
        });
        let bytes = m.to_bytes();
        let back = Manifest::from_slice(&bytes).unwrap();
        assert_eq!(back, m);
        assert!(back.objects[0].audio("en-us").is_some());
        assert!(
            crate::archive::ends_like_a_manifest(&bytes),
            "flows stays the last field"
        );
    }

    #[test]
    fn an_unknown_schema_is_refused_by_name() {
        let e = Manifest::from_slice(br#"{"schema":"flowvault.manifest/v9"}"#).unwrap_err();
        assert!(e.to_string().contains("flowvault.manifest/v9"), "{e}");
    }
}

/// The org a run read, as the manifest records it (the names `organizations/me` uses). The
/// manifest's own type: the on-disk schema does not follow the API client's structs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Org {
    /// Org id (a UUID).
    pub id: String,
    /// Display name (can be changed by an admin).
    #[serde(default)]
    pub name: Option<String>,
    /// The org's short name: unique and immutable.
    #[serde(default)]
    pub third_party_org_name: Option<String>,
    /// The org's domain.
    #[serde(default)]
    pub domain: Option<String>,
}

impl Org {
    /// `short name (id)`, or the id alone.
    pub fn describe(&self) -> String {
        match (&self.third_party_org_name, &self.name) {
            (Some(short), _) => format!("`{short}` ({})", self.id),
            (None, Some(name)) => format!("`{name}` ({})", self.id),
            (None, None) => self.id.clone(),
        }
    }
}

/// One pass over the listing, as the manifest records it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ListingPass {
    /// 1-based, across both phases.
    pub pass: u32,
    /// Before and while fetching, or after.
    pub phase: PassPhase,
    /// Pages requested.
    pub pages: u64,
    /// Distinct flows this pass served.
    pub flows: u64,
    /// Flows no earlier pass had served.
    pub new_flows: u64,
    /// The API's `total` on the last page of each filter, summed.
    pub api_total: Option<u64>,
    /// The page size the pass ended with.
    pub page_size: u64,
}

/// When a listing pass ran (serialized `initial` / `final`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PassPhase {
    /// Before and while the run fetches.
    #[default]
    Initial,
    /// After the run fetched what was listed.
    Final,
}

/// A flow's division, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Division {
    /// Division id.
    #[serde(default)]
    pub id: Option<String>,
    /// Division name.
    #[serde(default)]
    pub name: Option<String>,
}
