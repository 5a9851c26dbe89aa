//! Generated configurations shaped like Architect's: no top-level `id`; the real top-level keys
//! (`manifest`, `variables`, `flowSequenceItemList`, `uiMetaData`, `flowMetaData`, per-type
//! settings…); references to the org's objects by id *and* name, both in the `manifest` and inside
//! actions in the real forms — queue literals, prompt refs in expressions, `datatableId` +
//! `datatableName`, `flowId` + `flowName`, `milestoneId` + `milestoneName` + `outcomeId`.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use super::data::{FlowRef, uuid_from};
use super::objects::{ObjectKind, SimObject, SimObjects};

/// The manifest key a call to a flow of `flow_type` is listed under.
pub fn flow_manifest_key(flow_type: &str) -> String {
    match flow_type {
        "BOT" | "DIGITALBOT" => "botFlow".into(),
        "WORKFLOW" => "workflow".into(),
        other => {
            let mut out = String::new();
            for (i, word) in split_type(other).into_iter().enumerate() {
                let mut c = word.chars();
                if let Some(first) = c.next() {
                    let first = if i == 0 {
                        first.to_ascii_lowercase()
                    } else {
                        first.to_ascii_uppercase()
                    };
                    out.push(first);
                    out.extend(c.map(|c| c.to_ascii_lowercase()));
                }
            }
            out + "Flow"
        }
    }
}

/// `INBOUNDCALL` → `["inbound", "call"]`, by the words Architect's type names are made of.
fn split_type(flow_type: &str) -> Vec<String> {
    const WORDS: [&str; 17] = [
        "INBOUND", "OUTBOUND", "INQUEUE", "COMMON", "MODULE", "SECURE", "SHORT", "MESSAGE", "CALL", "CHAT", "EMAIL",
        "SURVEY", "INVITE", "VOICE", "WORK", "ITEM", "SEND",
    ];
    let mut rest = flow_type;
    let mut out = Vec::new();
    while !rest.is_empty() {
        match WORDS.iter().find(|w| rest.starts_with(**w)) {
            Some(w) => {
                out.push(w.to_string());
                rest = &rest[w.len()..];
            }
            None => {
                out.push(rest.to_string());
                break;
            }
        }
    }
    out
}

/// What one configuration references, and the actions that do.
struct Referencing {
    manifest: Map<String, Value>,
    actions: Vec<Value>,
}

impl Referencing {
    /// Records that `action` uses `(key, id, name)` in the manifest, with its context.
    fn uses(&mut self, key: &str, id: &str, name: &str, action: &Value, extra: Option<(&str, Value)>) {
        let context = json!({"actionName": action["__type"], "id": action["id"], "name": action["name"]});
        let list = self.manifest.entry(key.to_string()).or_insert_with(|| json!([]));
        if let Some(entries) = list.as_array_mut() {
            match entries.iter_mut().find(|e| e["id"] == id) {
                Some(e) => {
                    if let Some(c) = e["context"].as_array_mut() {
                        c.push(context);
                    }
                }
                None => {
                    let mut entry = json!({"id": id, "name": name, "context": [context]});
                    if let Some((k, v)) = extra {
                        entry[k] = v;
                    }
                    entries.push(entry);
                }
            }
        }
    }

    fn push(&mut self, action: Value) {
        self.actions.push(action);
    }
}

fn lit(kind: &str, o: &SimObject) -> Value {
    json!({"config": {"lit": {"text": o.name, "type": kind, "val": o.id}}})
}

fn action(rng: &mut StdRng, kind: &str, name: String, tracking: &mut u32) -> Value {
    *tracking += 1;
    json!({"__type": kind, "id": uuid_from(rng), "name": name, "trackingId": *tracking})
}

fn pick<'a>(rng: &mut StdRng, objects: &'a SimObjects, kind: ObjectKind, lo: usize, hi: usize) -> Vec<&'a SimObject> {
    let all: Vec<&SimObject> = objects.of_kind(kind).collect();
    let n = rng.random_range(lo..=hi).min(all.len());
    all.choose_multiple(rng, n).copied().collect()
}

