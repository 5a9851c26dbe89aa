//! The Architect objects flows stand on (prompts, data tables, schedules, …): their kinds, the
//! names `--kinds` takes, where the API lists them and which permission reads them. One home for
//! these facts, shared by export, restore, plan and the simulated org's tests.

use std::collections::BTreeSet;
use std::fmt;

/// A kind of Architect object besides flows, in restore (dependency) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ArchitectKind {
    /// User prompts with their per-language audio.
    Prompts,
    /// Data tables (schema) with their rows.
    DataTables,
    /// Schedules.
    Schedules,
    /// Schedule groups (refer to schedules).
    ScheduleGroups,
    /// Emergency groups (refer to flows and IVRs).
    EmergencyGroups,
    /// IVR configurations (call routes: numbers → flows).
    Ivrs,
    /// Flow outcomes.
    Outcomes,
    /// Flow milestones.
    Milestones,
}

/// A `--kinds` value that is not a kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind `{0}` in --kinds; use a comma list of {list} (or `all`)", list = KIND_NAMES)]
pub struct UnknownKind(pub String);

const KIND_NAMES: &str =
    "flows, prompts, datatables, schedules, schedulegroups, emergencygroups, ivrs, outcomes, milestones";

impl ArchitectKind {
    /// Every kind, in restore order (what a kind refers to comes before it).
    pub const ALL: [ArchitectKind; 8] = [
        ArchitectKind::Schedules,
        ArchitectKind::ScheduleGroups,
        ArchitectKind::Prompts,
        ArchitectKind::DataTables,
        ArchitectKind::Outcomes,
        ArchitectKind::Milestones,
        ArchitectKind::EmergencyGroups,
        ArchitectKind::Ivrs,
    ];

    /// The name `--kinds`, the manifest and archive paths use.
    pub fn as_str(self) -> &'static str {
        match self {
            ArchitectKind::Prompts => "prompts",
            ArchitectKind::DataTables => "datatables",
            ArchitectKind::Schedules => "schedules",
            ArchitectKind::ScheduleGroups => "schedulegroups",
            ArchitectKind::EmergencyGroups => "emergencygroups",
            ArchitectKind::Ivrs => "ivrs",
            ArchitectKind::Outcomes => "outcomes",
            ArchitectKind::Milestones => "milestones",
        }
    }

    /// The kind named `name` (as [`ArchitectKind::as_str`] writes it).
    pub fn from_name(name: &str) -> Option<ArchitectKind> {
        ArchitectKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The API path of the kind's collection.
    pub fn path(self) -> &'static str {
        match self {
            ArchitectKind::Prompts => "/api/v2/architect/prompts",
            ArchitectKind::DataTables => "/api/v2/flows/datatables",
            ArchitectKind::Schedules => "/api/v2/architect/schedules",
            ArchitectKind::ScheduleGroups => "/api/v2/architect/schedulegroups",
            ArchitectKind::EmergencyGroups => "/api/v2/architect/emergencygroups",
            ArchitectKind::Ivrs => "/api/v2/architect/ivrs",
            ArchitectKind::Outcomes => "/api/v2/flows/outcomes",
            ArchitectKind::Milestones => "/api/v2/flows/milestones",
        }
    }

    /// The permission that reads the kind.
    pub fn view_permission(self) -> &'static str {
        match self {
            ArchitectKind::Prompts => "architect:userPrompt:view",
            ArchitectKind::DataTables => "architect:datatable:view",
            ArchitectKind::Schedules => "routing:schedule:view",
            ArchitectKind::ScheduleGroups => "routing:scheduleGroup:view",
            ArchitectKind::EmergencyGroups => "routing:emergencyGroup:view",
            ArchitectKind::Ivrs => "routing:callRoute:view",
            ArchitectKind::Outcomes => "architect:flowOutcome:view",
            ArchitectKind::Milestones => "architect:flowMilestone:view",
        }
    }

    /// The permission that reads a data table's rows.
    pub const ROWS_PERMISSION: &'static str = "architect:datatableRow:view";

    /// The key a flow configuration's `manifest` lists objects of this kind under.
    pub fn manifest_key(self) -> &'static str {
        match self {
            ArchitectKind::Prompts => "userPrompt",
            ArchitectKind::DataTables => "dataTable",
            ArchitectKind::Schedules => "schedule",
            ArchitectKind::ScheduleGroups => "scheduleGroup",
            ArchitectKind::EmergencyGroups => "emergencyGroup",
            ArchitectKind::Ivrs => "ivr",
            ArchitectKind::Outcomes => "flowOutcome",
            ArchitectKind::Milestones => "flowMilestone",
        }
    }

    /// The kind a configuration's `manifest` key names, if it is an Architect kind.
    pub fn from_manifest_key(key: &str) -> Option<ArchitectKind> {
        ArchitectKind::ALL.into_iter().find(|k| k.manifest_key() == key)
    }
}

