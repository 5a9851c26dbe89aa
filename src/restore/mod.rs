//! Restore: put archived flows back into an org, planned first, applied on request.
//!
//! The run is verified with `verify`'s own rules and only what it accepts is read (`load.rs`): a
//! problem of the run refuses the restore, a damaged document refuses its flow. The target org's
//! current state is read, and each flow gets a planned action: `unchanged` (the org already holds
//! this configuration), `update` (the flow exists), `create` (it is gone: a new flow with a new
//! id), `conflict` (locked by someone else, an operation running, the name taken, a body too
//! large) or `refused`. Writing needs both orgs known and equal (or `--to-other-org`). Applying
//! (`apply.rs`) sends each write once, reads the flow back when an outcome is unknown, judges each
//! step by the flow's versions, and gives back every lock it took.

mod apply;
pub mod architect;
mod drive;
mod load;
pub mod order;
mod plan;
pub mod remap;
mod whole;

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

pub use apply::{apply, restore_flow};
pub use plan::plan;
pub use whole::{apply_all, plan_all};

use crate::archive::ReadError;
use crate::genesys::{ApiError, Organization};
use crate::manifest::{Content, FlowRecord};

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

/// Which configuration a restore puts back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentChoice {
    /// The published configuration where the archive holds one, else the latest.
    #[default]
    Published,
    /// The latest saved configuration (the draft).
    Latest,
    /// The published one (published again with `--publish`), then the archived draft over it
    /// where the archive holds a newer one.
    Both,
}

impl ContentChoice {
    /// The word in settings and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentChoice::Published => "published",
            ContentChoice::Latest => "latest",
            ContentChoice::Both => "both",
        }
    }
}

/// How a restore runs.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Which flows.
    pub selection: Selection,
    /// Which configuration.
    pub content: ContentChoice,
    /// Publish after checking in (flows the archive holds as published only).
    pub publish: bool,
    /// Unlock flows locked by someone else.
    pub force_unlock: bool,
    /// The target org may differ from the archive's, or be unknown.
    pub to_other_org: bool,
    /// How long an operation may run.
    pub operation_timeout: Duration,
    /// Flows written at once within a dependency level (`--concurrency`).
    pub concurrency: usize,
    /// Whether flows are restored (`--kinds` names them, or the archive holds them by default).
    pub flows: bool,
    /// The Architect objects restored, and how.
    pub architect: architect::ArchitectOptions,
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
    /// Its archived document does not verify: nothing of it is read or written.
    Refused,
}

impl Action {
    /// The word in the plan.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Unchanged => "unchanged",
            Action::Update => "update",
            Action::Create => "create",
            Action::Conflict => "conflict",
            Action::Refused => "refused",
        }
    }
}

/// What happened to a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FlowOutcome {
    /// Planned, not applied (a plan without `--apply`).
    #[serde(rename = "planned")]
    Planned,
    /// The org already held it.
    #[serde(rename = "unchanged")]
    Unchanged,
    /// Restored: the versions afterwards show it.
    #[serde(rename = "done")]
    Done,
    /// A step failed; `error` says which and why.
    #[serde(rename = "failed")]
    Failed,
    /// Left alone: `reason` says why.
    #[serde(rename = "conflict")]
    Conflict,
    /// Its document does not verify.
    #[serde(rename = "refused")]
    Refused,
    /// The restore was interrupted before this flow was written (or its lock was given back).
    #[serde(rename = "not attempted")]
    NotAttempted,
}

impl FlowOutcome {
    /// The word in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowOutcome::Planned => "planned",
            FlowOutcome::Unchanged => "unchanged",
            FlowOutcome::Done => "done",
            FlowOutcome::Failed => "failed",
            FlowOutcome::Conflict => "conflict",
            FlowOutcome::Refused => "refused",
            FlowOutcome::NotAttempted => "not attempted",
        }
    }
}

