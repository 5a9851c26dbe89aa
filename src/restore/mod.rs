//! Restore: put archived flows back into an org, planned first, applied on request.
//!
//! The selected documents are verified against the manifest, the target org's current state is
//! read, and each flow gets a planned action: `unchanged` (the org already holds this
//! configuration), `update` (the flow exists), `create` (it is gone: a new flow with a new id), or
//! `conflict` (locked by someone else, an operation running, the name taken, a body too large).
//! Applying locks, saves, checks in and (with `publish`) publishes each flow through the same
//! client, limiter and retry rules as `export`, following the asynchronous operations.

mod apply;
mod plan;

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

pub use apply::apply;
pub use plan::plan;

use crate::archive::{ReadError, RunHandle, each_member};
use crate::genesys::{ApiError, Organization};
use crate::manifest::{Content, Document, FlowRecord, Manifest, Outcome};

/// Which flows to restore.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Flow ids.
    pub ids: Vec<String>,
    /// A name pattern (`*` any run of characters, `?` one), case-insensitive.
    pub name_glob: Option<String>,
    /// Flow types (case-insensitive).
    pub types: Vec<String>,
    /// Every exported flow.
    pub all: bool,
}

impl Selection {
    /// True when the row is selected.
    pub fn selects(&self, row: &FlowRecord) -> bool {
        if self.all {
            return true;
        }
        let by_id = self.ids.iter().any(|id| id == &row.id);
        let by_name = self.name_glob.as_deref().is_some_and(|g| glob_matches(g, &row.name));
        let by_type = self.types.iter().any(|t| t.eq_ignore_ascii_case(&row.flow_type));
        let filters = (!self.ids.is_empty(), self.name_glob.is_some(), !self.types.is_empty());
        // Ids select on their own; name and type narrow each other when both are given.
        by_id || (filters.1 || filters.2) && (!filters.1 || by_name) && (!filters.2 || by_type)
    }

    /// True when nothing selects.
    pub fn is_empty(&self) -> bool {
        !self.all && self.ids.is_empty() && self.name_glob.is_none() && self.types.is_empty()
    }
}

/// `*` and `?` globbing, case-insensitive.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// How a restore runs.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Which flows.
    pub selection: Selection,
    /// `Some(Latest)` restores the saved draft; `None` the published configuration where the
    /// archive holds one, else the latest.
    pub content: Option<Content>,
    /// Publish after checking in.
    pub publish: bool,
    /// Unlock flows locked by someone else.
    pub force_unlock: bool,
    /// The target org may differ from the archive's.
    pub to_other_org: bool,
    /// How long an operation may run.
    pub operation_timeout: Duration,
}

/// What the plan does with a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The org already holds this configuration.
    Unchanged,
    /// Save it as a new version of the existing flow.
    Update,
    /// The flow is gone: create a new one (a new id).
    Create,
    /// It cannot be restored as things are; `reason` says why.
    Conflict,
}

impl Action {
    /// The word in the plan.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Unchanged => "unchanged",
            Action::Update => "update",
            Action::Create => "create",
            Action::Conflict => "conflict",
        }
    }
}

/// A flow's version ids.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Versions {
    /// `savedVersion.id`.
    pub saved: Option<String>,
    /// `publishedVersion.id`.
    pub published: Option<String>,
}

impl Versions {
    /// The versions a flow's metadata names.
    pub fn of(flow: &serde_json::Value) -> Versions {
        let id = |k: &str| {
            flow.get(k)
                .and_then(|v| v.get("id"))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        Versions {
            saved: id("savedVersion"),
            published: id("publishedVersion"),
        }
    }
}

/// One flow of a restore: the plan and, once applied, what happened.
#[derive(Debug, Clone, Serialize)]
pub struct FlowRestore {
    /// The id in the archive.
    pub id: String,
    /// The flow's name.
    pub name: String,
    /// The flow's type.
    #[serde(rename = "type")]
    pub flow_type: String,
    /// Which configuration is restored.
    pub content: Content,
    /// The archived version it holds.
    pub archived_version: Option<String>,
    /// The planned action.
    pub action: Action,
    /// Why (conflicts), or what to know (a re-created flow gets a new id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the configuration depends on (from its inline `manifest`), shown for another org.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    /// The org's versions before.
    pub versions_before: Versions,
    /// The org's versions after (applied).
    pub versions_after: Option<Versions>,
    /// The id of the flow created for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_id: Option<String>,
    /// `planned`, `unchanged`, `done`, `failed` or `conflict`.
    pub outcome: String,
    /// Why it failed, with the API's error code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether the flow is locked by someone else (kept for `apply`).
    #[serde(skip)]
    pub locked_by_other: bool,
    /// The configuration to save, exactly as archived.
    #[serde(skip)]
    pub configuration: Bytes,
    /// Its division id and description in the archive (for a re-created flow).
    #[serde(skip)]
    pub division_id: Option<String>,
    /// The archived description.
    #[serde(skip)]
    pub description: String,
}

/// The whole restore, as `restore.json` records it.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The run restored from.
    pub run: String,
    /// The org the archive came from.
    pub archive_org: Option<Organization>,
    /// The org written to.
    pub target_org: Option<Organization>,
    /// Whether anything was written.
    pub applied: bool,
    /// Whether flows were published.
    pub published: bool,
    /// One entry per selected flow.
    pub flows: Vec<FlowRestore>,
}

