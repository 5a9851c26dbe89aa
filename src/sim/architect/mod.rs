//! The simulated org's objects over HTTP: every kind's listing (paged, `name`-filtered, pageSize
//! at most 100 for Architect kinds) and single reads, per-kind permissions (`missing.permissions`
//! 403 naming the permission), prompts with language resources whose audio sits at presigned
//! media URLs ([`media`]), data tables' rows ([`rows`]), and the write side ([`write`]). Flow
//! outcomes created through the API show up a little later, as the real one's asynchronous create.

pub mod catalogue;
mod media;
mod rows;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::objects::{ObjectKind, SimObject, SimObjects, name_matches};
use super::{SimState, admit, error_response, json_response};

/// Object-side state that is not the objects themselves.
#[derive(Debug)]
pub(super) struct Runtime {
    /// The key presigned URLs are signed with (per server).
    secret: [u8; 32],
    /// Reads of each uploaded resource (prompt id, language) since its upload.
    resource_reads: Mutex<HashMap<(String, String), u32>>,
    /// Objects created but not yet visible (outcomes), by id.
    visible_at: Mutex<HashMap<String, Instant>>,
    /// Injected write faults still to spend: (kind, status).
    write_faults: Mutex<Vec<(ObjectKind, u16)>>,
}

impl Runtime {
    pub(super) fn new(write_faults: Vec<(ObjectKind, u16)>) -> Runtime {
        Runtime {
            secret: rand::random(),
            resource_reads: Mutex::default(),
            visible_at: Mutex::default(),
            write_faults: Mutex::new(write_faults),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SimState {
    pub(super) fn objects(&self) -> MutexGuard<'_, SimObjects> {
        lock(&self.objects)
    }
}

/// The routes serving every kind, the presigned media and upload URLs included.
pub(super) fn routes() -> Router<Arc<SimState>> {
    let mut router = Router::new();
    for kind in ObjectKind::ALL {
        let listing = get(move |s: State<Arc<SimState>>, h: HeaderMap, q: RawQuery| list(s, h, q, kind));
        let single =
            get(move |s: State<Arc<SimState>>, h: HeaderMap, q: RawQuery, id: Path<String>| get_one(s, h, q, id, kind));
        if kind.is_architect() {
            router = router
                .route(kind.path(), listing.post(move |s, h, b| write::create(s, h, b, kind)))
                .route(&format!("{}/{{id}}", kind.path()), {
                    let single = single.put(move |s, h, id, b| write::update(s, h, id, b, kind));
                    if kind == ObjectKind::FlowOutcome {
                        single
                    } else {
                        single.delete(move |s, h, id| write::delete(s, h, id, kind))
                    }
                });
        } else {
            router = router
                .route(kind.path(), listing)
                .route(&format!("{}/{{id}}", kind.path()), single);
        }
    }
    let prompts = ObjectKind::UserPrompt.path();
    router
        .route(
            &format!("{prompts}/{{id}}/resources"),
            get(media::list_resources).post(write::create_resource),
        )
        .route(
            &format!("{prompts}/{{id}}/resources/{{lang}}"),
            get(media::get_resource).put(write::update_resource),
        )
        .route(
            &format!("{prompts}/{{id}}/resources/{{lang}}/uploads"),
            post(write::request_upload),
        )
        .route("/sim-media/{token}/{prompt}/{file}", get(media::download))
        .route("/sim-upload/{token}/{prompt}/{lang}", put(media::upload))
        .route("/api/v2/flows/datatables/{id}/rows", get(rows::list).post(rows::create))
        .route(
            "/api/v2/flows/datatables/{id}/rows/{key}",
            get(rows::get_one).put(rows::update).delete(rows::delete),
        )
}

/// The 403 the API answers a role without `permission`.
pub(super) fn missing_permission(permission: &str) -> Response {
    let mut resp = error_response(
        StatusCode::FORBIDDEN,
        "missing.permissions",
        &format!("You are missing the following permission(s): {permission}"),
    );
    let body = json!({
        "message": format!("Unable to perform the requested action. You are missing the following permission(s): {permission}"),
        "code": "missing.permissions", "status": 403,
        "messageParams": {"permissions": permission},
        "contextId": resp.headers().get("inin-correlation-id").and_then(|v| v.to_str().ok()).unwrap_or_default(),
        "details": [], "errors": [],
    });
    *resp.body_mut() = axum::body::Body::from(body.to_string());
    resp
}

/// Authentication, throttling, the kind's request count and its permission.
#[allow(clippy::result_large_err)] // the error is the response to send, built once
pub(super) async fn admit_kind(
    s: &SimState,
    headers: &HeaderMap,
    kind: ObjectKind,
    permission: &str,
) -> Result<(), Response> {
    admit(s, headers).await?;
    if let Some(name) = kind.architect_name() {
        *lock(&s.stats.architect_requests).entry(name.to_string()).or_default() += 1;
    }
    if s.config.denied_permissions.contains(permission) {
        return Err(missing_permission(permission));
    }
    Ok(())
}

/// The base URL the client reached this server at (for absolute presigned URLs).
pub(super) fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// The query parameters object reads take.
#[derive(Debug, Default)]
pub(super) struct Query {
    page: u64,
    size: u64,
    names: Vec<String>,
    flags: HashMap<String, String>,
}

impl Query {
    fn parse(query: Option<String>) -> Query {
        let mut q = Query {
            page: 1,
            size: 25,
            ..Query::default()
        };
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match k.as_ref() {
                "pageNumber" => q.page = v.parse().unwrap_or(0),
                "pageSize" => q.size = v.parse().unwrap_or(0),
                "name" => q.names.extend(v.split(',').map(str::to_string)),
                _ => {
                    q.flags.insert(k.into_owned(), v.into_owned());
                }
            }
        }
        q
    }

    /// A boolean flag: its value, or `default` when absent.
    fn flag(&self, name: &str, default: bool) -> bool {
        self.flags.get(name).map_or(default, |v| v.eq_ignore_ascii_case("true"))
    }

    /// True when `expand` names `what`.
    fn expands(&self, what: &str) -> bool {
        self.flags
            .get("expand")
            .is_some_and(|v| v.split(',').any(|e| e.trim() == what))
    }
}

/// The bounds of the page `q` asks for among `len` entities, or the 400 for bad paging.
#[allow(clippy::result_large_err)] // the error is the response to send, built once
fn page_bounds(len: usize, q: &Query, max: u64) -> Result<(usize, usize), Response> {
    if q.page == 0 || q.size == 0 || q.size > max {
        return Err(error_response(
            StatusCode::BAD_REQUEST,
            "invalid.value",
            &format!("pageNumber must be positive and pageSize between 1 and {max}"),
        ));
    }
    let start = ((q.page - 1).saturating_mul(q.size) as usize).min(len);
    Ok((start, (start + q.size as usize).min(len)))
}

/// A listing body as the API shapes it: one page of entities out of `total`.
fn listing(entities: Vec<Value>, total: usize, q: &Query, path: &str) -> Value {
    let (page, size, total) = (q.page, q.size, total as u64);
    let page_count = total.div_ceil(size);
    let uri = |n: u64| format!("{path}?pageSize={size}&pageNumber={n}");
    let mut body = json!({
        "entities": entities, "pageSize": size, "pageNumber": page, "total": total,
        "pageCount": page_count, "firstUri": uri(1), "selfUri": uri(page), "lastUri": uri(page_count.max(1)),
    });
    if page < page_count {
        body["nextUri"] = uri(page + 1).into();
    }
    if page > 1 {
        body["previousUri"] = uri(page - 1).into();
    }
    body
}

/// One page of `entities` as the API's listings shape it, or the 400 for bad paging.
#[allow(clippy::result_large_err)] // the error is the response to send, built once
pub(super) fn page_of(entities: Vec<Value>, q: &Query, max: u64, path: &str) -> Result<Value, Response> {
    let (start, end) = page_bounds(entities.len(), q, max)?;
    let total = entities.len();
    Ok(listing(entities[start..end].to_vec(), total, q, path))
}

fn max_page(s: &SimState, kind: ObjectKind) -> u64 {
    if kind.is_architect() {
        s.config.max_page_size.min(100)
    } else {
        s.config.max_page_size
    }
}

/// True while an object created asynchronously is not visible yet, or when it sits in a division
/// the client's role does not grant.
pub(super) fn hidden(s: &SimState, o: &SimObject) -> bool {
    s.config
        .hidden_objects
        .iter()
        .any(|(k, n)| *k == o.kind && *n == o.name)
        || lock(&s.architect.visible_at)
            .get(&o.id)
            .is_some_and(|at| Instant::now() < *at)
}

/// How one object is served: its body with `selfUri`, and per kind what the query asks for.
fn served(s: &SimState, objects: &mut SimObjects, o: &SimObject, q: &Query, base: &str) -> Value {
    let mut v = o.body.clone();
    v["selfUri"] = format!("{}/{}", o.kind.path(), o.id).into();
    match o.kind {
        ObjectKind::UserPrompt => {
            if q.flag("includeResources", true) {
                let with_media = q.flag("includeMediaUris", true);
                let resources = media::served_resources(s, objects, &o.id, base, with_media);
                v["resources"] = Value::Array(resources);
            } else if let Some(m) = v.as_object_mut() {
                m.remove("resources");
            }
        }
        ObjectKind::DataTable if !q.expands("schema") => {
            if let Some(m) = v.as_object_mut() {
                m.remove("schema");
            }
        }
        _ => {}
    }
    v
}

async fn list(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    kind: ObjectKind,
) -> Response {
    if let Err(r) = admit_kind(&s, &headers, kind, kind.view_permission()).await {
        return r;
    }
    let q = Query::parse(query);
    let base = base_url(&headers);
    let body = {
        let mut objects = s.objects();
        let matching: Vec<SimObject> = objects
            .of_kind(kind)
            .filter(|o| q.names.is_empty() || q.names.iter().any(|n| name_matches(n, &o.name)))
            .filter(|o| !hidden(&s, o))
            .cloned()
            .collect();
        let (start, end) = match page_bounds(matching.len(), &q, max_page(&s, kind)) {
            Ok(bounds) => bounds,
            Err(r) => return r,
        };
        // Only the page served is rendered: reading a prompt's resources advances their uploads.
        let entities = matching[start..end]
            .iter()
            .map(|o| served(&s, &mut objects, o, &q, &base))
            .collect();
        listing(entities, matching.len(), &q, kind.path())
    };
    json_response(body.to_string())
}

/// The API's 404 for an object of `kind` that does not exist.
pub(super) fn not_found(kind: ObjectKind, id: &str) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not.found",
        &format!("The {} with id {id} was not found", kind.manifest_key()),
    )
}

