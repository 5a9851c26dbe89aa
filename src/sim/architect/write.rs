//! The write side of the Architect objects: `POST` a kind's collection creates (names unique per
//! kind, 409 otherwise; prompt names as Architect allows them), `PUT …/{id}` updates — schedules,
//! schedule groups, emergency groups and IVRs carry a `version` that must be the current one (409
//! otherwise) — and every reference must resolve: schedule groups' schedules, IVRs' flows and
//! schedule group, emergency groups' flows and IVRs (400 otherwise); a DNIS another IVR holds is
//! refused (400); a data table's schema keeps a string `key` and never loses a field. Prompt
//! resources are created, updated and given a presigned upload. Outcomes are created
//! asynchronously (202; listed after `outcome_visibility_delay`). `object_write_faults` make the
//! first write of a kind happen and then answer an error status.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{admit_kind, base_url, catalogue, lock, media, not_found};
use crate::sim::data::uuid_from;
use crate::sim::objects::{ObjectKind, SimObject, SimObjects};
use crate::sim::{SimState, error_response, json_response};

fn bad(message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, "bad.request", message)
}

fn conflict(code: &str, message: &str) -> Response {
    error_response(StatusCode::CONFLICT, code, message)
}

/// True for the kinds whose updates carry a `version`.
fn versioned(kind: ObjectKind) -> bool {
    matches!(
        kind,
        ObjectKind::Schedule | ObjectKind::ScheduleGroup | ObjectKind::EmergencyGroup | ObjectKind::Ivr
    )
}

/// What a client gets for a write that happened: `ok`, or the injected fault's status (spent once).
pub(super) fn answer_after_write(s: &SimState, kind: ObjectKind, ok: Response) -> Response {
    if !ok.status().is_success() {
        return ok;
    }
    let fault = {
        let mut faults = lock(&s.architect.write_faults);
        faults.iter().position(|(k, _)| *k == kind).map(|i| faults.remove(i).1)
    };
    match fault {
        None => ok,
        Some(status) => error_response(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "internal.server.error",
            "The server encountered an unexpected error",
        ),
    }
}

async fn admit_write(s: &SimState, headers: &HeaderMap, kind: ObjectKind, create: bool) -> Result<(), Response> {
    admit_kind(s, headers, kind, &kind.write_permission(create)).await?;
    s.stats.write_requests.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Architect's prompt names: a letter first, then letters, digits and underscores.
fn bad_prompt_name(name: &str) -> bool {
    let mut chars = name.chars();
    !chars.next().is_some_and(|c| c.is_ascii_alphabetic()) || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn ref_ids<'a>(v: &'a Value, pointer: &str) -> Vec<&'a str> {
    match v.pointer(pointer) {
        Some(Value::Array(a)) => a.iter().filter_map(|r| r["id"].as_str()).collect(),
        Some(r) => r["id"].as_str().into_iter().collect(),
        None => Vec::new(),
    }
}

/// Why `body` (an object of `kind` with id `id`) cannot be stored, if it cannot.
fn invalid(s: &SimState, objects: &SimObjects, kind: ObjectKind, id: &str, body: &Value) -> Option<String> {
    let flow_exists = |f: &str| s.org().find(f).is_some();
    let missing = |k: ObjectKind, ids: Vec<&str>| {
        ids.into_iter()
            .find(|i| objects.find(k, i).is_none())
            .map(|i| format!("the {} with id {i} does not exist", k.manifest_key()))
    };
    match kind {
        ObjectKind::UserPrompt if bad_prompt_name(body["name"].as_str().unwrap_or_default()) => {
            Some("a prompt name must start with a letter and hold only letters, digits and underscores".into())
        }
        ObjectKind::DataTable => table_problem(objects.find(kind, id), body),
        ObjectKind::Schedule if !(body["start"].is_string() && body["end"].is_string()) => {
            Some("a schedule needs start and end".into())
        }
        ObjectKind::ScheduleGroup => ["/openSchedules", "/closedSchedules", "/holidaySchedules"]
            .iter()
            .find_map(|p| missing(ObjectKind::Schedule, ref_ids(body, p))),
        ObjectKind::Ivr => ["/openHoursFlow", "/closedHoursFlow", "/holidayHoursFlow"]
            .iter()
            .flat_map(|p| ref_ids(body, p))
            .find(|f| !flow_exists(f))
            .map(|f| format!("the flow with id {f} does not exist"))
            .or_else(|| missing(ObjectKind::ScheduleGroup, ref_ids(body, "/scheduleGroup")))
            .or_else(|| dnis_taken(objects, id, body)),
        ObjectKind::EmergencyGroup => {
            let calls = body["emergencyCallFlows"].as_array().cloned().unwrap_or_default();
            calls.iter().find_map(|c| {
                ref_ids(c, "/emergencyFlow")
                    .into_iter()
                    .find(|f| !flow_exists(f))
                    .map(|f| format!("the flow with id {f} does not exist"))
                    .or_else(|| missing(ObjectKind::Ivr, ref_ids(c, "/ivrs")))
            })
        }
        _ => None,
    }
}

