//! Applying the objects' plan in dependency order: before the flows — schedules, schedule
//! groups, prompts (resources, audio uploaded and transcoded), data tables (schema, then rows),
//! outcomes, milestones, emergency groups without their IVRs — and after them IVRs and the
//! emergency groups' IVRs. Each object's body is built when it is written, from the one id map
//! with the ids created so far, so it names the target's ids.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};
use tracing::{info, warn};

use super::kinds;
use super::plan::{IdMap, audio_needed, row_diff};
use super::{ArchitectKind, ArchitectOptions, ObjectRestore, row_key};
use crate::export::StopSignal;
use crate::genesys::architect_write::{ArchitectWriteError, Written};
use crate::genesys::{ApiError, GenesysClient};
use crate::restore::{Action, FlowOutcome};

/// The kinds written before the flows, in order (emergency groups without their IVRs).
const BEFORE: [ArchitectKind; 7] = [
    ArchitectKind::Schedules,
    ArchitectKind::ScheduleGroups,
    ArchitectKind::Prompts,
    ArchitectKind::DataTables,
    ArchitectKind::Outcomes,
    ArchitectKind::Milestones,
    ArchitectKind::EmergencyGroups,
];

/// What one apply phase shares: the client, the id map and the ids created so far.
pub struct Ids<'a> {
    /// Archived id → target id (`None`: created by this restore).
    pub map: &'a IdMap,
    /// Archived id → the id created for it (objects and flows).
    pub created: &'a mut HashMap<String, String>,
}

impl Ids<'_> {
    /// The id a reference to archived `id` is written with now, if it is known.
    fn resolve(&self, id: &str) -> Option<String> {
        match self.map.get(id) {
            Some(Some(to)) => Some(to.clone()),
            Some(None) => self.created.get(id).cloned(),
            None => None,
        }
    }

    /// True when `id` is created by this restore and not yet.
    fn pending(&self, id: &str) -> bool {
        matches!(self.map.get(id), Some(None)) && !self.created.contains_key(id)
    }
}

/// Writes the objects that come before the flows. `Err`: a run-level failure.
pub async fn apply_before_flows(
    client: &GenesysClient,
    objects: &mut [ObjectRestore],
    ids: &mut Ids<'_>,
    options: &ArchitectOptions,
    stop: &StopSignal,
    same_org: bool,
) -> Result<(), ApiError> {
    for kind in BEFORE {
        for o in objects.iter_mut().filter(|o| o.kind == kind) {
            apply_one(client, o, ids, options, stop, same_org, false).await?;
        }
    }
    Ok(())
}

/// Writes IVRs, then emergency groups whole (their IVRs). `Err`: a run-level failure.
pub async fn apply_after_flows(
    client: &GenesysClient,
    objects: &mut [ObjectRestore],
    ids: &mut Ids<'_>,
    options: &ArchitectOptions,
    stop: &StopSignal,
    same_org: bool,
) -> Result<(), ApiError> {
    for o in objects.iter_mut().filter(|o| o.kind == ArchitectKind::Ivrs) {
        apply_one(client, o, ids, options, stop, same_org, true).await?;
    }
    for o in objects.iter_mut().filter(|o| o.kind == ArchitectKind::EmergencyGroups) {
        apply_one(client, o, ids, options, stop, same_org, true).await?;
    }
    Ok(())
}

