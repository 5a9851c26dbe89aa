//! A simulated Genesys Cloud org served over HTTP, following `genesys-api.md`: the OAuth
//! client-credentials token endpoint, `GET /api/v2/flows` with paging and type filters, flow
//! metadata, `latestconfiguration` and versions, the API's error bodies and headers — and knobs to
//! inject the faults a real org produces (throttling with `Retry-After`, latency, 5xx bursts, flows
//! deleted after listing, forbidden divisions, short-lived or revoked tokens).
//!
//! It serves the login host and the API host on one address. `GET /sim/stats` reports request counts.

pub mod data;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use bytes::Bytes;
use rand::Rng;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use data::{AWKWARD_NAMES, ConfigSource, FLOW_TYPES, SimFlow, generate_org};

/// What to do with a `pageSize` above the maximum (the real API's behaviour is unconfirmed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OversizePage {
    /// Answer 400.
    Reject,
    /// Serve the maximum instead, and report it in `pageSize`.
    Clamp,
}

/// One injected fault for a configuration request; a flow's faults are served in order, one per
/// request, and then it succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and a Genesys error body.
    Status(u16),
    /// Answer 429, with this `Retry-After` (seconds) or none.
    Throttle(Option<u64>),
    /// Send half the body, then break the connection.
    ResetMidBody,
    /// Answer 200 with the body cut in half (invalid JSON).
    TruncatedBody,
    /// Answer 200 with an HTML page instead of JSON.
    NotJson,
    /// Wait this long before answering normally.
    Slow(Duration),
}

/// A sliding-window rate limit like the API's: `requests` per `window`, 429 beyond.
#[derive(Debug, Clone, Copy)]
pub struct SimRateLimit {
    /// Requests allowed per window.
    pub requests: u32,
    /// Window length.
    pub window: Duration,
}

/// Everything that shapes the simulated org.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The one OAuth client id accepted.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// The flows served, in listing order.
    pub flows: Vec<SimFlow>,
    /// `expires_in` of issued tokens; tokens stop working after it.
    pub token_lifetime: Duration,
    /// Largest `pageSize` served.
    pub max_page_size: u64,
    /// What a larger `pageSize` gets.
    pub oversize_page: OversizePage,
    /// Throttling, if any.
    pub rate_limit: Option<SimRateLimit>,
    /// Send this `Retry-After` (seconds) on 429 instead of the computed one.
    pub retry_after_override: Option<u64>,
    /// Leave `Retry-After` off 429 responses.
    pub omit_retry_after: bool,
    /// Delay before every API response.
    pub latency: Duration,
    /// Flows (by id) whose configuration fails this many times first.
    pub flaky: HashMap<String, u32>,
    /// The status those failures carry (500, 502, 503, 504).
    pub flaky_status: u16,
    /// Faults per flow id, served in order to its configuration requests.
    pub faults: HashMap<String, Vec<Fault>>,
    /// Added to the `total` the listing reports (flows created or deleted elsewhere).
    pub total_offset: i64,
    /// Listing pages (by number) that come back empty the first time they are asked for.
    pub empty_pages: HashSet<u64>,
    /// A flow created while the client is listing: it appears at the front after page 1 is served.
    pub late_flow: Option<SimFlow>,
    /// After this many API requests, every token is refused (401), as for a revoked client.
    pub revoke_after_requests: Option<u64>,
    /// Flows (by id) listed but deleted before their configuration is fetched (404).
    pub deleted_after_listing: HashSet<String>,
    /// Flows (by id) in a division the client cannot see (403 on their configuration).
    pub forbidden: HashSet<String>,
    /// The token endpoint fails this many times first (with `token_failure_status`).
    pub token_failures: u32,
    /// 503 or 429 for those token failures.
    pub token_failure_status: u16,
}

impl SimConfig {
    /// An org of `n` generated flows (seeded) for the given client, with no faults.
    pub fn generated(n: usize, seed: u64, client_id: &str, client_secret: &str) -> Self {
        SimConfig::with_flows(generate_org(n, seed, false), client_id, client_secret)
    }