async fn get_one(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    Path(id): Path<String>,
    kind: ObjectKind,
) -> Response {
    if let Err(r) = admit_kind(&s, &headers, kind, kind.view_permission()).await {
        return r;
    }
    let q = Query::parse(query);
    let base = base_url(&headers);
    let mut objects = s.objects();
    let Some(o) = objects.find(kind, &id).filter(|o| !hidden(&s, o)).cloned() else {
        return not_found(kind, &id);
    };
    json_response(served(&s, &mut objects, &o, &q, &base).to_string())
}

/// Counts a request for one data table's rows.
pub(super) fn count_rows(s: &SimState, table: &str) {
    *lock(&s.stats.row_requests).entry(table.to_string()).or_default() += 1;
}

/// Counts an audio transfer (`download` or `upload`).
pub(super) fn count_audio(s: &SimState, upload: bool) {
    let counter = if upload {
        &s.stats.audio_uploads
    } else {
        &s.stats.audio_downloads
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The per-kind counters as JSON, for `/sim/stats`.
pub(super) fn stats_json(s: &super::SimStats) -> Value {
    let kinds: BTreeMap<String, u64> = lock(&s.architect_requests).clone();
    let rows: BTreeMap<String, u64> = lock(&s.row_requests).clone();
    json!({
        "architect_requests": kinds,
        "datatable_row_requests": rows,
        "audio_downloads": s.audio_downloads.load(Ordering::Relaxed),
        "audio_uploads": s.audio_uploads.load(Ordering::Relaxed),
    })
}

/// A plain text/XML error like a storage service's (the presigned URLs are not the API's).
pub(super) fn storage_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}
