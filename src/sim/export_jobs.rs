//! Architect export jobs, as the simulated org serves them: `POST /api/v2/flows/export/jobs`
//! registers a job for flow versions, `GET …/export/jobs/{id}` reports Started a few times, then
//! Success with a signed `downloadUrl` (YAML for one flow, a zip for several, each entry named by
//! the `fileName` its request entry gave — letters, digits, `_`, `-` — or else by flow name only,
//! as a person would name them) or Failure. The knob `export_jobs_throttled` makes the first jobs
//! fail the way the real backend reports throttling, with the words it uses for a flow that is
//! really gone: "Could not find the flow with id '…' … Setting the Archy exit code to 107".

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::{SimFlow, SimState, admit, error_response, json_response};

/// One registered job.
#[derive(Debug, Clone)]
pub(super) struct Job {
    /// (flow id, version) pairs.
    flows: Vec<(String, String)>,
    /// The `fileName` of each entry, if given.
    file_names: Vec<Option<String>>,
    /// Polls still answered `Started`.
    polls_left: u32,
    /// Fails with the exit-code-107 disguise.
    throttled: bool,
}

/// `POST /api/v2/flows/export/jobs`.
pub(super) async fn register(State(s): State<Arc<SimState>>, headers: HeaderMap, body: String) -> Response {
    if let Err(r) = admit(&s, &headers).await {
        return r;
    }
    let bad = |m: &str| error_response(StatusCode::BAD_REQUEST, "bad.request", m);
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return bad("The request body is not JSON");
    };
    let (mut flows, mut file_names) = (Vec::new(), Vec::new());
    for item in body.get("flows").and_then(Value::as_array).into_iter().flatten() {
        let file_name = item.get("fileName").and_then(Value::as_str);
        if file_name
            .is_some_and(|n| n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        {
            return bad("fileName may only contain letters, digits, '_' and '-'");
        }
        file_names.push(file_name.map(str::to_string));
        let flow = item.get("flow").unwrap_or(item);
        let id = flow.get("id").and_then(Value::as_str);
        let version = flow
            .get("version")
            .or_else(|| item.get("version"))
            .and_then(Value::as_str);
        match (id, version) {
            (Some(id), Some(v)) => flows.push((id.to_string(), v.to_string())),
            _ => return bad("each entry of flows needs flow.id and flow.version"),
        }
    }
    if flows.is_empty() {
        return bad("flows must not be empty");
    }
    let n = s.stats.export_jobs.fetch_add(1, Ordering::Relaxed);
    let job = Job {
        flows,
        file_names,
        polls_left: s.config.export_job_polls,
        throttled: n < u64::from(s.config.export_jobs_throttled),
    };
    let id = format!("{:08x}-0000-4000-a000-{:012x}", n + 1, n + 1);
    let total = job.flows.len();
    if let Ok(mut jobs) = s.export_jobs.lock() {
        jobs.insert(id.clone(), job);
    }
    json_response(json!({"id": id, "status": "Registered", "totalFlows": total}).to_string())
}

/// `GET /api/v2/flows/export/jobs/{id}`.
pub(super) async fn status(State(s): State<Arc<SimState>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = admit(&s, &headers).await {
        return r;
    }
    let job = match s.export_jobs.lock() {
        Ok(mut jobs) => match jobs.get_mut(&id) {
            Some(job) => {
                let snapshot = job.clone();
                job.polls_left = job.polls_left.saturating_sub(1);
                snapshot
            }
            None => return error_response(StatusCode::NOT_FOUND, "not.found", "Export job not found"),
        },
        Err(_) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal", "lock"),
    };
    let base = json!({"id": id, "command": "Export", "selfUri": format!("/api/v2/flows/export/jobs/{id}")});
    let mut body = base;
    if job.polls_left > 0 {
        body["status"] = "Started".into();
        return json_response(body.to_string());
    }
    let not_found = |(fid, v): &(String, String)| {
        format!("Could not find the flow with id '{fid}' and version '{v}'. Setting the Archy exit code to 107")
    };
    let failure = if job.throttled {
        Some(not_found(&job.flows[0]))
    } else {
        job.flows
            .iter()
            .find(|(fid, v)| lookup(&s, fid).and_then(|f| f.version_configuration(v)).is_none())
            .map(not_found)
    };
    match failure {
        Some(text) => {
            body["status"] = "Failure".into();
            body["messages"] = json!([{"type": "Error", "text": text}]);
        }
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1");
            body["status"] = "Success".into();
            body["downloadUrl"] =
                format!("http://{host}/sim/downloads/{id}?X-Amz-Expires=3600&X-Amz-Signature=simulated").into();
            body["messages"] = json!([]);
        }
    }
    json_response(body.to_string())
}

