//! The record of a run: what was listed, what happened to each flow, where it went, its size and
//! SHA-256, and whether the run is complete. Written last, so a `manifest.json` with
//! `"complete": true` means the archive beside it is whole.

use serde::{Deserialize, Serialize};

use crate::genesys::PassRecord;
use crate::genesys::flow::DivisionRef;

/// The manifest schema identifier; bump on incompatible changes.
pub const SCHEMA: &str = "flowvault.manifest/v1";

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
    pub passes: Vec<PassRecord>,
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
    pub division: Option<DivisionRef>,
    /// `publishedVersion.id` as listed.
    pub published_version: Option<String>,
    /// `savedVersion.id` as listed.
    pub saved_version: Option<String>,
    /// What happened.
    pub outcome: Outcome,
    /// Tar member name, or object path relative to the run.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path: Option<String>,
    /// Size of the stored document.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bytes: Option<u64>,
    /// Hex SHA-256 of the stored document.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
    /// Requests sent for its configuration.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attempts: Option<u32>,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

impl FlowRecord {
    /// The flow's document is stored at `path`.
    pub fn exported(&mut self, path: String, bytes: u64, sha256: String, attempts: u32) {
        self.outcome = Outcome::Exported;
        self.path = Some(path);
        self.bytes = Some(bytes);
        self.sha256 = Some(sha256);
        self.attempts = Some(attempts);
        self.error = None;
    }

    /// The flow was deleted after it was listed.
    pub fn not_found(&mut self) {
        self.outcome = Outcome::NotFound;
        self.path = None;
        self.bytes = None;
        self.sha256 = None;
        self.attempts = None;
        self.error = Some("deleted after it was listed (HTTP 404/410)".into());
    }

    /// The flow could not be fetched or stored; nothing of it is in the run.
    pub fn failed(&mut self, error: String, attempts: Option<u32>) {
        self.outcome = Outcome::Failed;
        self.path = None;
        self.bytes = None;
        self.sha256 = None;
        self.attempts = attempts;
        self.error = Some(error);
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
    /// One row per listed flow, sorted by type then id.
    pub flows: Vec<FlowRecord>,
}

impl Manifest {
    /// Recounts the totals from the rows.
    pub fn recount(&mut self) {
        let mut t = Totals {
            listed: self.flows.len() as u64,
            ..Totals::default()
        };
        for f in &self.flows {
            match f.outcome {
                Outcome::Exported => t.exported += 1,
                Outcome::NotFound => t.not_found += 1,
                Outcome::Failed => t.failed += 1,
                Outcome::Skipped => t.skipped += 1,
            }
        }
        self.totals = t;
    }

    /// The manifest as pretty JSON with a trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}").into_bytes());
        out.push(b'\n');
        out
    }
}

/// The current time as RFC 3339 UTC with second precision.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The default run id: the current UTC time as `20261128T210812Z`.
pub fn default_run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    now.format(&fmt).unwrap_or_else(|_| "run".into())
}
