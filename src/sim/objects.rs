//! The simulated org's non-flow objects — queues, data actions, users, and the Architect objects
//! (user prompts, data tables, schedules, schedule groups, emergency groups, IVRs, flow outcomes,
//! milestones) — that configurations reference by id and name. Every kind is served at its real
//! endpoint by [`super::architect`], paged like flows and filtered by `name`. A catalogue is
//! derived from a seed, so the org a backup came from and a rebuilt org can hold the same names
//! under other ids ([`SimObjects::rebuilt`]), one object can be missing ([`SimObjects::without`]),
//! or every Architect object ([`SimObjects::non_architect`]).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::{Value, json};

use super::architect::catalogue;
use super::data::SimFlow;

/// A kind of object configurations reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// A routing queue (`que` literals).
    Queue,
    /// An integration data action (ids `custom_-_<guid>`).
    DataAction,
    /// A user prompt (`pmt` refs in expressions).
    UserPrompt,
    /// An Architect data table (`datatableId`/`datatableName`).
    DataTable,
    /// A user.
    User,
    /// A flow outcome (`outcomeId`).
    FlowOutcome,
    /// A flow milestone (`milestoneId`/`milestoneName`).
    FlowMilestone,
    /// A schedule (`sch` literals in an evaluate-schedule action).
    Schedule,
    /// A schedule group (`scg` literals in an evaluate-schedule-group action).
    ScheduleGroup,
    /// An emergency group (`emg` literals).
    EmergencyGroup,
    /// An IVR configuration (call route: numbers → flows); flows do not reference it.
    Ivr,
}

impl ObjectKind {
    /// Every kind the simulated org serves.
    pub const ALL: [ObjectKind; 11] = [
        ObjectKind::Queue,
        ObjectKind::DataAction,
        ObjectKind::UserPrompt,
        ObjectKind::DataTable,
        ObjectKind::User,
        ObjectKind::FlowOutcome,
        ObjectKind::FlowMilestone,
        ObjectKind::Schedule,
        ObjectKind::ScheduleGroup,
        ObjectKind::EmergencyGroup,
        ObjectKind::Ivr,
    ];

    /// The Architect kinds, in the order a rebuilt org needs them created.
    pub const ARCHITECT: [ObjectKind; 8] = [
        ObjectKind::Schedule,
        ObjectKind::ScheduleGroup,
        ObjectKind::UserPrompt,
        ObjectKind::DataTable,
        ObjectKind::FlowOutcome,
        ObjectKind::FlowMilestone,
        ObjectKind::EmergencyGroup,
        ObjectKind::Ivr,
    ];

