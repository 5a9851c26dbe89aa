//! The write side of the simulated org, as the Architect Scripting SDK drives it: create a flow,
//! lock it (checkout) or unlock it, save a configuration as a new version, check in and publish
//! through asynchronous operations that complete after `operation_delay` and are followed on the
//! flow's `currentOperation`. Locks belong to an OAuth client (`lockedClient`) or a user
//! (`lockedUser`, set by tests); names are unique per type and follow Architect's rules; bodies
//! over 6,291,456 bytes are refused. Knobs make check-in or publish fail with an error code.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::data::{ConfigSource, SimFlow, flow_meta, uuid_from};
use super::{SimState, admit, error_response, json_response};
use crate::genesys::write::name_problem;

/// The largest configuration a save accepts.
pub const MAX_BODY: usize = 6_291_456;

fn conflict(code: &str, message: &str) -> Response {
    error_response(StatusCode::CONFLICT, code, message)
}

fn bad(code: &str, message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, code, message)
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
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return bad("bad.request", "The request body is not JSON");
    };
    let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let (name, flow_type) = (field("name"), field("type").to_uppercase());
    if let Some(why) = name_problem(&name) {
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
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0xC0FFEE ^ n ^ org.flows.len() as u64);
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
        "checkin" => operation(s.clone(), &id, "CHECKIN", None),
        "publish" => operation(s.clone(), &id, "PUBLISH", version),
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
    with_flow(&s, &id, |f| {
        if !held_by_me(&s, f) {
            return conflict(
                "architect.flow.not.locked",
                "The flow must be checked out (locked) by the caller to be saved",
            );
        }
        let next = f.save_version(body);
        json_response(json!({"id": next, "name": next, "configurationUri": format!("/api/v2/flows/{id}/versions/{next}/configuration")}).to_string())
    })
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
                finish(f, action, version.as_deref());
            }
        }
        f.meta["currentOperation"] = op;
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