    /// An org serving exactly these flows, with no faults.
    pub fn with_flows(flows: Vec<SimFlow>, client_id: &str, client_secret: &str) -> Self {
        SimConfig {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            flows,
            token_lifetime: Duration::from_secs(86399),
            max_page_size: 500,
            oversize_page: OversizePage::Reject,
            rate_limit: None,
            retry_after_override: None,
            omit_retry_after: false,
            latency: Duration::ZERO,
            flaky: HashMap::new(),
            flaky_status: 503,
            faults: HashMap::new(),
            total_offset: 0,
            empty_pages: HashSet::new(),
            late_flow: None,
            revoke_after_requests: None,
            deleted_after_listing: HashSet::new(),
            forbidden: HashSet::new(),
            token_failures: 0,
            token_failure_status: 503,
        }
    }
}

/// Request counters, served at `GET /sim/stats`.
#[derive(Debug, Default)]
pub struct SimStats {
    /// API requests (token requests excluded), throttled ones included.
    pub api_requests: AtomicU64,
    /// API requests answered 429.
    pub throttled: AtomicU64,
    /// Listing requests.
    pub list_requests: AtomicU64,
    /// Configuration requests.
    pub configuration_requests: AtomicU64,
    /// Token requests.
    pub token_requests: AtomicU64,
    /// Tokens issued.
    pub tokens_issued: AtomicU64,
    /// When the first and the latest accepted `latestconfiguration` request arrived.
    pub configuration_span: Mutex<Option<(Instant, Instant)>>,
}

impl SimStats {
    /// Seconds from the first to the latest accepted configuration request: the window in which
    /// the client was pacing itself, without the listing and round trips before and after it.
    pub fn configuration_span_secs(&self) -> Option<f64> {
        self.configuration_span
            .lock()
            .ok()
            .and_then(|s| s.map(|(a, b)| (b - a).as_secs_f64()))
    }
}

impl SimStats {
    /// The counters as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "api_requests": self.api_requests.load(Ordering::Relaxed),
            "throttled": self.throttled.load(Ordering::Relaxed),
            "list_requests": self.list_requests.load(Ordering::Relaxed),
            "configuration_requests": self.configuration_requests.load(Ordering::Relaxed),
            "token_requests": self.token_requests.load(Ordering::Relaxed),
            "tokens_issued": self.tokens_issued.load(Ordering::Relaxed),
        })
    }
}

struct SimState {
    config: SimConfig,
    by_id: HashMap<String, usize>,
    fault_queues: Mutex<HashMap<String, VecDeque<Fault>>>,
    empty_pages_left: Mutex<HashSet<u64>>,
    late_visible: AtomicBool,
    token_failures_remaining: AtomicU32,
    tokens: Mutex<HashMap<String, Instant>>,
    window: Mutex<VecDeque<Instant>>,
    revoked: AtomicBool,
    stats: SimStats,
}

/// A running simulated org.
pub struct SimServer {
    url: String,
    state: Arc<SimState>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SimServer {
    /// Serves `config` on `addr` (port 0 picks a free port) until [`SimServer::shutdown`] or drop.
    pub async fn start(config: SimConfig, addr: SocketAddr) -> std::io::Result<SimServer> {
        let by_id = config
            .flows
            .iter()
            .enumerate()
            .map(|(i, f)| (f.id().to_string(), i))
            .collect();
        let mut queues: HashMap<String, VecDeque<Fault>> = config
            .faults
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
            .collect();
        for (id, n) in &config.flaky {
            let q = queues.entry(id.clone()).or_default();
            q.extend(std::iter::repeat_n(Fault::Status(config.flaky_status), *n as usize));
        }
        let empty_pages = config.empty_pages.clone();
        let state = Arc::new(SimState {
            token_failures_remaining: AtomicU32::new(config.token_failures),
            config,
            by_id,
            fault_queues: Mutex::new(queues),
            empty_pages_left: Mutex::new(empty_pages),
            late_visible: AtomicBool::new(false),
            tokens: Mutex::new(HashMap::new()),
            window: Mutex::new(VecDeque::new()),
            revoked: AtomicBool::new(false),
            stats: SimStats::default(),
        });
        let app = Router::new()
            .route("/oauth/token", post(token))
            .route("/api/v2/flows", get(list_flows))
            .route("/api/v2/flows/{id}", get(get_flow))
            .route("/api/v2/flows/{id}/latestconfiguration", get(latest_configuration))
            .route("/api/v2/flows/{id}/versions", get(list_versions))
            .route(
                "/api/v2/flows/{id}/versions/{version}/configuration",
                get(version_configuration),
            )
            .route("/sim/stats", get(stats))
            .fallback(not_found)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!("the simulated org stopped: {e}");
            }
        });
        Ok(SimServer {
            url: format!("http://{local}"),
            state,
            shutdown,
            task: Some(task),
        })
    }

    /// The base URL for both `--api-url` and `--login-url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The request counters.
    pub fn stats(&self) -> &SimStats {
        &self.state.stats
    }

    /// From now on every API call answers 401, as for a revoked client.
    pub fn revoke_tokens(&self) {
        self.state.revoked.store(true, Ordering::SeqCst);
    }

    /// Every access token issued so far (tests check none of them leaks into output).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state
            .tokens
            .lock()
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The flows served.
    pub fn flows(&self) -> &[SimFlow] {
        &self.state.config.flows
    }

    /// Stops serving and waits for the server task.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Stamps a response with a fresh `inin-correlation-id`, as every Platform API response carries;
