//! The simulated org's publish check: a flow publishes only when every object its configuration
//! references — in the `manifest` and inside actions — exists in this org under that id, and every
//! flow it calls exists and is published. Flows that call each other (a cycle) publish when the
//! called flow's saved configuration leads back to the one being published, as Architect resolves
//! them together. Every Architect kind counts: prompts, data tables, schedules, schedule groups,
//! emergency groups, outcomes, milestones. Otherwise the operation fails with `…CANNOT_PUBLISH_MISSING_DEPENDENCIES`.

use std::collections::HashSet;

use serde_json::Value;

use super::SimState;
use super::objects::ObjectKind;

/// The error code of a publish that references what the org does not hold.
pub const MISSING_DEPENDENCIES: &str = "ARCHITECT_CANNOT_PUBLISH_MISSING_DEPENDENCIES";

/// One reference a configuration makes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Reference {
    Object(ObjectKind, String),
    Flow(String),
}

/// True when a manifest key lists flows (`botFlow`, `commonModuleFlow`, `workflow`, …).
fn is_flow_key(key: &str) -> bool {
    key.ends_with("Flow") || key == "workflow"
}

/// The kind a literal's or ref's `type` names.
fn kind_of_literal(t: &str) -> Option<ObjectKind> {
    match t {
        "que" => Some(ObjectKind::Queue),
        "pmt" => Some(ObjectKind::UserPrompt),
        "dact" => Some(ObjectKind::DataAction),
        "usr" => Some(ObjectKind::User),
        "sch" => Some(ObjectKind::Schedule),
        "scg" => Some(ObjectKind::ScheduleGroup),
        "emg" => Some(ObjectKind::EmergencyGroup),
        _ => None,
    }
}

/// Every reference in a configuration: its manifest entries and its in-action references.
fn references(config: &Value) -> HashSet<Reference> {
    let mut out = HashSet::new();
    if let Some(manifest) = config.get("manifest").and_then(Value::as_object) {
        for (key, entries) in manifest {
            for id in entries
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.get("id")?.as_str())
            {
                if is_flow_key(key) {
                    out.insert(Reference::Flow(id.to_string()));
                } else if let Some(kind) = ObjectKind::from_manifest_key(key) {
                    out.insert(Reference::Object(kind, id.to_string()));
                }
            }
        }
    }
    walk_actions(config.get("flowSequenceItemList").unwrap_or(&Value::Null), &mut out);
    out
}

fn walk_actions(v: &Value, out: &mut HashSet<Reference>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| walk_actions(i, out)),
        Value::Object(map) => {
            for (k, child) in map {
                let id = child.as_str().map(str::to_string);
                match (k.as_str(), id) {
                    ("flowId", Some(id)) => {
                        out.insert(Reference::Flow(id));
                    }
                    ("datatableId", Some(id)) => {
                        out.insert(Reference::Object(ObjectKind::DataTable, id));
                    }
                    ("milestoneId", Some(id)) => {
                        out.insert(Reference::Object(ObjectKind::FlowMilestone, id));
                    }
                    ("outcomeId", Some(id)) => {
                        out.insert(Reference::Object(ObjectKind::FlowOutcome, id));
                    }
                    ("lit" | "ref", None) => {
                        let t = child.get("type").and_then(Value::as_str).and_then(kind_of_literal);
                        if let (Some(kind), Some(id)) = (t, child.get("val").and_then(Value::as_str)) {
                            out.insert(Reference::Object(kind, id.to_string()));
                        }
                    }
                    _ => walk_actions(child, out),
                }
            }
        }
        _ => {}
    }
}

/// The flows a flow's saved configuration calls.
fn called_flows(s: &SimState, id: &str) -> Vec<String> {
    let config = s.org().find(id).map(|f| f.configuration_json()).unwrap_or_default();
    let parsed: Value = serde_json::from_str(&config).unwrap_or(Value::Null);
    references(&parsed)
        .into_iter()
        .filter_map(|r| match r {
            Reference::Flow(id) => Some(id),
            Reference::Object(..) => None,
        })
        .collect()
}

/// True when `from`'s saved configuration leads back to `to` through called flows.
fn leads_back(s: &SimState, from: &str, to: &str) -> bool {
    let (mut seen, mut queue) = (HashSet::new(), vec![from.to_string()]);
    while let Some(id) = queue.pop() {
        if id == to {
            return true;
        }
        if seen.insert(id.clone()) {
            queue.extend(called_flows(s, &id));
        }
    }
    false
}

/// Why publishing flow `id` fails, as the operation's error code; `None` when it may publish.
pub(super) fn publish_problem(s: &SimState, id: &str) -> Option<String> {
    let config = s.org().find(id).map(|f| f.configuration_json())?;
    let parsed: Value = serde_json::from_str(&config).unwrap_or(Value::Null);
    let mut missing = Vec::new();
    for r in references(&parsed) {
        let ok = match &r {
            Reference::Object(kind, oid) => s.objects().find(*kind, oid).is_some(),
            Reference::Flow(fid) => {
                let published = s.org().find(fid).map(|f| f.published_version().is_some());
                match published {
                    Some(true) => true,
                    Some(false) => leads_back(s, fid, id),
                    None => false,
                }
            }
        };
        if !ok {
            missing.push(format!("{r:?}"));
        }
    }
    if missing.is_empty() {
        return None;
    }
    tracing::info!(
        flow_id = id,
        "the simulated org refuses to publish: missing {}",
        missing.join(", ")
    );
    Some(MISSING_DEPENDENCIES.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_are_read_from_the_manifest_and_from_actions() {
        let config = json!({
            "manifest": {"queue": [{"id": "q1", "name": "Sales"}], "commonModuleFlow": [{"id": "f1", "name": "M"}]},
            "flowSequenceItemList": [{"actionList": [
                {"queue": {"config": {"lit": {"text": "Sales", "type": "que", "val": "q2"}}}},
                {"audio": {"config": {"refs": [{"ref": {"text": "W", "type": "pmt", "val": "p1"}}]}}},
                {"datatableId": "t1", "datatableName": "T"},
                {"flowId": "f2", "flowName": "Other"},
                {"milestoneId": "m1", "outcomeId": "o1"},
                {"scheduleGroup": {"config": {"lit": {"text": "Hours", "type": "scg", "val": "g1"}}},
                 "emergencyGroup": {"config": {"lit": {"text": "Storm", "type": "emg", "val": "e1"}}}},
                {"schedule": {"config": {"lit": {"text": "Weekdays", "type": "sch", "val": "s1"}}}}
            ]}]
        });
        let refs = references(&config);
        for r in [
            Reference::Object(ObjectKind::Queue, "q1".into()),
            Reference::Object(ObjectKind::Queue, "q2".into()),
            Reference::Object(ObjectKind::UserPrompt, "p1".into()),
            Reference::Object(ObjectKind::DataTable, "t1".into()),
            Reference::Object(ObjectKind::FlowMilestone, "m1".into()),
            Reference::Object(ObjectKind::FlowOutcome, "o1".into()),
            Reference::Object(ObjectKind::ScheduleGroup, "g1".into()),
            Reference::Object(ObjectKind::EmergencyGroup, "e1".into()),
            Reference::Object(ObjectKind::Schedule, "s1".into()),
            Reference::Flow("f1".into()),
            Reference::Flow("f2".into()),
        ] {
            assert!(refs.contains(&r), "{r:?} in {refs:?}");
        }
    }
}