/// A flow's version ids.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Versions {
    /// `savedVersion.id`.
    pub saved: Option<String>,
    /// `checkedInVersion.id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_in: Option<String>,
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
            checked_in: id("checkedInVersion"),
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
    /// Whether the archive holds the flow as published (a never-published flow is never
    /// published by a restore).
    pub archived_published: bool,
    /// The planned action.
    pub action: Action,
    /// Why (conflicts), or what to know (a re-created flow gets a new id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the org holds that the archive does not and this restore leaves alone (a newer draft).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<String>,
    /// What the configuration depends on (from its inline `manifest`), shown for another org.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    /// The org's versions before.
    pub versions_before: Versions,
    /// The org's versions after (applied): read back whatever happened.
    pub versions_after: Option<Versions>,
    /// The id of the flow created for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_id: Option<String>,
    /// What happened.
    pub outcome: FlowOutcome,
    /// Why it failed, with the API's error code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// True when flowvault took the flow's lock and could not give it back.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub left_locked: bool,
    /// What else to know (a step skipped and why).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Whether the flow is locked by someone else (kept for `apply`).
    #[serde(skip)]
    pub locked_by_other: bool,
    /// The configuration to save, exactly as archived.
    #[serde(skip)]
    pub configuration: Bytes,
    /// With `--content both`: the archived draft saved (not published) after it.
    #[serde(skip)]
    pub draft: Option<Bytes>,
    /// Whether `--publish` may publish `configuration` (archived as published, and not a draft).
    #[serde(skip)]
    pub publishable: bool,
    /// Its division id and description in the archive (for a re-created flow).
    #[serde(skip)]
    pub division_id: Option<String>,
    /// The archived description.
    #[serde(skip)]
    pub description: String,
    /// References re-pointed to the target org's ids (manifest and actions), as planned and done.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repointed: Vec<remap::Repointed>,
    /// What the configuration's `manifest` references.
    #[serde(skip)]
    pub references: Vec<remap::Reference>,
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
    /// Set when a signal stopped the restore: the flows after the one in hand are `not attempted`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
    /// One entry per selected flow.
    pub flows: Vec<FlowRestore>,
    /// What applying is expected to cost: requests and seconds at the client's rate limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<drive::Expected>,
    /// One entry per Architect object restored or re-pointed, in restore order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<architect::ObjectRestore>,
    /// The one id map (archived id → target id; `None`: created by this restore).
    #[serde(skip)]
    pub id_map: architect::IdMap,
    /// True when the flows are only re-pointed (their kind not restored): the org's own
    /// configurations are saved with the new ids and published again where they were published.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub flows_repointed_only: bool,
}

impl RestoreReport {
    /// True when every flow is done or unchanged (or, for a plan, nothing is in conflict).
    pub fn all_good(&self) -> bool {
        let good = |o: FlowOutcome| matches!(o, FlowOutcome::Done | FlowOutcome::Unchanged | FlowOutcome::Planned);
        self.interrupted.is_none()
            && self.flows.iter().all(|f| !f.left_locked && good(f.outcome))
            && self.objects.iter().all(|o| good(o.outcome))
    }

    /// How many flows ended with `outcome`.
    pub fn count(&self, outcome: FlowOutcome) -> usize {
        self.flows.iter().filter(|f| f.outcome == outcome).count()
    }
}

/// A restore that cannot go ahead.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The run cannot be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The run does not verify as a whole: nothing of it is read.
    #[error(
        "{location} does not verify, so nothing was read from it and nothing was written: {}; run `flowvault verify` on it",
        .problems.join("; ")
    )]
    Unverified { location: String, problems: Vec<String> },
    /// Nothing matched the selection.
    #[error("no exported flow of the run matches the selection (--flow, --name, --type or --all)")]
    NothingSelected,
    /// `--flow` ids the run does not hold as exported.
    #[error("the run holds no exported flow with id {}: check the ids (`flowvault diff` or the manifest lists them)", .0.join(", "))]
    NoSuchFlow(Vec<String>),
    /// The target org is not the archive's.
    #[error(
        "the archive is from org {archive} but the credentials are for org {target}; pass --to-other-org to restore into another org"
    )]
    OtherOrg { archive: String, target: String },
    /// The archive's or the target's org is unknown: writing could hit the wrong org.
    #[error(
        "{what}, so it cannot be told whether this is the archive's org; nothing was written — pass --to-other-org if you are sure"
    )]
    OrgUnknown { what: String },
    /// The org cannot be read.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// `--kinds` names only Architect kinds the run holds no exported object of.
    #[error(
        "the run holds no exported object of the kinds named ({0}); `flowvault diff` or the manifest lists what it holds"
    )]
    NoObjects(String),
}

/// The `configuration` member of a stored document, byte for byte, and the archived flow row.
fn split_document(body: &[u8]) -> Option<(Bytes, serde_json::Value)> {
    let doc = crate::document::Document::parse(body).ok()?;
    let flow = doc.flow_row().ok()?;
    Some((Bytes::copy_from_slice(doc.configuration_bytes()), flow))
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