fn lookup(s: &SimState, id: &str) -> Option<SimFlow> {
    s.org().find(id).cloned()
}

/// `GET /sim/downloads/{id}`: the job's result, served like a presigned object (no auth; a
/// bearer token sent here is refused, as S3 refuses a second authentication method).
pub(super) async fn download(State(s): State<Arc<SimState>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    s.stats.downloads.fetch_add(1, Ordering::Relaxed);
    if headers.contains_key(header::AUTHORIZATION) {
        let mut resp = Response::new(Body::from(
            "<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>",
        ));
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        return resp;
    }
    let Some(job) = s.export_jobs.lock().ok().and_then(|j| j.get(&id).cloned()) else {
        let mut resp = Response::new(Body::from("<Error><Code>NoSuchKey</Code></Error>"));
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return resp;
    };
    let files: Vec<(String, String)> = job
        .flows
        .iter()
        .zip(&job.file_names)
        .filter_map(|((fid, v), given)| {
            let f = lookup(&s, fid)?;
            let name = given.as_ref().map_or_else(|| file_name(&f, v), |n| format!("{n}.yaml"));
            Some((name, archy_yaml(&f, v)))
        })
        .collect();
    let (bytes, content_type) = if let [(_, yaml)] = files.as_slice() {
        (yaml.clone().into_bytes(), "application/x-yaml")
    } else {
        (zip_of(&files), "application/zip")
    };
    let mut resp = Response::new(Body::from(bytes));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// `<name>_v<version>.yaml`, as Archy names exports (no id: two flows of one name clash).
fn file_name(flow: &SimFlow, version: &str) -> String {
    let name = flow.meta.get("name").and_then(Value::as_str).unwrap_or("flow");
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}_v{}.yaml", version.replace('.', "-"))
}

/// A small Archy-shaped YAML document for one flow version.
pub fn archy_yaml(flow: &SimFlow, version: &str) -> String {
    let meta = &flow.meta;
    let field = |k: &str| meta.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let key = field("type").to_lowercase();
    let config = flow.version_configuration(version).unwrap_or_default();
    let digest =
        hex::encode(&sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(config.as_bytes()))[..8]);
    format!(
        "{key}:\n  name: {name:?}\n  description: {desc:?}\n  division: {division:?}\n  flowVersion: {version:?}\n  configurationDigest: {digest}\n  startUpRef: \"/{key}/states/state[Initial State_10]\"\n  defaultLanguage: en-us\n",
        name = field("name"),
        desc = field("description"),
        division = meta.pointer("/division/name").and_then(Value::as_str).unwrap_or("Home"),
    )
}

fn zip_of(files: &[(String, String)]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    let mut used = std::collections::HashSet::new();
    for (name, yaml) in files {
        // Archy names entries by flow name; a second flow of the same name gets a counter.
        let mut entry = name.clone();
        let mut n = 1;
        while !used.insert(entry.clone()) {
            entry = name.replace(".yaml", &format!(" ({n}).yaml"));
            n += 1;
        }
        if out.start_file(entry, options).is_ok() {
            let _ = out.write_all(yaml.as_bytes());
        }
    }
    out.finish().map(|c| c.into_inner()).unwrap_or_default()
}
