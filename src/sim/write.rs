//! The write side of the simulated org, as the Architect Scripting SDK drives it: create a flow,
//! lock it (checkout) or unlock it, save a configuration as a new version, check in and publish
//! through asynchronous operations that complete after `operation_delay` and are followed on the
//! flow's `currentOperation`. Locks belong to an OAuth client (`lockedClient`) or a user
//! (`lockedUser`, set by tests); names are unique per type and follow Architect's rules; bodies
//! over 6,291,456 bytes are refused. Knobs make check-in or publish fail with an error code, make
//! a write happen and then answer 500 or never answer, refuse saves, end a publish in SUCCESS
//! without moving `publishedVersion`, replace `currentOperation` with a later VALIDATE, and deny
//! `architect:flow:unlock`. Path segments are matched case-insensitively, as the API does.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::data::{ConfigSource, SimFlow, flow_meta, uuid_from};
use super::{SimState, WriteAnswer, WriteStep, admit, error_response, json_response};

/// The largest configuration a save accepts.
pub const MAX_BODY: usize = 6_291_456;

fn conflict(code: &str, message: &str) -> Response {
    error_response(StatusCode::CONFLICT, code, message)
}

fn bad(code: &str, message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, code, message)
}

/// Architect's flow name rules, as the org enforces them (the sim's own copy, so a mistake in
/// the client's copy cannot hide here).
fn refused_name(name: &str) -> Option<&'static str> {
    let trimmed = name.trim();
    if trimmed.is_empty() || !trimmed.chars().any(|c| c.is_alphanumeric()) {
        Some("The flow name must contain at least one letter or number")
    } else if trimmed.contains('/') {
        Some("The flow name cannot contain a forward slash")
    } else if trimmed.to_lowercase().ends_with("-debug") {
        Some("The flow name cannot end with -debug")
    } else if trimmed.chars().count() > 200 {
        Some("The flow name cannot be longer than 200 characters")
    } else {
        None
    }
}

/// The injected fault for the first write of `step` still queued, if any (spent once).
fn take_fault(s: &SimState, step: WriteStep) -> Option<WriteAnswer> {
    let mut faults = s.write_faults.lock().unwrap_or_else(|e| e.into_inner());
    let i = faults.iter().position(|f| f.step == step)?;
    Some(faults.remove(i).answer)
}

/// What the client gets for a write that happened: `ok`, or the injected fault's answer.
async fn answer_after_write(s: &SimState, step: WriteStep, ok: Response) -> Response {
    if ok.status() != StatusCode::OK {
        return ok;
    }
    match take_fault(s, step) {
        None => ok,
        Some(WriteAnswer::Error500) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal.server.error",
            "The server encountered an unexpected error",
        ),
        Some(WriteAnswer::Never) => {
            // Hold the answer far past a client's request timeout (60 s by default).
            tokio::time::sleep(std::time::Duration::from_secs(120)).await;
            ok
        }
        Some(WriteAnswer::WithoutId) => json_response("{}".into()),
    }
}

/// Every locked flow's id and holder (`client ID` or `user NAME`).
pub(super) fn locks(flows: &[SimFlow]) -> Vec<(String, String)> {
    flows
        .iter()
        .filter_map(|f| {
            let user = f.meta.pointer("/lockedUser/name").and_then(Value::as_str);
            let client = f.meta.pointer("/lockedClient/id").and_then(Value::as_str);
            let holder = user
                .map(|u| format!("user {u}"))
                .or_else(|| client.map(|c| format!("client {c}")))?;
            Some((f.id().to_string(), holder))
        })
        .collect()
}

/// `GET /sim/locks`: the lock table, for tests and people.
pub(super) async fn lock_table(State(s): State<Arc<SimState>>) -> Response {
    let table: Vec<Value> = locks(&s.org().flows)
        .into_iter()
        .map(|(id, holder)| json!({"flow": id, "holder": holder}))
        .collect();
    json_response(Value::Array(table).to_string())
}