    /// The key of a configuration's `manifest` that lists objects of this kind.
    pub fn manifest_key(self) -> &'static str {
        match self {
            ObjectKind::Queue => "queue",
            ObjectKind::DataAction => "dataAction",
            ObjectKind::UserPrompt => "userPrompt",
            ObjectKind::DataTable => "dataTable",
            ObjectKind::User => "user",
            ObjectKind::FlowOutcome => "flowOutcome",
            ObjectKind::FlowMilestone => "flowMilestone",
            ObjectKind::Schedule => "schedule",
            ObjectKind::ScheduleGroup => "scheduleGroup",
            ObjectKind::EmergencyGroup => "emergencyGroup",
            ObjectKind::Ivr => "ivr",
        }
    }

    /// The kind a manifest key names, if the org serves it.
    pub fn from_manifest_key(key: &str) -> Option<ObjectKind> {
        ObjectKind::ALL.into_iter().find(|k| k.manifest_key() == key)
    }

    /// The name `--kinds` and the archive use for an Architect kind (`prompts`, `datatables`…).
    pub fn architect_name(self) -> Option<&'static str> {
        Some(match self {
            ObjectKind::UserPrompt => "prompts",
            ObjectKind::DataTable => "datatables",
            ObjectKind::Schedule => "schedules",
            ObjectKind::ScheduleGroup => "schedulegroups",
            ObjectKind::EmergencyGroup => "emergencygroups",
            ObjectKind::Ivr => "ivrs",
            ObjectKind::FlowOutcome => "outcomes",
            ObjectKind::FlowMilestone => "milestones",
            ObjectKind::Queue | ObjectKind::DataAction | ObjectKind::User => return None,
        })
    }

    /// The Architect kind named `name` (`prompts`) or keyed `name` in a manifest (`userPrompt`).
    pub fn from_architect_name(name: &str) -> Option<ObjectKind> {
        ObjectKind::ARCHITECT
            .into_iter()
            .find(|k| k.architect_name() == Some(name) || k.manifest_key() == name)
    }

    /// True for the objects Architect owns (restored by flowvault), false for queues, data
    /// actions and users (found by name in a rebuilt org).
    pub fn is_architect(self) -> bool {
        self.architect_name().is_some()
    }

    /// The listing endpoint.
    pub fn path(self) -> &'static str {
        match self {
            ObjectKind::Queue => "/api/v2/routing/queues",
            ObjectKind::DataAction => "/api/v2/integrations/actions",
            ObjectKind::UserPrompt => "/api/v2/architect/prompts",
            ObjectKind::DataTable => "/api/v2/flows/datatables",
            ObjectKind::User => "/api/v2/users",
            ObjectKind::FlowOutcome => "/api/v2/flows/outcomes",
            ObjectKind::FlowMilestone => "/api/v2/flows/milestones",
            ObjectKind::Schedule => "/api/v2/architect/schedules",
            ObjectKind::ScheduleGroup => "/api/v2/architect/schedulegroups",
            ObjectKind::EmergencyGroup => "/api/v2/architect/emergencygroups",
            ObjectKind::Ivr => "/api/v2/architect/ivrs",
        }
    }

    /// The permission reading this kind takes (listing and single reads).
    pub fn view_permission(self) -> &'static str {
        match self {
            ObjectKind::Queue => "routing:queue:view",
            ObjectKind::DataAction => "integrations:action:view",
            ObjectKind::UserPrompt => "architect:userPrompt:view",
            ObjectKind::DataTable => "architect:datatable:view",
            ObjectKind::User => "directory:user:view",
            ObjectKind::FlowOutcome => "architect:flowOutcome:view",
            ObjectKind::FlowMilestone => "architect:flowMilestone:view",
            ObjectKind::Schedule => "routing:schedule:view",
            ObjectKind::ScheduleGroup => "routing:scheduleGroup:view",
            ObjectKind::EmergencyGroup => "routing:emergencyGroup:view",
            ObjectKind::Ivr => "routing:callRoute:view",
        }
    }

    /// The permission a create (`add`) or an update (`edit`) of this kind takes.
    pub fn write_permission(self, create: bool) -> String {
        let base = self.view_permission().trim_end_matches(":view");
        format!("{base}:{}", if create { "add" } else { "edit" })
    }
}

/// One object of the org.
#[derive(Debug, Clone, PartialEq)]
pub struct SimObject {
    /// Its kind.
    pub kind: ObjectKind,
    /// Its id in this org.
    pub id: String,
    /// Its name (what another org finds it by).
    pub name: String,
    /// The entity as the API serves it, without `selfUri` and the presigned media URLs (added
    /// when served, since they change).
    pub body: Value,
}

/// A prompt resource's audio.
#[derive(Debug, Clone, PartialEq)]
pub enum Audio {
    /// Deterministic WAV bytes derived from a seed (20–120 KB).
    Generated(u64),
    /// Bytes a client uploaded through the presigned upload.
    Uploaded(Bytes),
}

impl Audio {
    /// The bytes served at the resource's `mediaUri`.
    pub fn bytes(&self) -> Bytes {
        match self {
            Audio::Generated(seed) => catalogue::wav(*seed),
            Audio::Uploaded(b) => b.clone(),
        }
    }
}

