//! The dependency report: every object a backed-up flow references, read from its
//! configuration's inline `manifest` while the configuration passes through the export, and —
//! when the manifest is sealed — whether each Architect object it uses is in this archive.
//!
//! Cheap by design: only the configuration's `manifest` key is parsed (the rest is skipped, not
//! built), and nothing of a configuration is kept but the short list it yields. A flow that uses
//! an Architect object the archive does not hold (deleted, in a division the role cannot see, or
//! of a kind this run did not read) is a warning naming both: restoring that flow alone would fail
//! to publish.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use serde_json::Value;
use tracing::{info, warn};

use super::rows::RowLog;
use crate::architect::{ArchitectKind, KindSelection};
use crate::manifest::{ArchitectDependency, ArchitectSection, Dependencies, ObjectRecord, OtherDependency, Outcome};

/// The `manifest` key's kind as `--kinds` names it (`userPrompt` → `prompts`).
fn kind_name(manifest_key: &str) -> &str {
    match ArchitectKind::from_manifest_key(manifest_key) {
        Some(kind) => kind.as_str(),
        None => manifest_key,
    }
}

/// A configuration with only its `manifest` read: serde skips every other key unbuilt.
#[derive(Deserialize)]
struct ManifestOnly {
    #[serde(default)]
    manifest: Option<BTreeMap<String, Value>>,
}

/// Adds what the configuration `json` references to `into` (entries already there are kept
/// once). A configuration without a readable `manifest` adds nothing.
pub fn add_configuration(into: &mut Dependencies, json: &str) {
    let Ok(read) = serde_json::from_str::<ManifestOnly>(json) else {
        return;
    };
    for (key, entries) in read.manifest.into_iter().flatten() {
        for entry in entries.as_array().into_iter().flatten() {
            let text = |field: &str| entry.get(field).and_then(Value::as_str).unwrap_or_default().to_string();
            let (id, name) = (text("id"), text("name"));
            if id.is_empty() && name.is_empty() {
                continue;
            }
            if ArchitectKind::from_manifest_key(&key).is_some() {
                if !into.architect.iter().any(|d| d.kind == key && d.id == id) {
                    into.architect.push(ArchitectDependency {
                        kind: key.clone(),
                        id,
                        name,
                        in_archive: false,
                    });
                }
            } else if !into.other.iter().any(|d| d.kind == key && d.id == id && d.name == name) {
                into.other.push(OtherDependency {
                    kind: key.clone(),
                    id,
                    name,
                });
            }
        }
    }
}

/// `deps` when it names anything (a flow referencing nothing has no `dependencies`).
pub fn named(deps: Dependencies) -> Option<Dependencies> {
    (!(deps.architect.is_empty() && deps.other.is_empty())).then_some(deps)
}

/// What a flow's configurations reference (`None` when they name nothing).
pub fn of_configurations<'a>(configurations: impl IntoIterator<Item = &'a str>) -> Option<Dependencies> {
    let mut deps = Dependencies::default();
    for c in configurations {
        add_configuration(&mut deps, c);
    }
    named(deps)
}

/// What this archive holds of the Architect kinds, for filling `in_archive`.
#[derive(Debug, Default)]
pub struct Archived {
    /// `(manifest key, id)` of every object stored.
    objects: HashSet<(String, String)>,
    /// Kinds (manifest keys) this run did not read: why, and whether that deserves a warning
    /// (the role cannot read it) or not (the run was not asked for it).
    unread: BTreeMap<String, (String, bool)>,
}

impl Archived {
    /// An object of `kind` with `id` is stored in the archive.
    pub fn insert(&mut self, kind: ArchitectKind, id: &str) {
        self.objects.insert((kind.manifest_key().to_string(), id.to_string()));
    }

    /// Objects of `kind` could not be read by this run, for `why` (a warning).
    pub fn unread(&mut self, kind: ArchitectKind, why: impl Into<String>) {
        self.unread.insert(kind.manifest_key().to_string(), (why.into(), true));
    }