/// Lower-cases the fixed segments of a request path (`checkOut`, `latestConfiguration`), so
/// routing matches them case-insensitively as the API does; ids are left alone.
pub(super) fn lowercase_known_segments(mut req: axum::extract::Request) -> axum::extract::Request {
    const KNOWN: &[&str] = &[
        "api",
        "v2",
        "flows",
        "actions",
        "checkout",
        "unlock",
        "checkin",
        "publish",
        "versions",
        "configuration",
        "latestconfiguration",
        "organizations",
        "me",
        "divisionviews",
        "export",
        "jobs",
    ];
    let path = req.uri().path();
    let lowered: Vec<String> = path
        .split('/')
        .map(|seg| {
            let low = seg.to_ascii_lowercase();
            if KNOWN.contains(&low.as_str()) {
                low
            } else {
                seg.to_string()
            }
        })
        .collect();
    let lowered = lowered.join("/");
    if lowered != path {
        let with_query = match req.uri().query() {
            Some(q) => format!("{lowered}?{q}"),
            None => lowered,
        };
        if let Ok(uri) = with_query.parse() {
            *req.uri_mut() = uri;
        }
    }
    req
}

async fn admit_write(s: &SimState, headers: &HeaderMap) -> Result<(), Response> {
    admit(s, headers).await?;
    s.stats.write_requests.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

fn flow_param(query: Option<String>) -> Option<(String, Option<String>)> {
    let mut flow = None;
    let mut version = None;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "flow" => flow = Some(v.into_owned()),
            "version" => version = Some(v.into_owned()),
            _ => {}
        }
    }
    flow.map(|f| (f, version))
}

/// `POST /api/v2/flows`: a new flow, locked to its creator, with no saved version yet.
pub(super) async fn create(State(s): State<Arc<SimState>>, headers: HeaderMap, body: String) -> Response {
    if let Err(r) = admit_write(&s, &headers).await {
        return r;
    }
    let created = create_in_org(&s, &body);
    answer_after_write(&s, WriteStep::Create, created).await
}

/// Creates the flow `body` describes, or the API's refusal.
fn create_in_org(s: &SimState, body: &str) -> Response {
    let Ok(body) = serde_json::from_str::<Value>(body) else {
        return bad("bad.request", "The request body is not JSON");
    };
    let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let (name, flow_type) = (field("name"), field("type").to_uppercase());
    if let Some(why) = refused_name(&name) {
        return bad("architect.flow.invalid.name", why);
    }
    if flow_type.is_empty() {
        return bad("bad.request", "type is required");
    }
    let mut org = s.org();
    let taken = org.flows.iter().any(|f| {
        f.flow_type() == flow_type
            && f.meta
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(&name))
    });
    if taken {
        return conflict(
            "architect.flow.already.exists",
            &format!("A flow of type {flow_type} named {name:?} already exists"),
        );
    }
    let n = s.stats.write_requests.load(Ordering::Relaxed);
    // Names are unique per type, so hashing them in keeps concurrent creates from sharing an id.
    let seed = std::hash::BuildHasher::hash_one(
        &std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default(),
        (0xC0FFEE_u64, n, org.flows.len(), &name, &flow_type),
    );
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let id = uuid_from(&mut rng);
    let division = body
        .pointer("/division/id")
        .and_then(Value::as_str)
        .unwrap_or("7e0b6c5a-0000-4000-a000-000000000001");
    let mut meta = flow_meta(&id, &name, &flow_type, (division, "Home"), 1);
    if let Some(m) = meta.as_object_mut() {
        for key in ["publishedVersion", "savedVersion", "checkedInVersion"] {
            m.remove(key);
        }
        m.insert("description".into(), field("description").into());
        m.insert(
            "lockedClient".into(),
            json!({"id": s.config.client_id, "name": s.config.client_id}),
        );
    }
    let flow = SimFlow::new(meta.clone(), ConfigSource::Literal(String::new()));
    org.flows.push(flow);
    org.reindex();
    json_response(meta.to_string())
}