fn table_problem(current: Option<&SimObject>, body: &Value) -> Option<String> {
    let schema = &body["schema"];
    if schema.pointer("/properties/key/type").and_then(Value::as_str) != Some("string") {
        return Some("a data table's schema needs a string property `key`".into());
    }
    let kept = schema["properties"].as_object()?;
    let old = current.and_then(|c| c.body["schema"]["properties"].as_object().cloned())?;
    old.keys()
        .find(|k| !kept.contains_key(*k))
        .map(|k| format!("the field {k} cannot be removed from a data table"))
}

fn dnis_taken(objects: &SimObjects, id: &str, body: &Value) -> Option<String> {
    let wanted: Vec<&str> = body["dnis"].as_array()?.iter().filter_map(Value::as_str).collect();
    objects.of_kind(ObjectKind::Ivr).filter(|o| o.id != id).find_map(|o| {
        let held = o.body["dnis"].as_array()?;
        let taken = wanted.iter().find(|d| held.iter().any(|h| h == **d))?;
        Some(format!("dnis {taken} already in use by IVR {:?}", o.name))
    })
}

fn name_taken(objects: &SimObjects, kind: ObjectKind, id: &str, name: &str) -> bool {
    objects
        .of_kind(kind)
        .any(|o| o.id != id && o.name.eq_ignore_ascii_case(name))
}

/// How many objects of a kind an org may hold (outcomes 100, milestones 1,000).
fn limit(kind: ObjectKind) -> Option<usize> {
    match kind {
        ObjectKind::FlowOutcome => Some(100),
        ObjectKind::FlowMilestone => Some(1_000),
        _ => None,
    }
}

/// `DELETE …/{id}` (every Architect kind but outcomes, which cannot be deleted).
pub(super) async fn delete(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    kind: ObjectKind,
) -> Response {
    let permission = kind.write_permission(false).replace(":edit", ":delete");
    if let Err(r) = admit_kind(&s, &headers, kind, &permission).await {
        return r;
    }
    s.stats.write_requests.fetch_add(1, Ordering::Relaxed);
    let mut objects = s.objects();
    let Some(name) = objects.find(kind, &id).map(|o| o.name.clone()) else {
        return not_found(kind, &id);
    };
    objects.remove_named(kind, &name);
    drop(objects);
    answer_after_write(&s, kind, StatusCode::NO_CONTENT.into_response())
}

/// The body a create stores: what was sent, with the server's fields.
fn new_body(kind: ObjectKind, id: &str, mut body: Value) -> Value {
    if let Some(m) = body.as_object_mut() {
        m.remove("selfUri");
    }
    body["id"] = id.into();
    if versioned(kind) {
        body["version"] = 1.into();
        body["state"] = "active".into();
    }
    match kind {
        ObjectKind::UserPrompt => body["resources"] = json!([]),
        ObjectKind::DataTable | ObjectKind::FlowOutcome | ObjectKind::FlowMilestone if body["division"].is_null() => {
            body["division"] = json!({"id": "7e0b6c5a-0000-4000-a000-000000000001", "name": "Home"});
        }
        _ => {}
    }
    body
}

/// `POST` a kind's collection.
pub(super) async fn create(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    body: String,
    kind: ObjectKind,
) -> Response {
    if let Err(r) = admit_write(&s, &headers, kind, true).await {
        return r;
    }
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return bad("The request body is not JSON");
    };
    let Some(name) = body["name"]
        .as_str()
        .filter(|n| !n.trim().is_empty())
        .map(str::to_string)
    else {
        return bad("name is required");
    };
    let id = uuid_from(&mut rand::SeedableRng::from_rng(&mut rand::rng()));
    let body = new_body(kind, &id, body);
    let stored = {
        let mut objects = s.objects();
        if let Some(limit) = limit(kind).filter(|l| objects.of_kind(kind).count() >= *l) {
            return bad(&format!("an org holds at most {limit} {}s", kind.manifest_key()));
        }
        if name_taken(&objects, kind, &id, &name) {
            return answer_after_write(
                &s,
                kind,
                conflict(
                    "general.conflict",
                    &format!("A {} named {name:?} already exists", kind.manifest_key()),
                ),
            );
        }
        if let Some(why) = invalid(&s, &objects, kind, &id, &body) {
            return bad(&why);
        }
        objects.objects.push(SimObject {
            kind,
            id: id.clone(),
            name,
            body: body.clone(),
        });
        if kind == ObjectKind::DataTable {
            objects.rows.insert(id.clone(), Vec::new());
        }
        body
    };
    let mut served = stored;
    served["selfUri"] = format!("{}/{id}", kind.path()).into();
    let mut resp = json_response(served.to_string());
    if kind == ObjectKind::FlowOutcome {
        let at = Instant::now() + s.config.outcome_visibility_delay;
        lock(&s.architect.visible_at).insert(id, at);
        *resp.status_mut() = StatusCode::ACCEPTED;
    }
    answer_after_write(&s, kind, resp)
}