    /// Objects of `kind` were not asked for (`--kinds`): said, not warned.
    pub fn not_asked(&mut self, kind: ArchitectKind) {
        let why = format!("not asked for: --kinds does not name {kind}");
        self.unread.insert(kind.manifest_key().to_string(), (why, false));
    }

    /// A run that backed up flows only: no Architect object is in its archive.
    pub fn flows_only() -> Archived {
        let mut a = Archived::default();
        ArchitectKind::ALL.into_iter().for_each(|k| a.not_asked(k));
        a
    }

    /// What a run holds: its exported `objects`; the kinds `selection` did not ask for; the
    /// kinds its `section` says were not checked (with the section's note as why).
    pub fn of_run(selection: &KindSelection, section: Option<&ArchitectSection>, objects: &[ObjectRecord]) -> Archived {
        let mut a = Archived::default();
        for kind in ArchitectKind::ALL.into_iter().filter(|k| !selection.has(*k)) {
            a.not_asked(kind);
        }
        for report in section.map(|s| s.kinds.as_slice()).unwrap_or_default() {
            if let Some(kind) = ArchitectKind::from_name(&report.kind).filter(|_| !report.checked) {
                a.unread(kind, report.note.clone().unwrap_or_else(|| "not checked".into()));
            }
        }
        for o in objects.iter().filter(|o| o.outcome == Outcome::Exported) {
            if let Some(kind) = ArchitectKind::from_name(&o.kind) {
                a.insert(kind, &o.id);
            }
        }
        a
    }

    fn holds(&self, kind: &str, id: &str) -> bool {
        self.objects.contains(&(kind.to_string(), id.to_string()))
    }
}

/// What [`resolve`] found: flows using Architect objects this archive does not hold.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Missing {
    /// References (flow, object) to objects of kinds that were read, but not to those objects
    /// (deleted, or in a division the role cannot see), per kind (manifest key).
    pub absent: BTreeMap<String, u64>,
    /// References to objects of kinds this run did not read, per kind (manifest key).
    pub unread: BTreeMap<String, u64>,
    /// Flows with at least one such reference.
    pub flows: u64,
}

impl Missing {
    /// Adds what is missing to each kind's note in the manifest's `architect` section.
    pub fn annotate(&self, section: &mut ArchitectSection) {
        for report in &mut section.kinds {
            let Some(kind) = ArchitectKind::from_name(&report.kind) else {
                continue;
            };
            let key = kind.manifest_key();
            let line = match (self.absent.get(key), self.unread.get(key)) {
                (Some(n), _) => format!(
                    "{n} reference(s) from flows to {kind} not in this archive (not in the org's listing: deleted, or in a division the role cannot see); see the flows' dependencies (in_archive: false)"
                ),
                (None, Some(n)) => format!("{n} reference(s) from flows to {kind}, which this run did not read"),
                (None, None) => continue,
            };
            report.note = Some(match report.note.take() {
                Some(note) => format!("{note}; {line}"),
                None => line,
            });
        }
    }
}

fn plural(manifest_key: &str) -> &str {
    kind_name(manifest_key)
}

/// Fills `in_archive` of every row's Architect dependencies from `archived`, and warns once per
/// flow and object the archive lacks (once per kind for kinds this run did not read).
pub(super) fn resolve(rows: &mut RowLog, archived: &Archived) -> Missing {
    let mut missing = Missing::default();
    let with_deps: Vec<usize> = rows
        .iter()
        .filter(|(_, r)| r.dependencies.as_ref().is_some_and(|d| !d.architect.is_empty()))
        .map(|(i, _)| i)
        .collect();
    for index in with_deps {
        let Some(row) = rows.get(index) else { continue };
        let Some(mut deps) = row.dependencies.clone() else {
            continue;
        };
        let mut lacks = false;
        for d in &mut deps.architect {
            d.in_archive = archived.holds(&d.kind, &d.id);
            if d.in_archive {
                continue;
            }
            lacks = true;
            if archived.unread.contains_key(&d.kind) {
                *missing.unread.entry(d.kind.clone()).or_default() += 1;
            } else {
                *missing.absent.entry(d.kind.clone()).or_default() += 1;
                warn!(
                    flow_id = %row.id,
                    "flow {} ({}) uses {} {:?} ({}), which is not in this archive: it was not in the org's listing (deleted, or in a division the role cannot see); restoring the flow will fail to publish until it exists",
                    row.id,
                    row.name,
                    d.kind,
                    d.name,
                    d.id
                );
            }
        }
        missing.flows += u64::from(lacks);
        if row.dependencies.as_ref() != Some(&deps) {
            rows.update(index, |r| r.dependencies = Some(deps));
        }
    }
    for (kind, n) in &missing.unread {
        let Some((why, warns)) = archived.unread.get(kind) else {
            continue;
        };
        let line = format!(
            "{n} reference(s) from flows to {} are not backed up by this run ({why}); see the flows' dependencies in the manifest",
            plural(kind)
        );
        if *warns {
            warn!("{line}");
        } else {
            info!("{line}");
        }
    }
    missing
}