/// How many objects of each Architect kind a catalogue holds beyond (or instead of) the standard
/// ones; counts below the standard catalogue's keep the standard one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchitectSizes {
    /// User prompts.
    pub prompts: usize,
    /// Languages (resources with audio) per prompt; `None`: 1–3 by prompt.
    pub languages_per_prompt: Option<usize>,
    /// Data tables.
    pub data_tables: usize,
    /// Rows over all data tables; `None`: 5–25 per table.
    pub rows: Option<usize>,
    /// Schedules.
    pub schedules: usize,
    /// Schedule groups.
    pub schedule_groups: usize,
    /// Emergency groups.
    pub emergency_groups: usize,
    /// IVR configurations.
    pub ivrs: usize,
    /// Flow outcomes.
    pub outcomes: usize,
    /// Flow milestones.
    pub milestones: usize,
}

impl ArchitectSizes {
    /// The standard org's: every kind in modest numbers.
    pub fn standard() -> Self {
        ArchitectSizes {
            prompts: 0,
            languages_per_prompt: None,
            data_tables: 0,
            rows: None,
            schedules: 0,
            schedule_groups: 0,
            emergency_groups: 0,
            ivrs: 0,
            outcomes: 0,
            milestones: 0,
        }
    }

    /// The benchmark's org: 300 prompts with 900 audio files, 50 data tables holding 20,000 rows,
    /// 40 schedules, 100 IVRs (pair it with 1,000 flows).
    pub fn bench() -> Self {
        ArchitectSizes {
            prompts: 300,
            languages_per_prompt: Some(3),
            data_tables: 50,
            rows: Some(20_000),
            schedules: 40,
            schedule_groups: 20,
            emergency_groups: 5,
            ivrs: 100,
            outcomes: 20,
            milestones: 50,
        }
    }
}

/// The non-flow objects of an org, with data tables' rows and prompts' audio.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SimObjects {
    /// Every object, by kind in catalogue order.
    pub objects: Vec<SimObject>,
    /// Each data table's rows (by table id), in key order as served.
    pub rows: BTreeMap<String, Vec<Value>>,
    /// Each prompt resource's audio, by prompt id and language.
    pub audio: BTreeMap<(String, String), Audio>,
}

/// The seed of the catalogue every generated configuration references.
const STANDARD_SEED: u64 = 0x0B1EC75;

impl SimObjects {
    /// The catalogue generated configurations reference (the same ids every time).
    pub fn standard() -> SimObjects {
        SimObjects::standard_ref().clone()
    }