/// returns the id for bodies that repeat it (`contextId`).
fn stamp_correlation(resp: &mut Response) -> String {
    let correlation = data::uuid_from(&mut rand::SeedableRng::from_rng(&mut rand::rng()));
    if let Ok(v) = HeaderValue::from_str(&correlation) {
        resp.headers_mut().insert("inin-correlation-id", v);
    }
    correlation
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let mut resp = status.into_response();
    let correlation = stamp_correlation(&mut resp);
    let body = json!({
        "message": message,
        "code": code,
        "status": status.as_u16(),
        "contextId": correlation,
        "details": [],
        "errors": []
    });
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    *resp.body_mut() = Body::from(body.to_string());
    resp
}

fn json_response(body: String) -> Response {
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    stamp_correlation(&mut resp);
    resp
}

async fn token(State(s): State<Arc<SimState>>, headers: HeaderMap, body: String) -> Response {
    s.stats.token_requests.fetch_add(1, Ordering::Relaxed);
    let oauth_error = |status: StatusCode, error: &str, description: &str| {
        (
            status,
            axum::Json(json!({"error": error, "description": description, "error_description": description})),
        )
            .into_response()
    };
    let remaining = s.token_failures_remaining.load(Ordering::SeqCst);
    if remaining > 0
        && s.token_failures_remaining
            .compare_exchange(remaining, remaining - 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    {
        let status = StatusCode::from_u16(s.config.token_failure_status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut resp = error_response(status, "service.unavailable", "The login service is busy");
        if status == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        return resp;
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let (id, secret) = match basic.as_deref().and_then(|c| c.split_once(':')) {
        Some((i, sec)) => (i.to_string(), sec.to_string()),
        None => match (form.get("client_id"), form.get("client_secret")) {
            (Some(i), Some(sec)) => (i.clone(), sec.clone()),
            _ => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_client",
                    "client credentials are missing",
                );
            }
        },
    };
    if id != s.config.client_id {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client", "client not found");
    }
    if secret != s.config.client_secret {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "authentication failed");
    }
    let value: [u8; 24] = rand::rng().random();
    let access = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value);
    let lifetime = s.config.token_lifetime;
    if let Ok(mut t) = s.tokens.lock() {
        t.insert(access.clone(), Instant::now() + lifetime);
    }
    s.stats.tokens_issued.fetch_add(1, Ordering::Relaxed);
    axum::Json(json!({"access_token": access, "token_type": "bearer", "expires_in": lifetime.as_secs().max(1)}))
        .into_response()
}