/// `PUT …/{id}`.
pub(super) async fn update(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
    kind: ObjectKind,
) -> Response {
    if let Err(r) = admit_write(&s, &headers, kind, false).await {
        return r;
    }
    let Ok(mut body) = serde_json::from_str::<Value>(&body) else {
        return bad("The request body is not JSON");
    };
    let mut objects = s.objects();
    let Some(current) = objects.find(kind, &id).cloned() else {
        return not_found(kind, &id);
    };
    if versioned(kind) {
        let current_version = current.body["version"].as_u64().unwrap_or(1);
        match body["version"].as_u64() {
            None => return bad("version is required"),
            Some(v) if v != current_version => {
                return conflict(
                    "general.conflict",
                    &format!(
                        "version {v} is not the current version {current_version} of {} {id}",
                        kind.manifest_key()
                    ),
                );
            }
            Some(v) => body["version"] = (v + 1).into(),
        }
    }
    let name = body["name"].as_str().unwrap_or(&current.name).to_string();
    if name_taken(&objects, kind, &id, &name) {
        return conflict(
            "general.conflict",
            &format!("A {} named {name:?} already exists", kind.manifest_key()),
        );
    }
    body["id"] = id.clone().into();
    body["name"] = name.clone().into();
    if let Some(m) = body.as_object_mut() {
        m.remove("selfUri");
    }
    if kind == ObjectKind::UserPrompt {
        body["resources"] = current.body["resources"].clone();
    }
    if let Some(why) = invalid(&s, &objects, kind, &id, &body) {
        return bad(&why);
    }
    if let Some(o) = objects.find_mut(kind, &id) {
        o.name = name;
        o.body = body.clone();
    }
    drop(objects);
    body["selfUri"] = format!("{}/{id}", kind.path()).into();
    answer_after_write(&s, kind, json_response(body.to_string()))
}

const PROMPT: ObjectKind = ObjectKind::UserPrompt;

/// `POST /api/v2/architect/prompts/{id}/resources` `{language, ttsString, text}`.
pub(super) async fn create_resource(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    if let Err(r) = admit_write(&s, &headers, PROMPT, false).await {
        return r;
    }
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return bad("The request body is not JSON");
    };
    let Some(lang) = body["language"]
        .as_str()
        .map(str::to_lowercase)
        .filter(|l| !l.is_empty())
    else {
        return bad("language is required");
    };
    let mut objects = s.objects();
    let Some(p) = objects.find_mut(PROMPT, &id) else {
        return not_found(PROMPT, &id);
    };
    let name = p.name.clone();
    let Some(resources) = p.body["resources"].as_array_mut() else {
        return bad("the prompt holds no resource list");
    };
    if resources.iter().any(|r| r["language"] == lang.as_str()) {
        return conflict(
            "general.conflict",
            &format!("prompt {id} already has a resource for {lang}"),
        );
    }
    let mut r = catalogue::resource(&id, &name, &lang, "created", None);
    for k in ["ttsString", "text"] {
        r[k] = body.get(k).cloned().unwrap_or(Value::Null);
    }
    resources.push(r.clone());
    drop(objects);
    r["selfUri"] = format!("{}/{id}/resources/{lang}", PROMPT.path()).into();
    answer_after_write(&s, PROMPT, json_response(r.to_string()))
}

/// `PUT /api/v2/architect/prompts/{id}/resources/{language}` `{ttsString, text}`.
pub(super) async fn update_resource(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path((id, lang)): Path<(String, String)>,
    body: String,
) -> Response {
    if let Err(r) = admit_write(&s, &headers, PROMPT, false).await {
        return r;
    }
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return bad("The request body is not JSON");
    };
    let mut objects = s.objects();
    let found = objects.find_mut(PROMPT, &id).and_then(|p| {
        p.body["resources"]
            .as_array_mut()?
            .iter_mut()
            .find(|r| r["language"] == lang.as_str())
    });
    let Some(r) = found else {
        return not_found(PROMPT, &format!("{id}/resources/{lang}"));
    };
    for k in ["ttsString", "text"] {
        if let Some(v) = body.get(k) {
            r[k] = v.clone();
        }
    }
    let served = r.clone();
    drop(objects);
    answer_after_write(&s, PROMPT, json_response(served.to_string()))
}

/// `POST /api/v2/architect/prompts/{id}/resources/{language}/uploads` → `{url, headers}`.
pub(super) async fn request_upload(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path((id, lang)): Path<(String, String)>,
) -> Response {
    if let Err(r) = admit_write(&s, &headers, PROMPT, false).await {
        return r;
    }
    let exists = s
        .objects()
        .find(PROMPT, &id)
        .and_then(|p| {
            p.body["resources"]
                .as_array()?
                .iter()
                .find(|r| r["language"] == lang.as_str())
                .cloned()
        })
        .is_some();
    if !exists {
        return not_found(PROMPT, &format!("{id}/resources/{lang}"));
    }
    let target = media::upload_target(&s, &base_url(&headers), &id, &lang);
    answer_after_write(&s, PROMPT, json_response(target.to_string()))
}
