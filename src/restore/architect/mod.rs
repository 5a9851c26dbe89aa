//! Restoring the Architect objects flows stand on — schedules, schedule groups, prompts (with
//! their audio), data tables (with their rows), outcomes, milestones, emergency groups and IVRs —
//! planned and applied like flows, in dependency order around the flows.
//!
//! Objects are matched in the target org by kind and name. Each gets one plan line (`unchanged`,
//! `update`, `create`, `conflict`, with the reason). Objects re-created get new ids; one id map
//! (archived id → target id, new ids filled in as they are created) re-points every reference in
//! what is restored: flows' manifests and actions (through the flow restore's map), schedule
//! groups' schedules, IVRs' flows and schedule group, emergency groups' flows and IVRs. Objects
//! of the target org outside the restore that reference a re-created object are re-pointed too
//! (`re-point` updates), so nothing is left naming a deleted id.

pub mod apply;
pub mod kinds;
pub mod load;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

pub use apply::{apply_after_flows, apply_before_flows};
pub use kinds::ArchitectKind;
pub use load::ArchivedObject;
pub use plan::{IdMap, changed_ids, plan_objects, resolve_flow_refs};

use super::{Action, FlowOutcome};

/// How the Architect part of a restore runs.
#[derive(Debug, Clone, Default)]
pub struct ArchitectOptions {
    /// The kinds restored (empty: none).
    pub kinds: BTreeSet<ArchitectKind>,
    /// Delete rows the org's data tables hold that the archive does not (`--prune-rows`).
    pub prune_rows: bool,
    /// Reads of a prompt resource at most while waiting for `transcoded`.
    pub transcode_polls: u32,
}

/// One Architect object of a restore: the plan and, once applied, what happened.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectRestore {
    /// The kind.
    #[serde(serialize_with = "kind_name")]
    pub kind: ArchitectKind,
    /// Its id in the archive (for a re-point of an object outside the archive: its id in the org).
    pub id: String,
    /// Its name.
    pub name: String,
    /// The planned action.
    pub action: Action,
    /// Why (conflicts), or what to know.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What differs from the org (fields, resources, rows), for an update.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// The object it was matched to in the org.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    /// The id of the object created for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_id: Option<String>,
    /// True when only its references are re-pointed (an object of the org, not restored).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub repoint_only: bool,
    /// References re-pointed: `kind "name": old → new`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repointed: Vec<String>,
    /// What happened.
    pub outcome: FlowOutcome,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What else to know (writes settled by reading back, audio uploaded, rows written).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The archived object (or the org's, for a re-point).
    #[serde(skip)]
    pub archived: Value,
    /// The org's object it was matched to.
    #[serde(skip)]
    pub target: Option<Value>,
    /// The archived rows (data tables).
    #[serde(skip)]
    pub rows: Option<Vec<Value>>,
    /// The org's rows of the matched table, by key.
    #[serde(skip)]
    pub target_rows: BTreeMap<String, Value>,
    /// The archived audio by language (prompts).
    #[serde(skip)]
    pub audio: BTreeMap<String, Bytes>,
}

impl ObjectRestore {
    /// An object planned against nothing yet.
    pub fn new(kind: ArchitectKind, id: &str, name: &str, archived: Value) -> ObjectRestore {
        ObjectRestore {
            kind,
            id: id.to_string(),
            name: name.to_string(),
            action: Action::Create,
            reason: None,
            changes: Vec::new(),
            target_id: None,
            new_id: None,
            repoint_only: false,
            repointed: Vec::new(),
            outcome: FlowOutcome::Planned,
            error: None,
            notes: Vec::new(),
            archived,
            target: None,
            rows: None,
            target_rows: BTreeMap::new(),
            audio: BTreeMap::new(),
        }
    }

    /// Marks it in conflict.
    pub fn conflict(&mut self, reason: String) {
        self.action = Action::Conflict;
        self.outcome = FlowOutcome::Conflict;
        self.reason = Some(reason);
    }

    /// The id it has in the org (matched, or created).
    pub fn id_in_org(&self) -> Option<&str> {
        self.new_id.as_deref().or(self.target_id.as_deref())
    }
}

/// The archive's rows of data table `row` (`{"kind","table","rows":[…]}`), or `None` when the
/// document is not that.
pub fn rows_of(document: &Value) -> Option<Vec<Value>> {
    document.get("rows")?.as_array().cloned()
}

/// A row's key (the `key` property every data table requires).
pub fn row_key(row: &Value) -> Option<String> {
    match row.get("key")? {
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn kind_name<S: serde::Serializer>(kind: &ArchitectKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.as_str())
}