impl RestoreReport {
    /// True when every flow is done or unchanged (or, for a plan, nothing is in conflict).
    pub fn all_good(&self) -> bool {
        self.flows
            .iter()
            .all(|f| matches!(f.outcome.as_str(), "done" | "unchanged" | "planned"))
    }
}

/// A restore that cannot go ahead.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The run cannot be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A selected document does not match the manifest.
    #[error(
        "flow {id} ({name:?}): {path} does not verify against the manifest ({why}); nothing was written — run `flowvault verify` on the run"
    )]
    Corrupt {
        id: String,
        name: String,
        path: String,
        why: String,
    },
    /// Nothing matched the selection.
    #[error("no exported flow of the run matches the selection (--flow, --name, --type or --all)")]
    NothingSelected,
    /// The target org is not the archive's.
    #[error(
        "the archive is from org {archive} but the credentials are for org {target}; pass --to-other-org to restore into another org"
    )]
    OtherOrg { archive: String, target: String },
    /// The org cannot be read.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// The document a row restores for `content`.
fn document_for(row: &FlowRecord, content: Option<Content>) -> Option<(Content, &Document)> {
    match content {
        Some(Content::Latest) => row.document(Content::Latest).map(|d| (Content::Latest, d)),
        _ => row
            .document(Content::Published)
            .map(|d| (Content::Published, d))
            .or_else(|| row.document(Content::Latest).map(|d| (Content::Latest, d))),
    }
}

/// A selected flow with its verified document.
pub(crate) struct Loaded<'a> {
    row: &'a FlowRecord,
    content: Content,
    doc: &'a Document,
    body: Bytes,
}

/// Reads and verifies the selected flows' documents (one pass over an archive).
pub(crate) async fn load<'a>(
    run: &RunHandle,
    manifest: &'a Manifest,
    options: &RestoreOptions,
) -> Result<Vec<Loaded<'a>>, RestoreError> {
    let chosen: Vec<(&FlowRecord, Content, &Document)> = manifest
        .flows
        .iter()
        .filter(|r| r.outcome == Outcome::Exported && options.selection.selects(r))
        .filter_map(|r| document_for(r, options.content).map(|(c, d)| (r, c, d)))
        .collect();
    if chosen.is_empty() {
        return Err(RestoreError::NothingSelected);
    }
    let mut bodies: std::collections::HashMap<String, Bytes> = std::collections::HashMap::new();
    if run.has_archive {
        let wanted: std::collections::HashSet<String> = chosen.iter().map(|(_, _, d)| d.path.clone()).collect();
        for (name, body) in each_member(
            run,
            move |name| wanted.contains(name),
            |name, body| Some((name.to_string(), body.to_vec())),
        )
        .await?
        {
            bodies.insert(name, Bytes::from(body));
        }
    } else {
        for (_, _, d) in &chosen {
            if let Some(b) = run.reader.read(&run.name(&d.path)).await.map_err(ReadError::from)? {
                bodies.insert(d.path.clone(), b);
            }
        }
    }
    let mut loaded = Vec::with_capacity(chosen.len());
    for (row, content, doc) in chosen {
        let corrupt = |why: String| RestoreError::Corrupt {
            id: row.id.clone(),
            name: row.name.clone(),
            path: doc.path.clone(),
            why,
        };
        let body = bodies.remove(&doc.path).ok_or_else(|| corrupt("missing".into()))?;
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body));
        if sha != doc.sha256 || body.len() as u64 != doc.bytes {
            return Err(corrupt(format!("SHA-256 {sha}, expected {}", doc.sha256)));
        }
        loaded.push(Loaded {
            row,
            content,
            doc,
            body,
        });
    }
    Ok(loaded)
}

/// The `configuration` member of a stored document, byte for byte, and the archived flow row.
fn split_document(body: &[u8]) -> Option<(Bytes, serde_json::Value)> {
    #[derive(serde::Deserialize)]
    struct Doc<'a> {
        #[serde(borrow)]
        flow: &'a serde_json::value::RawValue,
        #[serde(borrow)]
        configuration: &'a serde_json::value::RawValue,
    }
    let doc: Doc = serde_json::from_slice(body).ok()?;
    let flow = serde_json::from_str(doc.flow.get()).ok()?;
    Some((Bytes::copy_from_slice(doc.configuration.get().as_bytes()), flow))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_a_shell_without_case() {
        assert!(glob_matches("main*", "Main IVR"));
        assert!(glob_matches("*ivr", "Main IVR"));
        assert!(glob_matches("m?in*r", "main ivr"));
        assert!(!glob_matches("main", "Main IVR"));
        assert!(glob_matches("*", ""));
    }
}
