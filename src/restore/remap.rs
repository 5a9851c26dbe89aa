//! References re-pointed: a configuration names what it uses by id and name, in its `manifest` and
//! again inside actions. Before anything is written, the restore builds one map from archived ids
//! to target ids — the flows it re-creates, flows outside the restore found again, and with
//! `--to-other-org` every referenced object found in the target org by kind and name — and each
//! configuration is saved with every reference rewritten. What cannot be found puts the flow, and
//! the flows that call it, in conflict (`missing <kind> "<name>"`) before anything is written.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use super::{Action, FlowOutcome, FlowRestore};
use crate::genesys::objects::NamedObject;
use crate::genesys::{ApiError, GenesysClient};

/// One object a configuration's `manifest` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The manifest key (`queue`, `userPrompt`, `commonModuleFlow`, …).
    pub kind: String,
    /// The id in the archive.
    pub id: String,
    /// The name (what another org finds it by).
    pub name: String,
}

/// A reference the restore re-points, as the plan and the report list it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Repointed {
    /// The manifest key.
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// The archived id.
    pub from: String,
    /// The id in the target org (for a flow this restore re-creates: known once it is created).
    pub to: Option<String>,
    /// True when the target is a flow this restore re-creates.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub recreated: bool,
    /// Places rewritten in the saved configuration (manifest and actions), once applied.
    pub places: usize,
}

impl Repointed {
    /// `queue "Sales": OLD → NEW (3 places)`, for the plan and the outcome lines.
    pub fn describe(&self) -> String {
        let to = self
            .to
            .clone()
            .unwrap_or_else(|| "the new id of what this restore re-creates".into());
        let places = match self.places {
            0 => String::new(),
            n => format!(" ({n} places)"),
        };
        format!("{} {:?}: {} → {to}{places}", self.kind, self.name, self.from)
    }
}

/// True for manifest keys that list flows (`botFlow`, `commonModuleFlow`, `workflow`, …).
pub fn is_flow_kind(kind: &str) -> bool {
    kind.ends_with("Flow") || kind == "workflow"
}

/// The lowercase type filters a flow reference of `kind` may be found under.
fn flow_types_of(kind: &str) -> Vec<String> {
    match kind {
        "botFlow" => vec!["bot".into(), "digitalbot".into()],
        "workflow" => vec!["workflow".into()],
        other => vec![other.trim_end_matches("Flow").to_ascii_lowercase()],
    }
}

/// Every object a configuration's `manifest` lists, once per kind and id.
pub fn references(configuration: &[u8]) -> Vec<Reference> {
    let Ok(v) = serde_json::from_slice::<Value>(configuration) else {
        return Vec::new();
    };
    let mut out: Vec<Reference> = Vec::new();
    for (kind, entries) in v.get("manifest").and_then(Value::as_object).into_iter().flatten() {
        for e in entries.as_array().into_iter().flatten() {
            let (Some(id), name) = (
                e.get("id").and_then(Value::as_str),
                e.get("name").and_then(Value::as_str).unwrap_or_default(),
            ) else {
                continue;
            };
            if !out.iter().any(|r| r.kind == *kind && r.id == id) {
                out.push(Reference {
                    kind: kind.clone(),
                    id: id.to_string(),
                    name: name.to_string(),
                });
            }
        }
    }
    out
}

/// Rewrites every string value of the configuration equal to an archived id of `map` — in the
/// manifest and in every action (`val` of queue literals and prompt refs, `datatableId`,
/// `flowId`, `milestoneId`, `outcomeId`, …) — and counts the places per archived id. Unchanged
/// bytes when nothing is rewritten.
pub fn rewrite(configuration: &Bytes, map: &HashMap<String, String>) -> (Bytes, HashMap<String, usize>) {
    let mut counts = HashMap::new();
    if map.is_empty() {
        return (configuration.clone(), counts);
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(configuration) else {
        return (configuration.clone(), counts);
    };
    replace_ids(&mut v, map, &mut counts);
    if counts.is_empty() {
        return (configuration.clone(), counts);
    }
    match serde_json::to_vec(&v) {
        Ok(bytes) => (Bytes::from(bytes), counts),
        Err(_) => (configuration.clone(), HashMap::new()),
    }
}

fn replace_ids(v: &mut Value, map: &HashMap<String, String>, counts: &mut HashMap<String, usize>) {
    match v {
        Value::String(s) => {
            if let Some(new) = map.get(s.as_str()) {
                *counts.entry(s.clone()).or_default() += 1;
                *s = new.clone();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| replace_ids(i, map, counts)),
        Value::Object(m) => m.values_mut().for_each(|i| replace_ids(i, map, counts)),
        _ => {}
    }
}

/// The object of `list` named `name`: exactly, else ignoring case when that is unambiguous.
fn find_by_name<'a>(list: &'a [NamedObject], name: &str) -> Option<&'a NamedObject> {
    list.iter().find(|o| o.name == name).or_else(|| {
        let mut same = list.iter().filter(|o| o.name.eq_ignore_ascii_case(name));
        match (same.next(), same.next()) {
            (Some(o), None) => Some(o),
            _ => None,
        }
    })
}

