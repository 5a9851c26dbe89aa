//! What the restore needs to know per Architect kind: the fields it writes and compares, and
//! where an object references another (by `{id, name}`).

use serde_json::{Map, Value};

pub use crate::architect::ArchitectKind;

/// What a reference points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// An Architect object of this kind.
    Object(ArchitectKind),
    /// A flow (IVRs and emergency groups point at inbound call flows).
    Flow,
}

/// One reference an object holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// What it points at.
    pub target: Target,
    /// The id it names.
    pub id: String,
    /// The name it names.
    pub name: String,
}

/// The fields a restore writes (and compares) for `kind`, besides references.
pub fn fields(kind: ArchitectKind) -> &'static [&'static str] {
    match kind {
        ArchitectKind::Schedules => &["name", "description", "start", "end", "rrule"],
        ArchitectKind::ScheduleGroups => &[
            "name",
            "description",
            "timeZone",
            "openSchedules",
            "closedSchedules",
            "holidaySchedules",
        ],
        ArchitectKind::Prompts | ArchitectKind::Outcomes | ArchitectKind::Milestones => &["name", "description"],
        ArchitectKind::DataTables => &["name", "description", "schema"],
        ArchitectKind::EmergencyGroups => &["name", "description", "enabled", "emergencyCallFlows"],
        ArchitectKind::Ivrs => &[
            "name",
            "description",
            "dnis",
            "openHoursFlow",
            "closedHoursFlow",
            "holidayHoursFlow",
            "scheduleGroup",
        ],
    }
}

/// Whether updates of `kind` carry the object's current `version` (optimistic locking).
pub fn versioned(kind: ArchitectKind) -> bool {
    matches!(
        kind,
        ArchitectKind::Schedules | ArchitectKind::ScheduleGroups | ArchitectKind::EmergencyGroups | ArchitectKind::Ivrs
    )
}

/// The reference fields of `kind`: field, whether it is a list, what it points at.
fn ref_fields(kind: ArchitectKind) -> &'static [(&'static str, bool, Target)] {
    const SCHEDULE: Target = Target::Object(ArchitectKind::Schedules);
    match kind {
        ArchitectKind::ScheduleGroups => &[
            ("openSchedules", true, SCHEDULE),
            ("closedSchedules", true, SCHEDULE),
            ("holidaySchedules", true, SCHEDULE),
        ],
        ArchitectKind::Ivrs => &[
            ("openHoursFlow", false, Target::Flow),
            ("closedHoursFlow", false, Target::Flow),
            ("holidayHoursFlow", false, Target::Flow),
            ("scheduleGroup", false, Target::Object(ArchitectKind::ScheduleGroups)),
        ],
        _ => &[],
    }
}

/// Calls `visit` on every reference object (`{id, name, …}`) inside `object`.
fn each_ref(kind: ArchitectKind, object: &mut Value, visit: &mut dyn FnMut(Target, &mut Value)) {
    let Some(m) = object.as_object_mut() else {
        return;
    };
    for (field, list, target) in ref_fields(kind) {
        match (m.get_mut(*field), list) {
            (Some(Value::Array(items)), true) => items.iter_mut().for_each(|i| visit(*target, i)),
            (Some(v @ Value::Object(_)), false) => visit(*target, v),
            _ => {}
        }
    }
    if kind == ArchitectKind::EmergencyGroups
        && let Some(Value::Array(entries)) = m.get_mut("emergencyCallFlows")
    {
        for e in entries.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(flow @ Value::Object(_)) = e.get_mut("emergencyFlow") {
                visit(Target::Flow, flow);
            }
            if let Some(Value::Array(ivrs)) = e.get_mut("ivrs") {
                ivrs.iter_mut()
                    .for_each(|i| visit(Target::Object(ArchitectKind::Ivrs), i));
            }
        }
    }
}

/// Every reference `object` holds.
pub fn refs(kind: ArchitectKind, object: &Value) -> Vec<ObjectRef> {
    let mut out = Vec::new();
    let mut copy = object.clone();
    each_ref(kind, &mut copy, &mut |target, r| {
        if let Some(id) = r.get("id").and_then(Value::as_str) {
            out.push(ObjectRef {
                target,
                id: id.to_string(),
                name: r.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
            });
        }
    });
    out
}