/// At sealing: fills every flow's `in_archive` from what the run holds, warns about what it
/// lacks, and notes it per kind in the manifest's `architect` section.
pub(super) fn seal(
    rows: &mut RowLog,
    selection: &KindSelection,
    mut section: Option<&mut ArchitectSection>,
    objects: &[ObjectRecord],
) {
    let archived = Archived::of_run(selection, section.as_deref(), objects);
    let missing = resolve(rows, &archived);
    if let Some(section) = section.as_mut() {
        missing.annotate(section);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::FlowRecord;

    const CONFIG: &str = r#"{"name":"Main","flowSequenceItemList":[{"id":"t1","actions":[{"datatableId":"d1"}]}],
        "manifest":{
          "userPrompt":[{"id":"p1","name":"Welcome","context":[{"actionName":"PlayAudioAction","id":"a","name":"Play"}]}],
          "dataTable":[{"id":"d1","name":"Hours"}],
          "queue":[{"id":"q1","name":"Sales","context":[]}],
          "dataAction":[{"id":"custom_-_x","name":"Lookup"}],
          "botFlow":[{"id":"b1","name":"Bot","version":"published"}]},
        "uiMetaData":{"huge":[1,2,3]}}"#;

    fn section(kinds: &[&str]) -> ArchitectSection {
        ArchitectSection {
            kinds: kinds
                .iter()
                .map(|k| crate::manifest::KindReport {
                    kind: k.to_string(),
                    checked: true,
                    ..Default::default()
                })
                .collect(),
        }
    }

    fn row_with(deps: Option<Dependencies>) -> FlowRecord {
        let mut r = FlowRecord::listed(
            "f1".into(),
            "Main".into(),
            "INBOUNDCALL".into(),
            None,
            (None, None),
            String::new(),
        );
        r.dependencies = deps;
        r
    }

    #[test]
    fn architect_objects_and_other_objects_are_told_apart_by_manifest_key() {
        let d = of_configurations([CONFIG]).unwrap();
        let architect: Vec<_> = d
            .architect
            .iter()
            .map(|d| (d.kind.as_str(), d.id.as_str(), d.name.as_str()))
            .collect();
        assert_eq!(
            architect,
            [("dataTable", "d1", "Hours"), ("userPrompt", "p1", "Welcome")]
        );
        let other: Vec<_> = d.other.iter().map(|d| (d.kind.as_str(), d.name.as_str())).collect();
        assert_eq!(
            other,
            [("botFlow", "Bot"), ("dataAction", "Lookup"), ("queue", "Sales")]
        );
        assert!(d.architect.iter().all(|d| !d.in_archive), "unknown until sealed");
    }

    #[test]
    fn two_configurations_of_one_flow_name_each_object_once() {
        let published = CONFIG.replace("\"d1\",\"name\":\"Hours\"", "\"d2\",\"name\":\"Holidays\"");
        let d = of_configurations([CONFIG, published.as_str()]).unwrap();
        assert_eq!(d.architect.len(), 3, "{:?}", d.architect);
        assert_eq!(d.other.len(), 3);
    }

    #[test]
    fn a_configuration_without_a_manifest_references_nothing() {
        assert_eq!(of_configurations([r#"{"name":"x"}"#]), None);
        assert_eq!(of_configurations(["not json"]), None);
        assert_eq!(of_configurations([r#"{"manifest":{"queue":"odd"}}"#]), None);
    }

    #[test]
    fn sealing_marks_what_the_archive_holds_and_counts_what_it_lacks() {
        let mut rows = RowLog::in_memory();
        let i = rows.push(row_with(of_configurations([CONFIG])));
        let j = rows.push(row_with(None));
        let mut archived = Archived::default();
        archived.insert(ArchitectKind::Prompts, "p1");
        let missing = resolve(&mut rows, &archived);
        let deps = rows.get(i).unwrap().dependencies.unwrap();
        let marks: Vec<_> = deps.architect.iter().map(|d| (d.id.as_str(), d.in_archive)).collect();
        assert_eq!(marks, [("d1", false), ("p1", true)]);
        assert_eq!(rows.get(j).unwrap().dependencies, None);
        assert_eq!((missing.absent.get("dataTable"), missing.flows), (Some(&1), 1));
        let mut section = section(&["prompts", "datatables"]);
        missing.annotate(&mut section);
        assert_eq!(section.kinds[0].note, None, "every prompt is in");
        let note = section.kinds[1].note.clone().unwrap();
        assert!(
            note.starts_with("1 reference(s) from flows to datatables not in this archive"),
            "{note}"
        );
    }

    #[test]
    fn references_to_a_kind_not_read_are_counted_per_kind_not_as_deleted_objects() {
        let mut rows = RowLog::in_memory();
        rows.push(row_with(of_configurations([CONFIG])));
        let mut archived = Archived::default();
        archived.insert(ArchitectKind::Prompts, "p1");
        archived.unread(ArchitectKind::DataTables, "the role lacks architect:datatable:view");
        let missing = resolve(&mut rows, &archived);
        assert!(missing.absent.is_empty());
        assert_eq!(missing.unread.get("dataTable"), Some(&1));
        let mut section = section(&["datatables"]);
        section.kinds[0].note = Some("missing permission architect:datatable:view".into());
        missing.annotate(&mut section);
        assert_eq!(
            section.kinds[0].note.as_deref(),
            Some(
                "missing permission architect:datatable:view; 1 reference(s) from flows to datatables, which this run did not read"
            )
        );
    }

    #[test]
    fn a_run_whose_flows_use_only_archived_objects_has_no_note() {
        let mut rows = RowLog::in_memory();
        rows.push(row_with(of_configurations([CONFIG])));
        let mut archived = Archived::default();
        archived.insert(ArchitectKind::Prompts, "p1");
        archived.insert(ArchitectKind::DataTables, "d1");
        let mut section = section(&["prompts", "datatables"]);
        resolve(&mut rows, &archived).annotate(&mut section);
        assert!(section.kinds.iter().all(|k| k.note.is_none()));
    }

    #[test]
    fn a_run_holds_its_exported_objects_and_not_the_kinds_it_skipped_or_could_not_read() {
        let selection = KindSelection::parse("flows,prompts,ivrs").unwrap();
        let mut section = section(&["prompts", "ivrs"]);
        section.kinds[1].checked = false;
        let object = |id: &str, outcome| ObjectRecord {
            kind: "prompts".into(),
            id: id.into(),
            name: id.into(),
            division: None,
            outcome,
            documents: Vec::new(),
            listing_sha256: None,
            source: None,
            carried_from: None,
            error: None,
        };
        let a = Archived::of_run(
            &selection,
            Some(&section),
            &[object("p1", Outcome::Exported), object("p2", Outcome::Failed)],
        );
        assert!(a.holds("userPrompt", "p1"));
        assert!(!a.holds("userPrompt", "p2"), "a failed object is not in the archive");
        assert_eq!(a.unread.get("ivr").map(|(_, warns)| *warns), Some(true));
        assert_eq!(a.unread.get("dataTable").map(|(_, warns)| *warns), Some(false));
    }
}
