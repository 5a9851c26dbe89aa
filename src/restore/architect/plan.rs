//! The plan of the Architect objects: each archived object matched in the target org (by id in
//! the same org, else by kind and name), its references resolved through one id map, and an
//! action decided by comparing what would be written with what the org holds — fields, prompt
//! resources and audio, data table rows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};
use tracing::warn;

use super::kinds::{self, Target};
use super::load::{ArchivedObject, RefusedObject};
use super::{ArchitectKind, ArchitectOptions, ObjectRestore, row_key};
use crate::genesys::architect_write::upload_status;
use crate::genesys::{ApiError, GenesysClient};
use crate::restore::{Action, FlowOutcome, FlowRestore};

/// Archived id → the id in the target org (`None`: created by this restore, known once it is).
pub type IdMap = HashMap<String, Option<String>>;

/// The org's objects per kind, listed once (`Err`: the kind cannot be listed, and why).
#[derive(Default)]
pub struct Listings(HashMap<ArchitectKind, Result<Vec<Value>, String>>);

impl Listings {
    /// The org's objects of `kind` (listed on first use).
    pub async fn get(&mut self, client: &GenesysClient, kind: ArchitectKind) -> Result<&[Value], ApiError> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.0.entry(kind) {
            let query: &[(&str, &str)] = match kind {
                ArchitectKind::Prompts => &[("includeResources", "true"), ("includeMediaUris", "false")],
                ArchitectKind::DataTables => &[("expand", "schema")],
                _ => &[],
            };
            let listed = match client.architect_list(kind.path(), None, query).await {
                Ok(l) => Ok(l),
                Err(e @ (ApiError::Forbidden { .. } | ApiError::NotFound { .. })) => Err(e.to_string()),
                Err(e) => return Err(e),
            };
            slot.insert(listed);
        }
        Ok(match self.0.get(&kind) {
            Some(Ok(l)) => l.as_slice(),
            _ => &[],
        })
    }

    /// The org's objects of `kind` as listed before, or why they could not be.
    pub fn cached(&self, kind: ArchitectKind) -> Result<&[Value], &str> {
        match self.0.get(&kind) {
            Some(Ok(l)) => Ok(l.as_slice()),
            Some(Err(why)) => Err(why.as_str()),
            None => Ok(&[]),
        }
    }

    /// Why `kind` could not be listed, if it could not.
    pub fn problem(&self, kind: ArchitectKind) -> Option<&str> {
        self.0.get(&kind).and_then(|r| r.as_ref().err()).map(String::as_str)
    }
}

fn text<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

/// The object of `list` that is `id` (same org), else named `name`: exactly, else ignoring case
/// when unambiguous. `Err` when two objects carry the name exactly.
fn find<'a>(list: &'a [Value], id: Option<&str>, name: &str) -> Result<Option<&'a Value>, String> {
    if let Some(o) = id.and_then(|id| list.iter().find(|o| text(o, "id") == id)) {
        return Ok(Some(o));
    }
    let exact: Vec<&Value> = list.iter().filter(|o| text(o, "name") == name).collect();
    if exact.len() > 1 {
        return Err(format!("{} objects in the org are named {name:?}", exact.len()));
    }
    if let Some(o) = exact.first() {
        return Ok(Some(*o));
    }
    let mut same = list.iter().filter(|o| text(o, "name").eq_ignore_ascii_case(name));
    Ok(match (same.next(), same.next()) {
        (Some(o), None) => Some(o),
        _ => None,
    })
}