/// The actions that reference the org's objects and the called flows, and the manifest they make.
fn referencing_actions(rng: &mut StdRng, calls: &[FlowRef], tracking: &mut u32) -> Referencing {
    let objects = SimObjects::standard_ref();
    let mut r = Referencing {
        manifest: Map::new(),
        actions: Vec::new(),
    };
    for p in pick(rng, objects, ObjectKind::UserPrompt, 1, 3) {
        let mut a = action(rng, "PlayAudioAction", format!("Play {}", p.name), tracking);
        a["audio"] = json!({"config": {"exp": format!("ToAudio(Prompt.{})", p.name),
            "refs": [{"ref": {"text": p.name, "type": "pmt", "val": p.id}}]}});
        r.uses("userPrompt", &p.id, &p.name, &a, None);
        r.push(a);
    }
    for d in pick(rng, objects, ObjectKind::DataAction, 0, 2) {
        let mut a = action(rng, "CallDataAction", d.name.clone(), tracking);
        a["dataAction"] = lit("dact", d);
        a["inputs"] = json!({"phoneNumber": {"config": {"exp": "Call.Ani"}}});
        r.uses("dataAction", &d.id, &d.name, &a, None);
        r.push(a);
    }
    for t in pick(rng, objects, ObjectKind::DataTable, 0, 1) {
        let mut a = action(rng, "DataTableLookupAction", format!("Look up {}", t.name), tracking);
        a["datatableId"] = t.id.clone().into();
        a["datatableName"] = t.name.clone().into();
        a["lookupValue"] = json!({"config": {"exp": "Call.Ani"}});
        r.uses("dataTable", &t.id, &t.name, &a, None);
        r.push(a);
    }
    for u in pick(rng, objects, ObjectKind::User, 0, 1) {
        let mut a = action(rng, "TransferToUserAction", format!("Transfer to {}", u.name), tracking);
        a["user"] = lit("usr", u);
        r.uses("user", &u.id, &u.name, &a, None);
        r.push(a);
    }
    let milestones = pick(rng, objects, ObjectKind::FlowMilestone, 0, 1);
    let outcomes = pick(rng, objects, ObjectKind::FlowOutcome, 1, 1);
    if let (Some(m), Some(o)) = (milestones.first(), outcomes.first()) {
        let mut a = action(rng, "AddFlowMilestoneAction", format!("Milestone {}", m.name), tracking);
        a["milestoneId"] = m.id.clone().into();
        a["milestoneName"] = m.name.clone().into();
        a["outcomeId"] = o.id.clone().into();
        r.uses("flowMilestone", &m.id, &m.name, &a, None);
        r.uses("flowOutcome", &o.id, &o.name, &a, None);
        r.push(a);
    }
    for f in calls {
        let kind = if f.flow_type == "COMMONMODULE" {
            "CallCommonModuleAction"
        } else {
            "TransferToFlowAction"
        };
        let mut a = action(rng, kind, format!("Call {}", f.name), tracking);
        a["flowId"] = f.id.clone().into();
        a["flowName"] = f.name.clone().into();
        a["flowLatestVersion"] = false.into();
        let key = flow_manifest_key(&f.flow_type);
        let version = (key == "botFlow").then(|| ("version", json!("published")));
        r.uses(&key, &f.id, &f.name, &a, version);
        r.push(a);
    }
    for q in pick(rng, objects, ObjectKind::Queue, 1, 3) {
        let mut a = action(rng, "TransferToAcdAction", format!("Transfer to {}", q.name), tracking);
        a["queue"] = lit("que", q);
        a["priority"] = json!({"config": {"lit": 0}});
        r.uses("queue", &q.id, &q.name, &a, None);
        r.push(a);
    }
    // Drawn last, so the references above stay what they were before schedules were added.
    scheduling_actions(rng, objects, tracking, &mut r);
    r
}