/// The body a restore writes for `object`: its restorable fields, each reference reduced to
/// `{id, name}` re-pointed through `map` (a reference `map` cannot resolve is kept as it is).
pub fn body(kind: ArchitectKind, object: &Value, map: &dyn Fn(Target, &str) -> Option<String>) -> Value {
    let mut out = Map::new();
    for f in fields(kind) {
        if let Some(v) = object.get(*f).filter(|v| !v.is_null()) {
            out.insert((*f).to_string(), v.clone());
        }
    }
    let mut out = Value::Object(out);
    each_ref(kind, &mut out, &mut |target, r| {
        let id = r.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        let to = map(target, &id).unwrap_or(id);
        *r = match r.get("name").filter(|n| n.is_string()) {
            Some(name) => serde_json::json!({ "id": to, "name": name }),
            None => serde_json::json!({ "id": to }),
        };
    });
    out
}

/// Keeps what the org holds that a write must not take away: a data table's fields the archive
/// does not have (fields can be added to a table, never removed).
pub fn keep_org_fields(kind: ArchitectKind, body: &mut Value, org: &Value) {
    if kind != ArchitectKind::DataTables {
        return;
    }
    let Some(theirs) = org.pointer("/schema/properties").and_then(Value::as_object) else {
        return;
    };
    if let Some(Value::Object(mine)) = body.pointer_mut("/schema/properties") {
        for (k, v) in theirs {
            if !mine.contains_key(k) {
                mine.insert(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_ivr_body_points_its_flows_and_schedule_group_at_the_mapped_ids() {
        let ivr = json!({"id": "i1", "name": "Main", "dnis": ["+13175550100"], "version": 3,
            "openHoursFlow": {"id": "f-old", "name": "Main Flow", "selfUri": "/x"},
            "scheduleGroup": {"id": "g-old", "name": "Hours"}});
        let b = body(ArchitectKind::Ivrs, &ivr, &|t, id| match (t, id) {
            (Target::Flow, "f-old") => Some("f-new".into()),
            (Target::Object(ArchitectKind::ScheduleGroups), "g-old") => Some("g-new".into()),
            _ => None,
        });
        assert_eq!(
            b,
            json!({"name": "Main", "dnis": ["+13175550100"], "openHoursFlow": {"id": "f-new", "name": "Main Flow"}, "scheduleGroup": {"id": "g-new", "name": "Hours"}})
        );
    }

    #[test]
    fn an_emergency_group_references_its_flows_and_ivrs() {
        let g = json!({"name": "Storm", "emergencyCallFlows": [{"emergencyFlow": {"id": "f1", "name": "Closed"}, "ivrs": [{"id": "i1", "name": "Main"}]}]});
        let r = refs(ArchitectKind::EmergencyGroups, &g);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].target, r[0].id.as_str()), (Target::Flow, "f1"));
        assert_eq!(r[1].target, Target::Object(ArchitectKind::Ivrs));
    }

    #[test]
    fn a_table_update_keeps_the_fields_only_the_org_has() {
        let mut body = json!({"schema": {"properties": {"key": {"type": "string"}, "a": {"type": "string"}}}});
        let org = json!({"schema": {"properties": {"key": {"type": "string"}, "b": {"type": "integer"}}}});
        keep_org_fields(ArchitectKind::DataTables, &mut body, &org);
        let props = body["schema"]["properties"].as_object().unwrap();
        assert_eq!(props.keys().collect::<Vec<_>>(), vec!["key", "a", "b"]);
    }

    #[test]
    fn a_schedule_group_references_schedules() {
        let g = json!({"name": "Hours", "openSchedules": [{"id": "s1", "name": "Weekdays"}], "closedSchedules": [], "holidaySchedules": [{"id": "s2", "name": "Xmas"}]});
        let ids: Vec<String> = refs(ArchitectKind::ScheduleGroups, &g)
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, vec!["s1", "s2"]);
    }
}