/// Plans the archived objects: matches each in the org, resolves the references to objects
/// outside the restore, reads what a comparison needs (rows). Flow references are resolved later
/// ([`resolve_flow_refs`]), once the flows are planned.
pub async fn plan_objects(
    client: &GenesysClient,
    archived: Vec<ArchivedObject>,
    refused: Vec<RefusedObject>,
    listings: &mut Listings,
    other_org: bool,
) -> Result<(Vec<ObjectRestore>, IdMap), ApiError> {
    let mut map = IdMap::new();
    let mut out = Vec::new();
    for kind in archived.iter().map(|a| a.kind).collect::<BTreeSet<_>>() {
        listings.get(client, kind).await?;
    }
    for a in archived {
        let mut o = ObjectRestore::new(a.kind, &a.id, &a.name, a.object);
        o.rows = a.rows;
        o.audio = a.audio;
        let list = match listings.cached(a.kind) {
            Ok(list) => list,
            Err(why) => {
                o.conflict(format!("the org's {} cannot be read: {why}", a.kind.as_str()));
                out.push(o);
                continue;
            }
        };
        match find(list, (!other_org).then_some(a.id.as_str()), &a.name) {
            Ok(Some(t)) => {
                o.target_id = Some(text(t, "id").to_string());
                o.target = Some(t.clone());
                map.insert(a.id.clone(), o.target_id.clone());
            }
            Ok(None) => {
                map.insert(a.id.clone(), None);
            }
            Err(why) => o.conflict(why),
        }
        out.push(o);
    }
    for r in refused {
        let mut o = ObjectRestore::new(r.kind, &r.id, &r.name, Value::Null);
        o.action = Action::Refused;
        o.outcome = FlowOutcome::Refused;
        o.reason = Some(format!("its archived document does not verify: {}", r.why));
        out.push(o);
    }
    resolve_object_refs(client, &mut out, &mut map, listings, other_org).await?;
    for o in out.iter_mut().filter(|o| o.kind == ArchitectKind::DataTables) {
        if let Some(id) = o.target_id.clone().filter(|_| o.action != Action::Conflict) {
            let rows = client.datatable_rows(&id).await?;
            o.target_rows = rows.into_iter().filter_map(|r| Some((row_key(&r)?, r))).collect();
        }
    }
    Ok((out, map))
}

/// References to Architect objects outside the restore, found in the org (by id in the same
/// org, else by name) and added to the map; what cannot be found puts the object in conflict.
async fn resolve_object_refs(
    client: &GenesysClient,
    objects: &mut [ObjectRestore],
    map: &mut IdMap,
    listings: &mut Listings,
    other_org: bool,
) -> Result<(), ApiError> {
    for o in objects.iter_mut().filter(|o| o.action != Action::Refused) {
        let mut missing = Vec::new();
        for r in kinds::refs(o.kind, &o.archived) {
            let Target::Object(kind) = r.target else { continue };
            if map.contains_key(&r.id) {
                continue;
            }
            let list = listings.get(client, kind).await?;
            match find(list, (!other_org).then_some(r.id.as_str()), &r.name) {
                Ok(Some(t)) => {
                    map.insert(r.id.clone(), Some(text(t, "id").to_string()));
                }
                _ => missing.push(format!("missing {} {:?}", kind.as_str(), r.name)),
            }
        }
        if !missing.is_empty() && o.action != Action::Conflict {
            o.conflict(format!("{} (neither restored nor in the org)", missing.join("; ")));
        }
    }
    Ok(())
}

/// Flow references (IVRs, emergency groups): a flow this restore writes (created: known once
/// created), else one in the org by id (same org) or by name; what cannot be found is a conflict.
pub async fn resolve_flow_refs(
    client: &GenesysClient,
    objects: &mut [ObjectRestore],
    map: &mut IdMap,
    flows: &[FlowRestore],
    other_org: bool,
) -> Result<(), ApiError> {
    for f in flows {
        let to = match (f.action, &f.new_id) {
            (Action::Create, _) => None,
            (Action::Conflict | Action::Refused, _) if f.versions_before.saved.is_none() => continue,
            _ => Some(f.id.clone()),
        };
        map.insert(f.id.clone(), to);
    }
    for o in objects
        .iter_mut()
        .filter(|o| matches!(o.action, Action::Create | Action::Update))
    {
        let mut missing = Vec::new();
        for r in kinds::refs(o.kind, &o.archived)
            .into_iter()
            .filter(|r| r.target == Target::Flow)
        {
            if map.contains_key(&r.id) {
                continue;
            }
            match find_flow(client, &r.id, &r.name, other_org).await? {
                Some(id) => {
                    map.insert(r.id.clone(), Some(id));
                }
                None => missing.push(format!("missing flow {:?}", r.name)),
            }
        }
        if !missing.is_empty() {
            o.conflict(format!("{} (neither restored nor in the org)", missing.join("; ")));
        }
    }
    Ok(())
}