/// An evaluate-schedule-group action (with the emergency group it checks first, sometimes) and
/// an evaluate-schedule action, as an inbound call flow's opening decides open or closed.
fn scheduling_actions(rng: &mut StdRng, objects: &SimObjects, tracking: &mut u32, r: &mut Referencing) {
    for g in pick(rng, objects, ObjectKind::ScheduleGroup, 1, 1) {
        let mut a = action(
            rng,
            "EvaluateScheduleGroupAction",
            format!("Check {}", g.name),
            tracking,
        );
        a["scheduleGroup"] = lit("scg", g);
        r.uses("scheduleGroup", &g.id, &g.name, &a, None);
        for e in pick(rng, objects, ObjectKind::EmergencyGroup, 0, 1) {
            a["emergencyGroup"] = lit("emg", e);
            r.uses("emergencyGroup", &e.id, &e.name, &a, None);
        }
        a["outputs"] = json!({"open": {}, "closed": {}, "holiday": {}, "emergency": {}});
        r.push(a);
    }
    for sch in pick(rng, objects, ObjectKind::Schedule, 0, 1) {
        let mut a = action(rng, "EvaluateScheduleAction", format!("Check {}", sch.name), tracking);
        a["schedule"] = lit("sch", sch);
        a["outputs"] = json!({"active": {}, "inactive": {}});
        r.uses("schedule", &sch.id, &sch.name, &a, None);
        r.push(a);
    }
}

/// A filler action (decisions, participant data, loops) that references nothing.
fn filler_action(rng: &mut StdRng, i: u32, tracking: &mut u32) -> Value {
    const KINDS: [&str; 5] = [
        "DecisionAction",
        "SetParticipantDataAction",
        "UpdateDataAction",
        "LoopAction",
        "CollectInputAction",
    ];
    let kind = KINDS[rng.random_range(0..KINDS.len())];
    let mut a = action(rng, kind, format!("{} {i}", kind.trim_end_matches("Action")), tracking);
    a["condition"] = json!({"config": {"exp": format!(
        "If(Flow.var{} == \"{}\", Append(\"x\", ToString({i})), \"y\")", i % 17, rng.random_range(0..9999u32))}});
    a["outputs"] = json!({"yes": {"nextActionId": uuid_from(rng)}, "no": {"nextActionId": uuid_from(rng)}});
    a
}

/// The per-type settings key and value, for the types that have one.
fn type_settings(flow_type: &str) -> Option<(&'static str, Value)> {
    match flow_type {
        "BOT" | "DIGITALBOT" => Some((
            "botFlowSettings",
            json!({"intentSettings": [], "confirmationRetries": 2, "noInputTimeoutSeconds": 7}),
        )),
        "INQUEUECALL" => Some((
            "inQueueCallFlowSettings",
            json!({"holdMusic": {"config": {"exp": "Prompt.HoldMusic"}}}),
        )),
        "OUTBOUNDCALL" => Some((
            "outboundCallSettings",
            json!({"contactListId": null, "answeringMachineDetection": true}),
        )),
        "INBOUNDEMAIL" => Some(("inboundEmailSettings", json!({"autoReply": false}))),
        _ => None,
    }
}