    /// The standard catalogue, shared (configurations are generated against it on every read).
    pub(crate) fn standard_ref() -> &'static SimObjects {
        static STANDARD: OnceLock<SimObjects> = OnceLock::new();
        STANDARD.get_or_init(|| catalogue::build(STANDARD_SEED, &ArchitectSizes::standard()))
    }

    /// The standard catalogue grown to `sizes` (the standard objects keep their ids, so generated
    /// configurations still resolve).
    pub fn sized(sizes: &ArchitectSizes) -> SimObjects {
        catalogue::build(STANDARD_SEED, sizes)
    }

    /// The standard names under new ids, as in an org rebuilt from scratch (`salt` picks the ids).
    pub fn rebuilt(salt: u64) -> SimObjects {
        catalogue::build(rebuilt_seed(salt), &ArchitectSizes::standard())
    }

    /// An org rebuilt from scratch before any Architect object came back: only queues, data
    /// actions and users, under new ids (`salt` picks them).
    pub fn rebuilt_without_architect(salt: u64) -> SimObjects {
        SimObjects::rebuilt(salt).non_architect()
    }

    /// These objects without any Architect object (and so without rows or audio).
    pub fn non_architect(mut self) -> SimObjects {
        self.objects.retain(|o| !o.kind.is_architect());
        self.rows.clear();
        self.audio.clear();
        self
    }

    /// These objects without the one of `kind` named `name` (and its rows or audio).
    pub fn without(mut self, kind: ObjectKind, name: &str) -> SimObjects {
        let gone: Vec<String> = self
            .objects
            .iter()
            .filter(|o| o.kind == kind && o.name == name)
            .map(|o| o.id.clone())
            .collect();
        self.objects.retain(|o| !(o.kind == kind && o.name == name));
        self.rows.retain(|id, _| !gone.contains(id));
        self.audio.retain(|(id, _), _| !gone.contains(id));
        self
    }

    /// Points the IVRs and emergency groups at the org's inbound call flows (by id and name), as
    /// an org's call routes do; without inbound call flows they point at none.
    pub fn with_flows(mut self, flows: &[SimFlow]) -> SimObjects {
        let inbound: Vec<Value> = flows
            .iter()
            .filter(|f| f.flow_type() == "INBOUNDCALL")
            .map(|f| {
                json!({"id": f.id(), "name": f.meta.get("name").cloned().unwrap_or(Value::Null),
                    "selfUri": format!("/api/v2/flows/{}", f.id())})
            })
            .collect();
        catalogue::bind_flows(&mut self, &inbound);
        self
    }

    /// Objects of one kind.
    pub fn of_kind(&self, kind: ObjectKind) -> impl Iterator<Item = &SimObject> {
        self.objects.iter().filter(move |o| o.kind == kind)
    }

    /// The object of `kind` with this id, if the org holds it.
    pub fn find(&self, kind: ObjectKind, id: &str) -> Option<&SimObject> {
        self.of_kind(kind).find(|o| o.id == id)
    }

    /// The object of `kind` named `name` (exactly).
    pub fn named(&self, kind: ObjectKind, name: &str) -> Option<&SimObject> {
        self.of_kind(kind).find(|o| o.name == name)
    }

    /// The object of `kind` with this id, to change.
    pub fn find_mut(&mut self, kind: ObjectKind, id: &str) -> Option<&mut SimObject> {
        self.objects.iter_mut().find(|o| o.kind == kind && o.id == id)
    }

    /// Edits the object of `kind` named `name` as a user in Architect would: `change` gets its
    /// body; a versioned kind's `version` moves on. True if it existed.
    pub fn edit(&mut self, kind: ObjectKind, name: &str, change: impl FnOnce(&mut Value)) -> bool {
        let Some(o) = self.objects.iter_mut().find(|o| o.kind == kind && o.name == name) else {
            return false;
        };
        change(&mut o.body);
        if let Some(v) = o.body.get("version").and_then(Value::as_u64) {
            o.body["version"] = (v + 1).into();
        }
        if let Some(n) = o.body.get("name").and_then(Value::as_str) {
            o.name = n.to_string();
        }
        true
    }

    /// Adds (or replaces, by key) a row of the data table named `table`; true if the table exists.
    pub fn put_row(&mut self, table: &str, row: Value) -> bool {
        let Some(id) = self.named(ObjectKind::DataTable, table).map(|t| t.id.clone()) else {
            return false;
        };
        let rows = self.rows.entry(id).or_default();
        let key = row["key"].as_str().unwrap_or_default().to_string();
        match rows.iter().position(|r| r["key"] == key.as_str()) {
            Some(i) => rows[i] = row,
            None => {
                let i = rows.partition_point(|r| r["key"].as_str().unwrap_or_default() < key.as_str());
                rows.insert(i, row);
            }
        }
        true
    }

    /// Re-records prompt `name`'s `language` resource with other audio (from `seed`): the bytes and
    /// `durationSeconds` change. True if the resource exists.
    pub fn rerecord(&mut self, name: &str, language: &str, seed: u64) -> bool {
        let Some(p) = self
            .objects
            .iter_mut()
            .find(|o| o.kind == ObjectKind::UserPrompt && o.name == name)
        else {
            return false;
        };
        let Some(r) = p.body["resources"]
            .as_array_mut()
            .and_then(|rs| rs.iter_mut().find(|r| r["language"] == language))
        else {
            return false;
        };
        let audio = Audio::Generated(seed);
        r["durationSeconds"] = catalogue::wav_seconds(seed).into();
        r["uploadStatus"] = "transcoded".into();
        let id = p.id.clone();
        self.audio.insert((id, language.to_string()), audio);
        true
    }

    /// Removes the object of `kind` named `name` with its rows and audio; true if it existed.
    pub fn remove_named(&mut self, kind: ObjectKind, name: &str) -> bool {
        let before = self.objects.len();
        *self = std::mem::take(self).without(kind, name);
        self.objects.len() != before
    }
}