async fn find_flow(client: &GenesysClient, id: &str, name: &str, other_org: bool) -> Result<Option<String>, ApiError> {
    if !other_org {
        match client.flow(id).await {
            Ok(meta) if meta.get("deleted").and_then(Value::as_bool) != Some(true) => return Ok(Some(id.to_string())),
            Ok(_) | Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let named = client.flows_named(name, "inboundcall").await?;
    Ok(named.first().and_then(|f| f.get("id")?.as_str()).map(str::to_string))
}

/// The archived ids that point elsewhere in the target (re-created, or another id).
pub fn changed_ids(map: &IdMap) -> BTreeSet<String> {
    map.iter()
        .filter(|(from, to)| to.as_deref() != Some(from.as_str()))
        .map(|(from, _)| from.clone())
        .collect()
}

/// A reference as planned: the target id, or a marker for an id known once created.
pub fn planned_id(map: &IdMap, id: &str) -> Option<String> {
    match map.get(id) {
        Some(Some(to)) => Some(to.clone()),
        Some(None) => Some(format!("(new id of {id})")),
        None => None,
    }
}

/// Decides each object's action: `create` (not in the org), `unchanged` (what would be written
/// is what the org holds), else `update` with what differs; an IVR whose DNIS another IVR holds is
/// in conflict.
pub fn decide(objects: &mut [ObjectRestore], map: &IdMap, listings: &Listings, options: &ArchitectOptions) {
    let ivrs: Vec<Value> = listings
        .0
        .get(&ArchitectKind::Ivrs)
        .and_then(|r| r.as_ref().ok())
        .cloned()
        .unwrap_or_default();
    for o in objects.iter_mut().filter(|o| o.outcome == FlowOutcome::Planned) {
        let desired = kinds::body(o.kind, &o.archived, &|_, id| planned_id(map, id));
        o.repointed = repointed(o, map);
        if o.kind == ArchitectKind::Ivrs
            && let Some(why) = dnis_conflict(&o.archived, o.target_id.as_deref(), &ivrs)
        {
            o.conflict(why);
            continue;
        }
        let Some(target) = o.target.clone() else {
            o.action = Action::Create;
            o.reason = Some(format!(
                "not in the org: created (a new id), and every reference to {} re-pointed",
                o.id
            ));
            continue;
        };
        let current = kinds::body(o.kind, &target, &|_, _| None);
        let mut desired = desired;
        kinds::keep_org_fields(o.kind, &mut desired, &target);
        let mut changes: Vec<String> = kinds::fields(o.kind)
            .iter()
            .filter(|f| desired.get(**f) != current.get(**f))
            .map(|f| format!("{f} differs"))
            .collect();
        match o.kind {
            ArchitectKind::Prompts => changes.extend(resource_changes(o)),
            ArchitectKind::DataTables => changes.extend(row_changes(o, options.prune_rows)),
            _ => {}
        }
        if changes.is_empty() {
            o.action = Action::Unchanged;
            o.outcome = FlowOutcome::Unchanged;
        } else {
            o.action = Action::Update;
            o.changes = changes;
        }
    }
}

/// `kind "name": old → new` for each reference that points elsewhere in the target.
fn repointed(o: &ObjectRestore, map: &IdMap) -> Vec<String> {
    kinds::refs(o.kind, &o.archived)
        .into_iter()
        .filter_map(|r| {
            let to = planned_id(map, &r.id).filter(|to| *to != r.id)?;
            let kind = match r.target {
                Target::Object(k) => k.as_str(),
                Target::Flow => "flow",
            };
            Some(format!("{kind} {:?}: {} → {to}", r.name, r.id))
        })
        .collect()
}

/// The DNIS of `ivr` another IVR of the org holds, if any.
fn dnis_conflict(ivr: &Value, own: Option<&str>, org: &[Value]) -> Option<String> {
    let numbers: Vec<&str> = ivr.get("dnis")?.as_array()?.iter().filter_map(Value::as_str).collect();
    for other in org.iter().filter(|o| Some(text(o, "id")) != own) {
        let held = other.get("dnis").and_then(Value::as_array);
        if let Some(n) = numbers
            .iter()
            .find(|n| held.is_some_and(|h| h.iter().any(|x| x.as_str() == Some(**n))))
        {
            return Some(format!(
                "DNIS {n} is held by IVR {:?} ({}) in the org; free it there first",
                text(other, "name"),
                text(other, "id")
            ));
        }
    }
    None
}

/// The archived resources: language → (ttsString, text, durationSeconds).
fn resources(prompt: &Value) -> BTreeMap<String, Value> {
    prompt
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| (text(r, "language").to_string(), r.clone()))
        .collect()
}

/// What differs in a prompt's resources: text, TTS, audio (missing, not transcoded, or another
/// duration).
fn resource_changes(o: &ObjectRestore) -> Vec<String> {
    let theirs = o.target.as_ref().map(resources).unwrap_or_default();
    let mut out = Vec::new();
    for (lang, mine) in resources(&o.archived) {
        let Some(t) = theirs.get(&lang) else {
            out.push(format!("resource {lang} missing"));
            continue;
        };
        if text(&mine, "ttsString") != text(t, "ttsString") || text(&mine, "text") != text(t, "text") {
            out.push(format!("resource {lang}: text or TTS differs"));
        }
        if o.audio.contains_key(&lang) && audio_needed(&mine, t) {
            out.push(format!("audio {lang}: {}", audio_why(&mine, t)));
        }
    }
    out
}

/// Whether the org's resource needs the archived audio: not transcoded, or another duration.
pub fn audio_needed(archived: &Value, org: &Value) -> bool {
    upload_status(org) != "transcoded" || archived.get("durationSeconds") != org.get("durationSeconds")
}

fn audio_why(archived: &Value, org: &Value) -> String {
    match upload_status(org) {
        "transcoded" => format!(
            "{} s in the org, {} s archived",
            org.get("durationSeconds").unwrap_or(&json!(null)),
            archived.get("durationSeconds").unwrap_or(&json!(null))
        ),
        other => format!("uploadStatus {other:?} in the org"),
    }
}

/// Rows to add, update (and with `prune`, delete); extra rows left alone are said too.
fn row_changes(o: &ObjectRestore, prune: bool) -> Vec<String> {
    let (add, update, extra) = row_diff(o);
    let mut out = Vec::new();
    if !add.is_empty() {
        out.push(format!("{} row(s) to add", add.len()));
    }
    if !update.is_empty() {
        out.push(format!("{} row(s) to update", update.len()));
    }
    match (extra.len(), prune) {
        (0, _) => {}
        (n, true) => out.push(format!("{n} row(s) the archive does not hold to delete (--prune-rows)")),
        (n, false) => {
            warn!(table = %o.name, "{n} row(s) of the org's table are not in the archive: left alone");
        }
    }
    out
}

/// Keys to add, to update, and keys only the org holds.
pub fn row_diff(o: &ObjectRestore) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mine: BTreeMap<String, &Value> = o.rows.iter().flatten().filter_map(|r| Some((row_key(r)?, r))).collect();
    let add = mine
        .keys()
        .filter(|k| !o.target_rows.contains_key(*k))
        .cloned()
        .collect();
    let update = mine
        .iter()
        .filter(|(k, r)| o.target_rows.get(*k).is_some_and(|t| t != **r))
        .map(|(k, _)| k.clone())
        .collect();
    let extra = o
        .target_rows
        .keys()
        .filter(|k| !mine.contains_key(*k))
        .cloned()
        .collect();
    (add, update, extra)
}