/// Authentication, throttling and latency shared by every API route. `Err` is the response to send.
#[allow(clippy::result_large_err)] // the error is the response to send, built once
async fn admit(s: &SimState, headers: &HeaderMap) -> Result<(), Response> {
    let n = s.stats.api_requests.fetch_add(1, Ordering::Relaxed) + 1;
    if s.config.revoke_after_requests.is_some_and(|limit| n > limit) {
        s.revoked.store(true, Ordering::SeqCst);
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    let valid = match bearer {
        Some(t) => s
            .tokens
            .lock()
            .map(|m| m.get(t.trim()).is_some_and(|exp| Instant::now() < *exp))
            .unwrap_or(false),
        None => false,
    };
    if !valid || s.revoked.load(Ordering::SeqCst) {
        return Err(error_response(
            StatusCode::UNAUTHORIZED,
            "authentication.required",
            "No authentication bearer token specified in authorization header.",
        ));
    }
    if let Some(limit) = s.config.rate_limit {
        let now = Instant::now();
        let retry_after = {
            let mut w = s.window.lock().unwrap_or_else(|e| e.into_inner());
            while w.front().is_some_and(|t| now.duration_since(*t) >= limit.window) {
                w.pop_front();
            }
            if w.len() >= limit.requests as usize {
                let oldest = w.front().copied().unwrap_or(now);
                Some((oldest + limit.window).saturating_duration_since(now))
            } else {
                w.push_back(now);
                None
            }
        };
        if let Some(wait) = retry_after {
            s.stats.throttled.fetch_add(1, Ordering::Relaxed);
            let mut resp = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "too.many.requests",
                "Rate limit exceeded the maximum. Retry the request in [x] seconds",
            );
            if !s.config.omit_retry_after {
                let secs = s
                    .config
                    .retry_after_override
                    .unwrap_or_else(|| wait.as_secs_f64().ceil().max(1.0) as u64);
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            return Err(resp);
        }
    }
    if !s.config.latency.is_zero() {
        tokio::time::sleep(s.config.latency).await;
    }
    Ok(())
}

async fn list_flows(State(s): State<Arc<SimState>>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    if let Err(r) = admit(&s, &headers).await {
        return r;
    }
    s.stats.list_requests.fetch_add(1, Ordering::Relaxed);
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let mut types: Vec<String> = Vec::new();
    let mut page_number = 1u64;
    let mut page_size = 25u64;
    for (k, v) in &pairs {
        match k.as_str() {
            "type" => types.extend(v.split(',').map(|t| t.trim().to_lowercase()).filter(|t| !t.is_empty())),
            "pageNumber" => match v.parse::<u64>() {
                Ok(n) if n >= 1 => page_number = n,
                _ => {
                    return error_response(
                        StatusCode::BAD_REQUEST,
                        "bad.request",
                        "pageNumber must be a positive integer",
                    );
                }
            },
            "pageSize" => match v.parse::<u64>() {
                Ok(n) if n >= 1 => page_size = n,
                _ => {
                    return error_response(
                        StatusCode::BAD_REQUEST,
                        "bad.request",
                        "pageSize must be a positive integer",
                    );
                }
            },
            _ => {}
        }
    }
    let filterable: Vec<String> = FLOW_TYPES
        .iter()
        .filter(|t| **t != "BUSINESSPROCESS")
        .map(|t| t.to_lowercase())
        .collect();
    if let Some(bad) = types.iter().find(|t| !filterable.contains(t)) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "bad.request",
            &format!("Unknown flow type {bad}"),
        );
    }
    if page_size > s.config.max_page_size {
        match s.config.oversize_page {
            OversizePage::Reject => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "invalid.value",
                    &format!("pageSize must be at most {}", s.config.max_page_size),
                );
            }
            OversizePage::Clamp => page_size = s.config.max_page_size,
        }
    }
    let late = s
        .config
        .late_flow
        .as_ref()
        .filter(|_| s.late_visible.load(Ordering::SeqCst));
    let matching: Vec<&SimFlow> = late
        .into_iter()
        .chain(s.config.flows.iter())
        .filter(|f| types.is_empty() || types.contains(&f.flow_type().to_lowercase()))
        .collect();
    let total = (matching.len() as i64 + s.config.total_offset).max(0) as u64;
    let page_count = total.div_ceil(page_size);
    let start = ((page_number - 1) * page_size).min(total) as usize;
    let end = (start + page_size as usize).min(matching.len());
    let page_real_count = matching.len().div_ceil(page_size as usize) as u64;
    let page_count = page_count.max(page_real_count);
    let empty_now = s
        .empty_pages_left
        .lock()
        .map(|mut e| e.remove(&page_number))
        .unwrap_or(false);
    let entities: Vec<&Value> = if empty_now {
        Vec::new()
    } else {
        matching[start..end].iter().map(|f| &f.meta).collect()
    };
    if page_number == 1 && s.config.late_flow.is_some() {
        s.late_visible.store(true, Ordering::SeqCst);
    }
    let type_q: String = types.iter().map(|t| format!("&type={t}")).collect();
    let uri = |n: u64| format!("/api/v2/flows?pageSize={page_size}&pageNumber={n}{type_q}");
    let mut body = json!({
        "entities": entities,
        "pageSize": page_size,
        "pageNumber": page_number,
        "total": total,
        "pageCount": page_count,
        "firstUri": uri(1),
        "selfUri": uri(page_number),
        "lastUri": uri(page_count.max(1)),
    });
    if page_number < page_count {
        body["nextUri"] = Value::String(uri(page_number + 1));
    }
    if page_number > 1 {
        body["previousUri"] = Value::String(uri(page_number - 1));
    }
    json_response(body.to_string())
}