fn rebuilt_seed(salt: u64) -> u64 {
    STANDARD_SEED ^ salt.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// True when `name` matches the `name` filter: exact (case-insensitive), or with a leading or
/// trailing `*` as a wildcard, as the routing and prompt listings accept.
pub(super) fn name_matches(filter: &str, name: &str) -> bool {
    let (f, n) = (filter.to_lowercase(), name.to_lowercase());
    match (f.strip_prefix('*'), f.strip_suffix('*')) {
        (Some(rest), _) if rest.ends_with('*') => n.contains(rest.trim_end_matches('*')),
        (Some(rest), _) => n.ends_with(rest),
        (None, Some(rest)) => n.starts_with(rest),
        (None, None) => f == n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebuilt_org_holds_the_same_names_under_other_ids() {
        let (a, b) = (SimObjects::standard(), SimObjects::rebuilt(1));
        assert_eq!(a.objects.len(), b.objects.len());
        for (x, y) in a.objects.iter().zip(&b.objects) {
            assert_eq!((x.kind, &x.name), (y.kind, &y.name));
            assert_ne!(x.id, y.id);
        }
    }

    #[test]
    fn the_standard_org_holds_every_kind() {
        let objects = SimObjects::standard();
        for kind in ObjectKind::ALL {
            assert!(objects.of_kind(kind).count() >= 2, "{kind:?}");
        }
        assert!(!objects.rows.is_empty() && !objects.audio.is_empty());
    }

    #[test]
    fn an_org_without_architect_objects_keeps_queues_under_new_ids() {
        let org = SimObjects::rebuilt_without_architect(4);
        assert!(org.objects.iter().all(|o| !o.kind.is_architect()));
        let queue = org.of_kind(ObjectKind::Queue).next().unwrap();
        assert_ne!(
            Some(&queue.id),
            SimObjects::standard()
                .named(ObjectKind::Queue, &queue.name)
                .map(|q| &q.id)
        );
    }

    #[test]
    fn the_bench_catalogue_has_the_stated_sizes() {
        let org = SimObjects::sized(&ArchitectSizes::bench());
        assert_eq!(org.of_kind(ObjectKind::UserPrompt).count(), 300);
        assert_eq!(org.audio.len(), 900);
        assert_eq!(org.of_kind(ObjectKind::DataTable).count(), 50);
        assert_eq!(org.rows.values().map(Vec::len).sum::<usize>(), 20_000);
        assert_eq!(org.of_kind(ObjectKind::Schedule).count(), 40);
        assert_eq!(org.of_kind(ObjectKind::Ivr).count(), 100);
        let standard = SimObjects::standard();
        for o in standard.of_kind(ObjectKind::UserPrompt) {
            assert_eq!(org.named(ObjectKind::UserPrompt, &o.name).map(|p| &p.id), Some(&o.id));
        }
    }

    #[test]
    fn edits_move_a_versioned_objects_version_and_rerecording_changes_the_audio() {
        let mut org = SimObjects::standard();
        assert!(org.edit(ObjectKind::Schedule, "Saturday 9-13", |b| b["rrule"] =
            "FREQ=DAILY".into()));
        assert_eq!(
            org.named(ObjectKind::Schedule, "Saturday 9-13").unwrap().body["version"],
            2
        );
        let welcome = org.named(ObjectKind::UserPrompt, "Welcome").unwrap().id.clone();
        let key = (welcome, "en-us".to_string());
        let before = org.audio[&key].bytes();
        assert!(org.rerecord("Welcome", "en-us", 77));
        assert_ne!(org.audio[&key].bytes(), before);
        assert!(org.put_row("VIP Numbers", json!({"key": "+1555", "tier": 1})));
        let table = &org.named(ObjectKind::DataTable, "VIP Numbers").unwrap().id;
        assert!(org.rows[table].iter().any(|r| r["key"] == "+1555"));
    }

    #[test]
    fn name_filters_take_wildcards() {
        assert!(name_matches("sales", "Sales"));
        assert!(name_matches("sal*", "Sales"));
        assert!(name_matches("*les", "Sales"));
        assert!(name_matches("*al*", "Sales"));
        assert!(!name_matches("sale", "Sales"));
    }
}