/// Writes one object if its plan says so and its phase has come, recording the outcome.
async fn apply_one(
    client: &GenesysClient,
    o: &mut ObjectRestore,
    ids: &mut Ids<'_>,
    options: &ArchitectOptions,
    stop: &StopSignal,
    same_org: bool,
    after_flows: bool,
) -> Result<(), ApiError> {
    let group = o.kind == ArchitectKind::EmergencyGroups;
    let writing = matches!(o.action, Action::Create | Action::Update);
    // An emergency group comes twice: before the flows (created without what is not there yet,
    // or updated whole when everything it names is), and after the IVRs (whole).
    let planned = o.outcome == FlowOutcome::Planned || (group && after_flows && o.outcome == FlowOutcome::Done);
    if !writing || !planned {
        return Ok(());
    }
    if stop.cause().is_some() {
        o.outcome = FlowOutcome::NotAttempted;
        o.notes
            .push("the restore was stopped before this object was written".into());
        return Ok(());
    }
    if group && !after_flows && o.action == Action::Update && !all_known(o, ids) {
        o.notes.push("written after the flows and IVRs it names".into());
        return Ok(());
    }
    let partial = group && !after_flows && o.action == Action::Create;
    let result = write(client, o, ids, options, same_org, partial).await;
    match result {
        Ok(()) => {
            o.outcome = FlowOutcome::Done;
            info!(kind = o.kind.as_str(), id = %o.id, "restored {} {:?}", o.kind.as_str(), o.name);
            Ok(())
        }
        Err(e) if e.is_fatal_for_run() => {
            o.outcome = FlowOutcome::Failed;
            o.error = Some(e.to_string());
            match e {
                ArchitectWriteError::Api(api) => Err(api),
                _ => Ok(()),
            }
        }
        Err(e) => {
            warn!(kind = o.kind.as_str(), id = %o.id, "could not restore {} {:?}: {e}", o.kind.as_str(), o.name);
            o.outcome = FlowOutcome::Failed;
            o.error = Some(e.to_string());
            Ok(())
        }
    }
}

/// True when every reference of `o` is known now.
fn all_known(o: &ObjectRestore, ids: &Ids<'_>) -> bool {
    kinds::refs(o.kind, &o.archived).iter().all(|r| !ids.pending(&r.id))
}

/// The body to write: restorable fields, references at the target's ids; an emergency group
/// created before the flows leaves out its IVRs and the flows not created yet.
fn body_now(o: &ObjectRestore, ids: &Ids<'_>, partial: bool, same_org: bool) -> Value {
    let mut source = o.archived.clone();
    if partial && let Some(Value::Array(entries)) = source.get_mut("emergencyCallFlows") {
        entries.retain(|e| {
            !e.pointer("/emergencyFlow/id")
                .and_then(Value::as_str)
                .is_some_and(|id| ids.pending(id))
        });
        for e in entries.iter_mut() {
            e["ivrs"] = json!([]);
        }
    }
    let mut body = kinds::body(o.kind, &source, &|_, id| ids.resolve(id));
    if same_org
        && o.id_in_org().is_none()
        && let Some(d) = o.archived.pointer("/division/id").and_then(Value::as_str)
    {
        body["division"] = json!({ "id": d });
    }
    body
}

/// Creates or updates the object, then its prompt resources and audio, or its rows.
async fn write(
    client: &GenesysClient,
    o: &mut ObjectRestore,
    ids: &mut Ids<'_>,
    options: &ArchitectOptions,
    same_org: bool,
    partial: bool,
) -> Result<(), ArchitectWriteError> {
    let mut body = body_now(o, ids, partial, same_org);
    let path = o.kind.path();
    let written = match o.id_in_org().map(str::to_string) {
        None => {
            let w = client.architect_create(path, &o.name, &body).await?;
            let id = w
                .object
                .get("id")
                .and_then(Value::as_str)
                .ok_or(ArchitectWriteError::Malformed {
                    what: format!("creating {} {:?}", o.kind.as_str(), o.name),
                    field: "id",
                })?
                .to_string();
            o.new_id = Some(id.clone());
            ids.created.insert(o.id.clone(), id);
            w
        }
        Some(id) => {
            let query: &[(&str, &str)] = match o.kind {
                ArchitectKind::DataTables => &[("expand", "schema")],
                _ => &[],
            };
            let now = client.architect_get(path, &id, query).await?;
            kinds::keep_org_fields(o.kind, &mut body, &now);
            if kinds::versioned(o.kind) {
                body["version"] = now.get("version").cloned().unwrap_or(json!(1));
            }
            if changed(o.kind, &body, &now) {
                client.architect_update(path, &id, &body).await?
            } else {
                Written {
                    object: now,
                    settled_by_reading: false,
                }
            }
        }
    };
    note_settled(o, &written);
    let id = o.id_in_org().unwrap_or_default().to_string();
    match o.kind {
        ArchitectKind::Prompts => write_resources(client, o, &id, options).await,
        ArchitectKind::DataTables => write_rows(client, o, &id, options.prune_rows).await,
        _ => Ok(()),
    }
}