/// What the target org holds for the references of the flows being restored.
#[derive(Default)]
struct Found {
    /// Per listable object kind (another org only): its objects.
    objects: HashMap<String, Vec<NamedObject>>,
    /// Per called flow outside this restore (archived id): its id in the target, if found.
    flows: HashMap<String, Option<String>>,
}

/// A flow outside the restore, found again: under its archived id (same org), else by name.
async fn find_flow(client: &GenesysClient, r: &Reference, other_org: bool) -> Result<Option<String>, ApiError> {
    if !other_org {
        match client.flow(&r.id).await {
            Ok(meta) if meta.get("deleted").and_then(Value::as_bool) != Some(true) => return Ok(Some(r.id.clone())),
            Ok(_) | Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    for t in flow_types_of(&r.kind) {
        let named = match client.flows_named(&r.name, &t).await {
            Ok(named) => named,
            Err(ApiError::Rejected { status: 400, .. }) => continue,
            Err(e) => return Err(e),
        };
        if let Some(id) = named.first().and_then(|f| f.get("id")?.as_str()) {
            return Ok(Some(id.to_string()));
        }
    }
    Ok(None)
}

/// Lists what the references need from the target org: each object kind once, each called flow
/// outside the restore once.
async fn look_up(client: &GenesysClient, flows: &[FlowRestore], other_org: bool) -> Result<Found, ApiError> {
    let mut found = Found::default();
    let in_restore: BTreeSet<&str> = flows.iter().map(|f| f.id.as_str()).collect();
    let writing = flows
        .iter()
        .filter(|f| matches!(f.action, Action::Update | Action::Create | Action::Unchanged));
    let refs: Vec<&Reference> = writing.flat_map(|f| f.references.iter()).collect();
    if other_org {
        let kinds: BTreeSet<&str> = refs
            .iter()
            .filter(|r| !is_flow_kind(&r.kind))
            .map(|r| r.kind.as_str())
            .collect();
        for kind in kinds {
            if let Some(list) = client.list_objects(kind).await? {
                found.objects.insert(kind.to_string(), list);
            }
        }
    }
    for r in refs
        .iter()
        .filter(|r| is_flow_kind(&r.kind) && !in_restore.contains(r.id.as_str()))
    {
        if !found.flows.contains_key(&r.id) {
            let target = find_flow(client, r, other_org).await?;
            found.flows.insert(r.id.clone(), target);
        }
    }
    Ok(found)
}

/// Plans each flow's references against the target org: what is re-pointed (`repointed`), and
/// which flows are in conflict because something they use — directly or through a called flow —
/// cannot be found. A flow that is otherwise unchanged but calls a flow being re-created is
/// updated, so that it points at the new id.
pub async fn plan_references(
    client: &GenesysClient,
    flows: &mut [FlowRestore],
    other_org: bool,
) -> Result<(), ApiError> {
    plan_references_with(client, flows, other_org, &HashMap::new()).await
}

/// [`plan_references`] with the Architect objects' id map (`known`: archived id → target id,
/// `None` for an object this restore re-creates, known once created): references to them are
/// re-pointed through it before anything is looked up by name.
pub async fn plan_references_with(
    client: &GenesysClient,
    flows: &mut [FlowRestore],
    other_org: bool,
    known: &HashMap<String, Option<String>>,
) -> Result<(), ApiError> {
    for f in flows.iter_mut() {
        f.references = references(&f.configuration);
    }
    let found = look_up(client, flows, other_org).await?;
    let index: HashMap<String, usize> = flows.iter().enumerate().map(|(i, f)| (f.id.clone(), i)).collect();
    let creating: Vec<bool> = flows.iter().map(|f| f.action == Action::Create).collect();
    for f in flows.iter_mut() {
        let mut missing = Vec::new();
        for r in &f.references {
            let target = if let Some(to) = known.get(&r.id).filter(|_| !is_flow_kind(&r.kind)) {
                Some(to.clone())
            } else if is_flow_kind(&r.kind) {
                match index.get(&r.id) {
                    Some(&j) if creating[j] => Some(None),
                    Some(_) => Some(Some(r.id.clone())),
                    None => found.flows.get(&r.id).cloned().flatten().map(Some),
                }
            } else {
                match found.objects.get(&r.kind) {
                    Some(list) => find_by_name(list, &r.name).map(|o| Some(o.id.clone())),
                    None => Some(Some(r.id.clone())),
                }
            };
            match target {
                None => missing.push(format!("missing {} {:?}", r.kind, r.name)),
                Some(Some(to)) if to == r.id => {}
                Some(to) => f.repointed.push(Repointed {
                    kind: r.kind.clone(),
                    name: r.name.clone(),
                    from: r.id.clone(),
                    recreated: to.is_none(),
                    to,
                    places: 0,
                }),
            }
        }
        if f.action == Action::Unchanged && f.repointed.iter().any(|p| p.recreated || known.contains_key(&p.from)) {
            f.action = Action::Update;
            f.outcome = FlowOutcome::Planned;
            f.reason = Some("it calls a flow this restore re-creates: saved again, pointing at the new id".into());
        }
        if !missing.is_empty() && matches!(f.action, Action::Update | Action::Create) {
            mark_conflict(f, missing.join("; "));
        }
    }
    spread_conflicts(flows, &index);
    Ok(())
}

fn mark_conflict(f: &mut FlowRestore, reason: String) {
    f.action = Action::Conflict;
    f.outcome = FlowOutcome::Conflict;
    f.reason = Some(reason);
}

/// Callers of a flow that will not exist in the target (in conflict and not there now) are in
/// conflict too, naming what their callee misses; repeated until nothing changes.
fn spread_conflicts(flows: &mut [FlowRestore], index: &HashMap<String, usize>) {
    loop {
        let mut changes = Vec::new();
        for (i, f) in flows.iter().enumerate() {
            if !matches!(f.action, Action::Update | Action::Create) {
                continue;
            }
            let broken = f.references.iter().filter(|r| is_flow_kind(&r.kind)).find_map(|r| {
                let callee = &flows[*index.get(&r.id)?];
                let absent = callee.versions_before.saved.is_none() && callee.versions_before.published.is_none();
                (callee.action == Action::Conflict && absent && callee.id != f.id).then_some(callee)
            });
            if let Some(callee) = broken {
                let why = callee.reason.as_deref().unwrap_or("in conflict");
                let reason = match why.strip_prefix("missing ") {
                    Some(_) => format!("{} (through the called flow {:?})", first_missing(why), callee.name),
                    None => format!(
                        "missing {} {:?} (the called flow is in conflict: {why})",
                        callee.flow_type, callee.name
                    ),
                };
                changes.push((i, reason));
            }
        }
        if changes.is_empty() {
            return;
        }
        for (i, reason) in changes {
            mark_conflict(&mut flows[i], reason);
        }
    }
}

/// The first `missing <kind> "<name>"` of a reason.
fn first_missing(reason: &str) -> &str {
    let end = reason.find(" (through").unwrap_or(reason.len());
    reason[..end].split("; ").next().unwrap_or(reason)
}

/// The id map one flow is saved with: its planned re-pointings, the re-created flows' new ids
/// filled in from `created` (archived id → new id). Updates `repointed` with the ids used.
pub fn map_for(f: &mut FlowRestore, created: &HashMap<String, String>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for p in &mut f.repointed {
        if p.recreated {
            p.to = created.get(&p.from).cloned();
        }
        if let Some(to) = &p.to {
            map.insert(p.from.clone(), to.clone());
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{"name":"Main","manifest":{"queue":[{"id":"q-old","name":"Sales","context":[{"id":"a1"}]}],"commonModuleFlow":[{"id":"f-old","name":"Module"}]},"flowSequenceItemList":[{"actionList":[{"id":"a1","queue":{"config":{"lit":{"text":"Sales","type":"que","val":"q-old"}}}},{"flowId":"f-old","flowName":"Module"},{"audio":{"config":{"refs":[{"ref":{"text":"Welcome","type":"pmt","val":"p1"}}]}}}]}]}"#;

    #[test]
    fn references_come_from_the_manifest_by_kind() {
        let refs = references(CONFIG.as_bytes());
        assert_eq!(refs.len(), 2);
        assert_eq!((refs[0].kind.as_str(), refs[0].name.as_str()), ("queue", "Sales"));
        assert!(is_flow_kind(&refs[1].kind));
    }

    #[test]
    fn a_rewrite_changes_the_manifest_and_every_action_and_nothing_else() {
        let map = HashMap::from([
            ("q-old".to_string(), "q-new".to_string()),
            ("f-old".into(), "f-new".into()),
        ]);
        let (bytes, counts) = rewrite(&Bytes::from_static(CONFIG.as_bytes()), &map);
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert_eq!(text, CONFIG.replace("q-old", "q-new").replace("f-old", "f-new"));
        assert_eq!(counts["q-old"], 2);
        assert_eq!(counts["f-old"], 2);
    }

    #[test]
    fn a_configuration_with_nothing_to_rewrite_keeps_its_bytes() {
        let spaced = Bytes::from_static(b"{ \"a\" : 1.0 }");
        let (bytes, counts) = rewrite(&spaced, &HashMap::from([("x".into(), "y".into())]));
        assert_eq!(bytes, spaced);
        assert!(counts.is_empty());
    }

    #[test]
    fn a_name_is_matched_exactly_before_ignoring_case() {
        let list = vec![
            NamedObject {
                id: "1".into(),
                name: "sales".into(),
            },
            NamedObject {
                id: "2".into(),
                name: "Sales".into(),
            },
        ];
        assert_eq!(find_by_name(&list, "Sales").unwrap().id, "2");
        assert!(find_by_name(&list, "SALES").is_none(), "ambiguous without case");
    }
}