impl fmt::Display for ArchitectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `--kinds` selects: flows or not, which Architect kinds, and whether the user named them
/// (a kind named explicitly that the role cannot read makes the run incomplete; by default it
/// is a warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindSelection {
    /// Flows are part of the run.
    pub flows: bool,
    /// The Architect kinds selected.
    pub kinds: BTreeSet<ArchitectKind>,
    /// True when `--kinds` was given (not the default).
    pub explicit: bool,
}

impl Default for KindSelection {
    fn default() -> Self {
        KindSelection::all()
    }
}

impl KindSelection {
    /// Flows and every Architect kind, not named explicitly (the default).
    pub fn all() -> KindSelection {
        KindSelection {
            flows: true,
            kinds: ArchitectKind::ALL.into_iter().collect(),
            explicit: false,
        }
    }

    /// Flows only: today's run, no Architect requests.
    pub fn flows_only() -> KindSelection {
        KindSelection {
            flows: true,
            kinds: BTreeSet::new(),
            explicit: true,
        }
    }

    /// Parses a comma list such as `ivrs,flows` (or `all`); the result is explicit.
    pub fn parse(text: &str) -> Result<KindSelection, UnknownKind> {
        let mut selection = KindSelection {
            flows: false,
            kinds: BTreeSet::new(),
            explicit: true,
        };
        let mut any = false;
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            any = true;
            match name.to_ascii_lowercase().as_str() {
                "all" => {
                    selection.flows = true;
                    selection.kinds.extend(ArchitectKind::ALL);
                }
                "flows" => selection.flows = true,
                other => {
                    let kind = ArchitectKind::from_name(other).ok_or_else(|| UnknownKind(name.to_string()))?;
                    selection.kinds.insert(kind);
                }
            }
        }
        if !any {
            return Err(UnknownKind(text.to_string()));
        }
        Ok(selection)
    }

    /// True when `kind` is selected.
    pub fn has(&self, kind: ArchitectKind) -> bool {
        self.kinds.contains(&kind)
    }

    /// The selected Architect kinds in restore order.
    pub fn ordered(&self) -> Vec<ArchitectKind> {
        ArchitectKind::ALL.into_iter().filter(|k| self.has(*k)).collect()
    }

    /// True when the user named `kind` (a kind the role cannot read then fails the run).
    pub fn named(&self, kind: ArchitectKind) -> bool {
        self.explicit && self.has(kind)
    }

    /// The selection as a comma list, flows first (for logs and the manifest).
    pub fn describe(&self) -> String {
        let mut names: Vec<&str> = Vec::new();
        if self.flows {
            names.push("flows");
        }
        names.extend(self.ordered().into_iter().map(ArchitectKind::as_str));
        names.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comma_list_selects_flows_and_the_named_kinds_explicitly() {
        let s = KindSelection::parse("ivrs, flows").unwrap();
        assert!(s.flows && s.explicit);
        assert_eq!(s.ordered(), vec![ArchitectKind::Ivrs]);
        assert!(s.named(ArchitectKind::Ivrs) && !s.named(ArchitectKind::Prompts));
        assert_eq!(s.describe(), "flows,ivrs");
    }

    #[test]
    fn all_selects_every_kind_and_the_default_names_none() {
        let s = KindSelection::parse("all").unwrap();
        assert_eq!(s.kinds.len(), 8);
        assert!(s.flows);
        let d = KindSelection::default();
        assert_eq!(d.kinds, s.kinds);
        assert!(!d.named(ArchitectKind::Ivrs));
    }

    #[test]
    fn flows_alone_selects_no_architect_kind() {
        let s = KindSelection::parse("flows").unwrap();
        assert!(s.flows && s.kinds.is_empty());
    }

    #[test]
    fn an_unknown_kind_is_refused_by_name_with_the_list() {
        let e = KindSelection::parse("flows,queues").unwrap_err();
        assert_eq!(e.0, "queues");
        assert!(e.to_string().contains("schedulegroups"), "{e}");
        assert!(KindSelection::parse(" , ").is_err());
    }

    #[test]
    fn names_paths_and_manifest_keys_round_trip() {
        for k in ArchitectKind::ALL {
            assert_eq!(ArchitectKind::from_name(k.as_str()), Some(k));
            assert_eq!(ArchitectKind::from_manifest_key(k.manifest_key()), Some(k));
            assert!(k.path().starts_with("/api/v2/"));
        }
        assert_eq!(ArchitectKind::Ivrs.view_permission(), "routing:callRoute:view");
    }
}