/// True when what would be written differs from what the org holds.
fn changed(kind: ArchitectKind, body: &Value, now: &Value) -> bool {
    let mut mine = body.clone();
    if let Some(m) = mine.as_object_mut() {
        m.remove("version");
        m.remove("division");
    }
    mine != kinds::body(kind, now, &|_, _| None)
}

fn note_settled(o: &mut ObjectRestore, w: &Written) {
    if w.settled_by_reading {
        o.notes
            .push("the write got no clear answer; reading it back showed it had happened (not resent)".into());
    }
}

/// The prompt's resources: each archived language added or its text updated, and its audio
/// uploaded (then waited for until transcoded) where the org's differs or is missing.
async fn write_resources(
    client: &GenesysClient,
    o: &mut ObjectRestore,
    prompt_id: &str,
    options: &ArchitectOptions,
) -> Result<(), ArchitectWriteError> {
    let archived: Vec<Value> = o
        .archived
        .get("resources")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for r in archived {
        let lang = r
            .get("language")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let body = json!({
            "language": lang,
            "ttsString": r.get("ttsString").cloned().unwrap_or(Value::Null),
            "text": r.get("text").cloned().unwrap_or(Value::Null),
        });
        let org = client.prompt_resource_state(prompt_id, &lang).await?;
        let org = match org {
            None => Some(client.create_prompt_resource(prompt_id, &body).await?.object),
            Some(t) if t.get("ttsString") != body.get("ttsString") || t.get("text") != body.get("text") => {
                client.update_prompt_resource(prompt_id, &lang, &body).await?;
                Some(t)
            }
            Some(t) => Some(t),
        };
        let Some(audio) = o.audio.get(&lang).cloned() else {
            continue;
        };
        if org.as_ref().is_some_and(|t| !audio_needed(&r, t)) {
            continue;
        }
        client.upload_prompt_audio(prompt_id, &lang, audio).await?;
        client
            .wait_transcoded(prompt_id, &lang, options.transcode_polls)
            .await?;
        o.notes.push(format!("audio {lang} uploaded and transcoded"));
    }
    Ok(())
}

/// The table's rows: missing ones added (POST), differing ones replaced (PUT), rows only the org
/// holds deleted with `--prune-rows`, else left alone.
async fn write_rows(
    client: &GenesysClient,
    o: &mut ObjectRestore,
    table: &str,
    prune: bool,
) -> Result<(), ArchitectWriteError> {
    if o.new_id.is_some() {
        o.target_rows = BTreeMap::new();
    }
    let (add, update, extra) = row_diff(o);
    let rows: BTreeMap<String, Value> = o
        .rows
        .iter()
        .flatten()
        .filter_map(|r| Some((row_key(r)?, r.clone())))
        .collect();
    let mut settled = 0;
    for (key, exists) in add.iter().map(|k| (k, false)).chain(update.iter().map(|k| (k, true))) {
        settled += u32::from(client.write_datatable_row(table, key, rows.get(key), exists).await?);
    }
    if prune {
        for key in &extra {
            settled += u32::from(client.write_datatable_row(table, key, None, true).await?);
        }
    }
    o.notes.push(format!(
        "rows: {} added, {} updated, {} {}",
        add.len(),
        update.len(),
        extra.len(),
        if prune { "deleted" } else { "only in the org left alone" }
    ));
    if settled > 0 {
        o.notes.push(format!(
            "{settled} row write(s) got no clear answer; reading back showed they had happened (not resent)"
        ));
    }
    Ok(())
}