/// `POST /api/v2/flows/actions/checkout?flow=ID`, `…/unlock?flow=ID`, `…/checkin`, `…/publish`.
pub(super) async fn action(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(action): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(r) = admit_write(&s, &headers).await {
        return r;
    }
    let Some((id, version)) = flow_param(query) else {
        return bad("bad.request", "the flow query parameter is required");
    };
    match action.to_ascii_lowercase().as_str() {
        "checkout" => lock(&s, &id),
        "unlock" => unlock(&s, &id),
        "checkin" => {
            let started = operation(s.clone(), &id, "CHECKIN", None);
            answer_after_write(&s, WriteStep::Checkin, started).await
        }
        "publish" => {
            let started = operation(s.clone(), &id, "PUBLISH", version);
            answer_after_write(&s, WriteStep::Publish, started).await
        }
        other => error_response(StatusCode::NOT_FOUND, "not.found", &format!("no action {other}")),
    }
}

/// Runs `change` on flow `id` if it exists (and is not deleted); the response otherwise.
fn with_flow(s: &SimState, id: &str, change: impl FnOnce(&mut SimFlow) -> Response) -> Response {
    let mut org = s.org();
    match org.by_id.get(id).copied() {
        Some(i) if !s.config.deleted_after_listing.contains(id) => change(&mut org.flows[i]),
        _ => error_response(
            StatusCode::NOT_FOUND,
            "not.found",
            &format!("Could not find the flow with id {id}"),
        ),
    }
}

/// Who holds the flow's lock, if anyone: `Ok(())` when free or held by this client.
fn lock_holder(s: &SimState, flow: &SimFlow) -> Result<(), String> {
    if let Some(user) = flow
        .meta
        .get("lockedUser")
        .and_then(|u| u.get("name"))
        .and_then(Value::as_str)
    {
        return Err(format!("user {user}"));
    }
    match flow.meta.pointer("/lockedClient/id").and_then(Value::as_str) {
        Some(c) if c != s.config.client_id => Err(format!("OAuth client {c}")),
        _ => Ok(()),
    }
}

fn held_by_me(s: &SimState, flow: &SimFlow) -> bool {
    flow.meta.pointer("/lockedClient/id").and_then(Value::as_str) == Some(s.config.client_id.as_str())
}

fn lock(s: &SimState, id: &str) -> Response {
    with_flow(s, id, |f| match lock_holder(s, f) {
        Err(who) => conflict("architect.flow.locked", &format!("The flow is locked by {who}")),
        Ok(()) => {
            f.meta["lockedClient"] = json!({"id": s.config.client_id, "name": s.config.client_id});
            json_response(f.meta.to_string())
        }
    })
}

fn unlock(s: &SimState, id: &str) -> Response {
    if s.config.unlock_denied {
        return error_response(
            StatusCode::FORBIDDEN,
            "missing.permissions",
            "You are missing the following permission: architect:flow:unlock",
        );
    }
    with_flow(s, id, |f| {
        if let Some(m) = f.meta.as_object_mut() {
            m.remove("lockedClient");
            m.remove("lockedUser");
        }
        json_response(f.meta.to_string())
    })
}

/// `POST /api/v2/flows/{id}/versions`: saves the body as the flow's next version.
pub(super) async fn save(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    if let Err(r) = admit_write(&s, &headers).await {
        return r;
    }
    if body.len() > MAX_BODY {
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request.entity.too.large",
            "The configuration is larger than 6,291,456 bytes",
        );
    }
    if serde_json::from_str::<Value>(&body).is_err() {
        return bad("bad.request", "The configuration is not JSON");
    }
    let saved = with_flow(&s, &id, |f| {
        if !held_by_me(&s, f) {
            return conflict(
                "architect.flow.not.locked",
                "The flow must be checked out (locked) by the caller to be saved",
            );
        }
        if let Some(code) = &s.config.refuse_save {
            return bad(code, &format!("The configuration was refused: {code}"));
        }
        let next = f.save_version(body);
        json_response(json!({"id": next, "name": next, "configurationUri": format!("/api/v2/flows/{id}/versions/{next}/configuration")}).to_string())
    });
    answer_after_write(&s, WriteStep::Save, saved).await
}