/// Objects of the org outside the restore (schedule groups, IVRs, emergency groups) that name an
/// archived id this restore points elsewhere: each is re-pointed (an update of its references).
pub async fn plan_repoints(
    client: &GenesysClient,
    objects: &mut Vec<ObjectRestore>,
    map: &IdMap,
    listings: &mut Listings,
) -> Result<(), ApiError> {
    let changed = changed_ids(map);
    if changed.is_empty() {
        return Ok(());
    }
    let matched: BTreeSet<String> = objects.iter().filter_map(|o| o.target_id.clone()).collect();
    for kind in [
        ArchitectKind::ScheduleGroups,
        ArchitectKind::EmergencyGroups,
        ArchitectKind::Ivrs,
    ] {
        let list = listings.get(client, kind).await?.to_vec();
        if let Some(why) = listings.problem(kind) {
            warn!(
                "the org's {} cannot be read, so none is re-pointed: {why}",
                kind.as_str()
            );
            continue;
        }
        for t in list.iter().filter(|t| !matched.contains(text(t, "id"))) {
            let uses: Vec<_> = kinds::refs(kind, t)
                .into_iter()
                .filter(|r| changed.contains(&r.id))
                .collect();
            if uses.is_empty() {
                continue;
            }
            let mut o = ObjectRestore::new(kind, text(t, "id"), text(t, "name"), t.clone());
            o.target_id = Some(o.id.clone());
            o.target = Some(t.clone());
            o.repoint_only = true;
            o.action = Action::Update;
            o.repointed = repointed(&o, map);
            let names: Vec<String> = uses.iter().map(|r| format!("{:?}", r.name)).collect();
            o.reason = Some(format!(
                "re-point: it uses {} which this restore re-creates or finds under another id",
                names.join(", ")
            ));
            objects.push(o);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ivr_whose_number_another_ivr_holds_is_a_conflict() {
        let mine = json!({"name": "Main", "dnis": ["+13175550100"]});
        let org = vec![json!({"id": "x", "name": "Other", "dnis": ["+13175550100"]})];
        let why = dnis_conflict(&mine, None, &org).unwrap();
        assert!(why.contains("+13175550100") && why.contains("Other"), "{why}");
        assert!(
            dnis_conflict(&mine, Some("x"), &org).is_none(),
            "its own number is no conflict"
        );
    }

    #[test]
    fn rows_are_added_updated_and_extra_rows_found() {
        let mut o = ObjectRestore::new(ArchitectKind::DataTables, "t", "T", json!({}));
        o.rows = Some(vec![json!({"key": "a", "v": 1}), json!({"key": "b", "v": 2})]);
        o.target_rows = BTreeMap::from([
            ("b".to_string(), json!({"key": "b", "v": 3})),
            ("c".to_string(), json!({"key": "c", "v": 0})),
        ]);
        let (add, update, extra) = row_diff(&o);
        assert_eq!(
            (add, update, extra),
            (vec!["a".to_string()], vec!["b".to_string()], vec!["c".to_string()])
        );
    }

    #[test]
    fn a_name_taken_twice_in_the_org_is_not_guessed() {
        let list = vec![json!({"id": "1", "name": "Hours"}), json!({"id": "2", "name": "Hours"})];
        assert!(find(&list, None, "Hours").is_err());
        assert_eq!(
            find(&list, Some("2"), "Hours").unwrap().map(|o| text(o, "id")),
            Some("2")
        );
    }
}