#[allow(clippy::result_large_err)] // the error is the response to send, built once
fn find_flow<'a>(s: &'a SimState, id: &str) -> Result<&'a SimFlow, Response> {
    if let Some(late) = s
        .config
        .late_flow
        .as_ref()
        .filter(|f| f.id() == id && s.late_visible.load(Ordering::SeqCst))
    {
        return Ok(late);
    }
    match s.by_id.get(id) {
        Some(i) if !s.config.deleted_after_listing.contains(id) => Ok(&s.config.flows[*i]),
        _ => Err(error_response(
            StatusCode::NOT_FOUND,
            "not.found",
            &format!("Could not find the flow with id {id}"),
        )),
    }
}

async fn get_flow(State(s): State<Arc<SimState>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = admit(&s, &headers).await {
        return r;
    }
    match find_flow(&s, &id) {
        Ok(f) => json_response(f.meta.to_string()),
        Err(r) => r,
    }
}

async fn latest_configuration(State(s): State<Arc<SimState>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = admit(&s, &headers).await {
        return r;
    }
    s.stats.configuration_requests.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut span) = s.stats.configuration_span.lock() {
        let now = Instant::now();
        *span = Some(span.map_or((now, now), |(first, _)| (first, now)));
    }
    configuration_of(&s, &id).await
}

async fn configuration_of(s: &SimState, id: &str) -> Response {
    let flow = match find_flow(s, id) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if s.config.forbidden.contains(id) {
        return error_response(
            StatusCode::FORBIDDEN,
            "missing.division.permission",
            &format!("You are missing the following permission: architect:flow:view in the division of flow {id}"),
        );
    }
    let fault = s
        .fault_queues
        .lock()
        .ok()
        .and_then(|mut q| q.get_mut(id).and_then(VecDeque::pop_front));
    match fault {
        None => json_response(flow.configuration_json()),
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            error_response(status, "service.unavailable", "The service is currently unavailable")
        }
        Some(Fault::Throttle(retry_after)) => {
            s.stats.throttled.fetch_add(1, Ordering::Relaxed);
            let mut resp = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "too.many.requests",
                "Rate limit exceeded",
            );
            if let Some(secs) = retry_after {
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            resp
        }
        Some(Fault::ResetMidBody) => {
            let body = flow.configuration_json();
            let half = Bytes::from(body.as_bytes()[..body.len() / 2].to_vec());
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(half),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "injected reset",
                )),
            ];
            let mut resp = Response::new(Body::from_stream(futures::stream::iter(chunks)));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp
        }
        Some(Fault::TruncatedBody) => {
            let body = flow.configuration_json();
            json_response(body[..body.len() / 2].to_string())
        }
        Some(Fault::NotJson) => {
            let mut resp = Response::new(Body::from("<html><body>502 Bad Gateway</body></html>"));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
            resp
        }
        Some(Fault::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            json_response(flow.configuration_json())
        }
    }
}

async fn list_versions(State(s): State<Arc<SimState>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = admit(&s, &headers).await {
        return r;
    }
    let flow = match find_flow(&s, &id) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let version = flow.meta.get("publishedVersion").cloned().unwrap_or(Value::Null);
    let body = json!({
        "entities": [version],
        "pageSize": 25, "pageNumber": 1, "total": 1, "pageCount": 1,
        "selfUri": format!("/api/v2/flows/{id}/versions?pageSize=25&pageNumber=1"),
    });
    json_response(body.to_string())
}

async fn version_configuration(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path((id, _version)): Path<(String, String)>,
) -> Response {
    if let Err(r) = admit(&s, &headers).await {
        return r;
    }
    s.stats.configuration_requests.fetch_add(1, Ordering::Relaxed);
    configuration_of(&s, &id).await
}

async fn stats(State(s): State<Arc<SimState>>) -> Response {
    axum::Json(s.stats.to_json()).into_response()
}

async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not.found",
        "The requested resource was not found",
    )
}