/// Starts an asynchronous check-in or publish; it completes after `operation_delay`.
fn operation(s: Arc<SimState>, id: &str, action: &'static str, version: Option<String>) -> Response {
    let n = s.stats.write_requests.load(Ordering::Relaxed);
    let op_id = format!("0p000000-0000-4000-a000-{n:012x}");
    let started = with_flow(&s, id, |f| {
        if !held_by_me(&s, f) && action == "CHECKIN" {
            return conflict(
                "architect.flow.not.locked",
                "ARCHITECT_FLOW_NOT_LOCKED: check the flow out first",
            );
        }
        if f.saved_version().is_none() {
            return bad(
                "architect.flow.cannot.checkin.missing.config",
                "ARCHITECT_CANNOT_CHECKIN_MISSING_CONFIG",
            );
        }
        let op = json!({"id": op_id, "actionName": action, "actionStatus": "STARTED", "complete": false});
        f.meta["currentOperation"] = op.clone();
        json_response(op.to_string())
    });
    if started.status() != StatusCode::OK {
        return started;
    }
    let (flow_id, delay) = (id.to_string(), s.config.operation_delay);
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let failure = match action {
            "CHECKIN" => s.config.fail_checkin.clone(),
            _ => (s.config.fail_publish.clone()).or_else(|| super::dependencies::publish_problem(&s, &flow_id)),
        };
        let mut org = s.org();
        let Some(i) = org.by_id.get(&flow_id).copied() else {
            return;
        };
        let f = &mut org.flows[i];
        let mut op = json!({"id": op_id, "actionName": action, "complete": true});
        match failure {
            Some(code) => {
                op["actionStatus"] = "FAILURE".into();
                op["errorCode"] = code.clone().into();
                op["errorMessage"] = format!("{action} failed: {code}").into();
            }
            None => {
                op["actionStatus"] = "SUCCESS".into();
                let moved = !(action == "PUBLISH" && s.config.publish_without_version);
                if moved {
                    finish(f, action, version.as_deref());
                } else if let Some(m) = f.meta.as_object_mut() {
                    m.remove("lockedClient");
                }
            }
        }
        f.meta["currentOperation"] = op;
        if s.config.validate_after_operation {
            let n = s.stats.write_requests.load(Ordering::Relaxed);
            f.meta["currentOperation"] = json!({
                "id": format!("0v000000-0000-4000-a000-{n:012x}"),
                "actionName": "VALIDATE", "actionStatus": "SUCCESS", "complete": true
            });
        }
    });
    started
}

/// What a successful operation does to the flow.
fn finish(f: &mut SimFlow, action: &str, version: Option<&str>) {
    let saved = f.meta.get("savedVersion").cloned().unwrap_or(Value::Null);
    if let Some(m) = f.meta.as_object_mut() {
        m.remove("lockedClient");
        m.insert("checkedInVersion".into(), saved.clone());
        if action == "PUBLISH" {
            let published = match version {
                Some(v) if saved.get("id").and_then(Value::as_str) != Some(v) => json!({"id": v, "name": v}),
                _ => saved,
            };
            m.insert("publishedVersion".into(), published);
        }
    }
    if action == "PUBLISH" && f.published_version() == f.saved_version() {
        f.published = None;
    }
}

/// `DELETE /api/v2/flows/{id}`.
pub(super) async fn delete(State(s): State<Arc<SimState>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = admit_write(&s, &headers).await {
        return r;
    }
    if s.org().delete(&id) {
        let mut resp = json_response(String::new());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        resp
    } else {
        error_response(
            StatusCode::NOT_FOUND,
            "not.found",
            &format!("Could not find the flow with id {id}"),
        )
    }
}