/// A configuration for the flow `meta` describes, of about `target_bytes`, that calls `calls`.
pub fn generate_configuration(meta: &Value, seed: u64, target_bytes: usize, calls: &[FlowRef]) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let text = |k: &str| meta.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let flow_type = text("type");
    let mut tracking = 0u32;
    let referencing = referencing_actions(&mut rng, calls, &mut tracking);
    let mut tasks = vec![
        json!({"__type": "Task", "id": uuid_from(&mut rng), "name": "Main", "trackingId": 1,
        "actionList": referencing.actions}),
    ];
    let mut config = json!({
        "name": text("name"),
        "description": text("description"),
        "type": flow_type,
        "defaultLanguage": "en-us",
        "supportedLanguages": {"en-us": {"defaultLanguageSkill": {"noValue": true}, "textToSpeech": {"defaultEngine": {"engine": "Genesys TTS", "voice": "Jill"}}}},
        "initialSequence": tasks[0]["id"],
        "nextTrackingNumber": 0,
        "manifest": Value::Object(referencing.manifest),
        "variables": [
            {"__type": "StringVariable", "name": "Flow.result", "isInput": false, "isOutput": true, "initialValue": {"noValue": true}},
            {"__type": "IntegerVariable", "name": "Flow.count", "isInput": false, "isOutput": false, "initialValue": {"lit": 0}},
        ],
        "flowSequenceItemList": [],
        "defaultSettings": {"DecisionAction": {"outputs": 2}, "TransferToAcdAction": {"priority": 0}},
        "errorHandling": {"errorEvent": {"actionName": "Disconnect"}},
        "uiMetaData": {"collapsed": [], "positions": {}},
        "flowMetaData": {"flowDocumentVersion": "2.0", "minimumServerVersion": "1.0.0.52", "ttsDataVersion": "1"},
        "versionMetaData": {"inputSchema": {"type": "object", "properties": {}}, "outputSchema": {"type": "object", "properties": {"Flow.result": {"type": "string"}}}},
    });
    if flow_type.ends_with("CALL") {
        config["initialPrompts"] = json!({"config": {"exp": "ToAudio(Prompt.Welcome)"}});
    }
    if let Some((key, settings)) = type_settings(&flow_type) {
        config[key] = settings;
    }
    let mut size = config.to_string().len() + tasks[0].to_string().len();
    let mut i = 0u32;
    while size < target_bytes {
        if i.is_multiple_of(40) {
            tasks.push(
                json!({"__type": "Task", "id": uuid_from(&mut rng), "name": format!("Task {}", i / 40 + 1),
                "trackingId": tasks.len() + 1, "actionList": []}),
            );
        }
        let a = filler_action(&mut rng, i, &mut tracking);
        let position = json!({"x": rng.random_range(0..2000u32), "y": rng.random_range(0..4000u32)});
        size += a.to_string().len() + position.to_string().len() + 46;
        config["uiMetaData"]["positions"][a["id"].as_str().unwrap_or_default()] = position;
        if let Some(list) = tasks.last_mut().and_then(|t| t["actionList"].as_array_mut()) {
            list.push(a);
        }
        i += 1;
    }
    config["nextTrackingNumber"] = (tracking + 1).into();
    config["flowSequenceItemList"] = Value::Array(tasks);
    config.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_listed_under_the_kind_architect_uses() {
        assert_eq!(flow_manifest_key("COMMONMODULE"), "commonModuleFlow");
        assert_eq!(flow_manifest_key("INBOUNDCALL"), "inboundCallFlow");
        assert_eq!(flow_manifest_key("SECURECALL"), "secureCallFlow");
        assert_eq!(flow_manifest_key("BOT"), "botFlow");
    }

    #[test]
    fn a_configuration_has_no_id_and_references_by_id_and_name() {
        let meta = json!({"id": "f1", "name": "Main", "type": "INBOUNDCALL", "description": "d"});
        let callee = FlowRef {
            id: "c1".into(),
            name: "Module".into(),
            flow_type: "COMMONMODULE".into(),
        };
        let config: Value =
            serde_json::from_str(&generate_configuration(&meta, 3, 20_000, std::slice::from_ref(&callee))).unwrap();
        assert!(config.get("id").is_none());
        let queue = &config["manifest"]["queue"][0];
        let text = config["flowSequenceItemList"].to_string();
        assert!(text.contains(&format!(r#""val":"{}""#, queue["id"].as_str().unwrap())));
        assert_eq!(config["manifest"]["commonModuleFlow"][0]["id"], "c1");
        assert!(text.contains(r#""flowId":"c1","flowName":"Module""#));
        let len = config.to_string().len();
        assert!((19_000..22_000).contains(&len), "{len}");
    }
}
