//! A simulated Genesys Cloud org served over HTTP, following `genesys-api.md`: the OAuth
//! client-credentials token endpoint, `GET /api/v2/flows` with paging and type filters, flow
//! metadata, `latestconfiguration` and versions, the API's error bodies and headers — and knobs to
//! inject the faults a real org produces (throttling with `Retry-After`, latency, 5xx bursts, flows
//! deleted after listing, forbidden divisions, short-lived or revoked tokens).
//!
//! It serves the login host and the API host on one address. `GET /sim/stats` reports request counts.

pub mod architect;
mod configuration;
pub mod data;
mod dependencies;
mod export_jobs;
pub mod objects;
mod org_views;
mod write;

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

pub use data::{AWKWARD_NAMES, ConfigSource, FLOW_TYPES, FlowRef, SimFlow, generate_org};
pub use dependencies::MISSING_DEPENDENCIES;
pub use export_jobs::archy_yaml;
pub use objects::{ArchitectSizes, Audio, ObjectKind, SimObject, SimObjects};
pub use org_views::default_organization;

/// What to do with a `pageSize` above the maximum (the real API's behaviour is unconfirmed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OversizePage {
    /// Answer 400.
    Reject,
    /// Serve the maximum instead, and report it in `pageSize`.
    Clamp,
    /// Serve the maximum, but report the size asked for and a `pageCount` computed from it, so a
    /// client that trusts the counters stops early.
    SilentClamp,
}

impl std::str::FromStr for OversizePage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reject" => Ok(OversizePage::Reject),
            "clamp" => Ok(OversizePage::Clamp),
            "silent-clamp" => Ok(OversizePage::SilentClamp),
            other => Err(format!("unknown oversize-page behaviour `{other}`")),
        }
    }
}

/// A change to the org made while a client lists it: once `after_pages` listing pages have been
/// served, these flows are deleted and these are created (at the front of the listing, so every
/// later page shifts).
#[derive(Debug, Clone, Default)]
pub struct ListingChange {
    /// Listing pages served (over the server's life) before the change happens.
    pub after_pages: u64,
    /// Ids of flows deleted.
    pub delete: Vec<String>,
    /// Flows created.
    pub create: Vec<SimFlow>,
}

/// One injected fault for a configuration request; a flow's faults are served in order, one per
/// request, and then it succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and a Genesys error body.
    Status(u16),
    /// Answer 429, with this `Retry-After` (seconds) or none.
    Throttle(Option<u64>),
    /// Answer 503 with this `Retry-After` (seconds).
    Unavailable(u64),
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
    /// A flow created while the client is listing: it appears at the front after the first page.
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
    /// Changes made to the org while the client lists it.
    pub listing_changes: Vec<ListingChange>,
    /// Deleted flows answer 410 `architect.flow.deleted` instead of 404.
    pub deleted_answers_gone: bool,
    /// Rows served at the end of the listing that are not flows (e.g. `42`, `{"name":"x"}`).
    pub malformed_rows: Vec<Value>,
    /// `oversize_page` applies from this page on; earlier pages are served at any size (a server
    /// that refuses the page size only on page 2 and later).
    pub oversize_from_page: u64,
    /// What `GET /api/v2/organizations/me` answers.
    pub organization: Value,
    /// Flows in divisions the client's role does not grant: never listed, but named by
    /// `GET /api/v2/flows/divisionviews`.
    pub hidden_flows: Vec<SimFlow>,
    /// The client lacks `architect:flow:search`: divisionviews answers 403.
    pub flow_search_denied: bool,
    /// Polls an export job answers `Started` before it ends.
    pub export_job_polls: u32,
    /// The first this-many export jobs fail with "could not find the flow … exit code 107".
    pub export_jobs_throttled: u32,
    /// How long a check-in or publish operation runs before it completes.
    pub operation_delay: Duration,
    /// Check-ins end in FAILURE with this error code.
    pub fail_checkin: Option<String>,
    /// Publishes end in FAILURE with this error code.
    pub fail_publish: Option<String>,
    /// Flows (by id) deleted right after their first configuration is served (gone by the time
    /// the YAML phase asks for them).
    pub deleted_after_fetch: HashSet<String>,
    /// The org's non-flow objects (queues, data actions, prompts, data tables, users, outcomes,
    /// milestones); [`SimObjects::rebuilt`] holds them under new ids, [`SimObjects::without`]
    /// drops one. Publishing a flow that references an id not here fails.
    pub objects: SimObjects,
    /// Write faults, each spent on the first write of its step: the write happens, then the
    /// answer is a 500, never comes, or (a create) carries no id.
    pub write_faults: Vec<WriteFault>,
    /// Saves are refused (400) with this error code.
    pub refuse_save: Option<String>,
    /// Publishes end in SUCCESS without moving `publishedVersion`.
    pub publish_without_version: bool,
    /// Once a check-in or publish completes, a VALIDATE operation replaces it in `currentOperation`.
    pub validate_after_operation: bool,
    /// `GET /api/v2/organizations/me` answers this status (403, 503) instead of the org.
    pub organization_status: Option<u16>,
    /// The client's role lacks `architect:flow:unlock`: unlocking answers 403.
    pub unlock_denied: bool,
    /// How long a presigned prompt `mediaUri` (and upload URL) stays valid.
    pub media_url_ttl: Duration,
    /// Permissions the client's role lacks (`routing:callRoute:view`…): what needs one answers
    /// 403 `missing.permissions` naming it.
    pub denied_permissions: HashSet<String>,
    /// Reads of an uploaded prompt resource that still show `uploaded` before `transcoded`.
    pub transcode_polls: u32,
    /// Prompts (by name) whose uploads end in `transcodeFailed`.
    pub transcode_fail: HashSet<String>,
    /// How long a created flow outcome stays out of the listing (the create is asynchronous).
    pub outcome_visibility_delay: Duration,
    /// Object write faults, each spent on the first write of its kind: the write happens, then
    /// the answer is this status.
    pub object_write_faults: Vec<ObjectWriteFault>,
    /// Objects (kind, name) in a division the client's role does not grant: they exist (flows
    /// using them publish) but are never listed, and reading them answers 404.
    pub hidden_objects: Vec<(ObjectKind, String)>,
}

/// One injected fault for writes of an Architect kind: `KIND:STATUS` (`prompts:503`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectWriteFault {
    /// The kind whose first write it spoils.
    pub kind: ObjectKind,
    /// The status answered after the write happened.
    pub status: u16,
}

impl std::str::FromStr for ObjectWriteFault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, status) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}`: expected KIND:STATUS (e.g. prompts:503)"))?;
        let kind = ObjectKind::from_architect_name(kind).ok_or_else(|| {
            format!("unknown kind `{kind}` (prompts, datatables, schedules, schedulegroups, emergencygroups, ivrs, outcomes, milestones)")
        })?;
        let status: u16 = status
            .parse()
            .ok()
            .filter(|n| (400..600).contains(n))
            .ok_or_else(|| format!("`{status}` is not an error status (400-599)"))?;
        Ok(ObjectWriteFault { kind, status })
    }
}

/// A write step of the Architect API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStep {
    /// `POST /api/v2/flows`.
    Create,
    /// `POST /api/v2/flows/{id}/versions`.
    Save,
    /// `POST /api/v2/flows/actions/checkin`.
    Checkin,
    /// `POST /api/v2/flows/actions/publish`.
    Publish,
}

/// What a write's answer becomes after the write happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteAnswer {
    /// A 500 with a Genesys error body.
    Error500,
    /// No answer at all (the client's request timeout ends it).
    Never,
    /// A 200 whose body carries no `id`.
    WithoutId,
}

/// One injected write fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteFault {
    /// Which write.
    pub step: WriteStep,
    /// What its answer becomes.
    pub answer: WriteAnswer,
}

impl std::str::FromStr for WriteFault {
    type Err = String;
    /// `STEP:ANSWER`, e.g. `create:500`, `checkin:timeout`, `create:no-id`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (step, answer) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}`: expected STEP:ANSWER"))?;
        let step = match step {
            "create" => WriteStep::Create,
            "save" => WriteStep::Save,
            "checkin" => WriteStep::Checkin,
            "publish" => WriteStep::Publish,
            other => return Err(format!("unknown write step `{other}` (create, save, checkin, publish)")),
        };
        let answer = match answer {
            "500" => WriteAnswer::Error500,
            "timeout" => WriteAnswer::Never,
            "no-id" => WriteAnswer::WithoutId,
            other => return Err(format!("unknown write answer `{other}` (500, timeout, no-id)")),
        };
        Ok(WriteFault { step, answer })
    }
}

impl SimConfig {
    /// An org of `n` generated flows (seeded) for the given client, with no faults.
    pub fn generated(n: usize, seed: u64, client_id: &str, client_secret: &str) -> Self {
        SimConfig::with_flows(generate_org(n, seed, false), client_id, client_secret)
    }

    /// An org serving exactly these flows, with no faults.
    pub fn with_flows(flows: Vec<SimFlow>, client_id: &str, client_secret: &str) -> Self {
        let objects = SimObjects::standard().with_flows(&flows);
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
            listing_changes: Vec::new(),
            deleted_answers_gone: false,
            malformed_rows: Vec::new(),
            oversize_from_page: 1,
            organization: default_organization(),
            hidden_flows: Vec::new(),
            flow_search_denied: false,
            export_job_polls: 1,
            export_jobs_throttled: 0,
            operation_delay: Duration::from_millis(100),
            fail_checkin: None,
            fail_publish: None,
            deleted_after_fetch: HashSet::new(),
            objects,
            write_faults: Vec::new(),
            refuse_save: None,
            publish_without_version: false,
            validate_after_operation: false,
            organization_status: None,
            unlock_denied: false,
            media_url_ttl: Duration::from_secs(3600),
            denied_permissions: HashSet::new(),
            transcode_polls: 2,
            transcode_fail: HashSet::new(),
            outcome_visibility_delay: Duration::from_millis(500),
            object_write_faults: Vec::new(),
            hidden_objects: Vec::new(),
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
    /// When each flow's configuration was asked for, answered or not (tests check retry spacing).
    pub configuration_times: Mutex<HashMap<String, Vec<Instant>>>,
    /// Export jobs registered.
    pub export_jobs: AtomicU64,
    /// Export results downloaded.
    pub downloads: AtomicU64,
    /// Requests that change the org (create, lock, unlock, save, check in, publish, delete).
    pub write_requests: AtomicU64,
    /// Under a rate limit: when each request was accepted, and when each was answered 429.
    pub limited: Mutex<(Vec<Instant>, Vec<Instant>)>,
    /// Listing requests being answered now, and the most there ever were at once.
    pub listing_in_flight: (AtomicU64, AtomicU64),
    /// Requests per Architect kind (`prompts`, `datatables`, `datatables.rows`, …).
    pub architect_requests: Mutex<std::collections::BTreeMap<String, u64>>,
    /// Row requests per data table id.
    pub row_requests: Mutex<std::collections::BTreeMap<String, u64>>,
    /// Prompt audio downloads from presigned media URLs (not rate limited).
    pub audio_downloads: AtomicU64,
    /// Prompt audio uploads to presigned upload URLs.
    pub audio_uploads: AtomicU64,
}

/// Counts a listing request as in flight until it is answered.
struct ListingInFlight<'a>(&'a SimStats);

impl<'a> ListingInFlight<'a> {
    fn enter(stats: &'a SimStats) -> Self {
        let now = stats.listing_in_flight.0.fetch_add(1, Ordering::SeqCst) + 1;
        stats.listing_in_flight.1.fetch_max(now, Ordering::SeqCst);
        ListingInFlight(stats)
    }
}

impl Drop for ListingInFlight<'_> {
    fn drop(&mut self) {
        self.0.listing_in_flight.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl SimStats {
    /// The pace after the client learned the limit: from the end of the first throttled window
    /// (the first 429 plus the limit's `window`) to the last accepted request, the accepted
    /// requests, the 429s and the seconds. `None` before any 429.
    pub fn after_first_throttled_window(&self, window: Duration) -> Option<(u64, u64, f64)> {
        let times = self.limited.lock().ok()?;
        let (accepted, throttled) = &*times;
        let from = *throttled.first()? + window;
        let last = *accepted.iter().max()?;
        let n = accepted.iter().filter(|t| **t >= from).count() as u64;
        let t = throttled.iter().filter(|t| **t >= from).count() as u64;
        Some((n, t, last.saturating_duration_since(from).as_secs_f64()))
    }

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
        let mut out = json!({
            "api_requests": self.api_requests.load(Ordering::Relaxed),
            "throttled": self.throttled.load(Ordering::Relaxed),
            "list_requests": self.list_requests.load(Ordering::Relaxed),
            "configuration_requests": self.configuration_requests.load(Ordering::Relaxed),
            "token_requests": self.token_requests.load(Ordering::Relaxed),
            "tokens_issued": self.tokens_issued.load(Ordering::Relaxed),
            "export_jobs": self.export_jobs.load(Ordering::Relaxed),
            "downloads": self.downloads.load(Ordering::Relaxed),
            "write_requests": self.write_requests.load(Ordering::Relaxed),
        });
        if let (Some(out), Value::Object(more)) = (out.as_object_mut(), architect::stats_json(self)) {
            out.extend(more);
        }
        out
    }

    /// Requests for one Architect kind (`prompts`, `datatables.rows`…).
    pub fn architect_requests(&self, kind: &str) -> u64 {
        self.architect_requests
            .lock()
            .map(|m| m.get(kind).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Row requests for one data table.
    pub fn row_requests(&self, table_id: &str) -> u64 {
        self.row_requests
            .lock()
            .map(|m| m.get(table_id).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

/// The org as it is now: flows in listing order, with an index by id (rebuilt on the rare
/// changes, so every configuration request finds its flow in constant time).
#[derive(Debug, Default)]
struct Org {
    flows: Vec<SimFlow>,
    by_id: HashMap<String, usize>,
    changes_done: usize,
}

impl Org {
    fn new(flows: Vec<SimFlow>) -> Self {
        let mut org = Org {
            flows,
            ..Org::default()
        };
        org.reindex();
        org
    }

    fn reindex(&mut self) {
        self.by_id = self
            .flows
            .iter()
            .enumerate()
            .map(|(i, f)| (f.id().to_string(), i))
            .collect();
    }

    fn find(&self, id: &str) -> Option<&SimFlow> {
        self.by_id.get(id).map(|i| &self.flows[*i])
    }

    /// Creates flows at the front of the listing, so every later page shifts.
    fn create_at_front(&mut self, flows: impl IntoIterator<Item = SimFlow>) {
        self.flows.splice(0..0, flows);
        self.reindex();
    }

    fn delete(&mut self, id: &str) -> bool {
        let Some(i) = self.by_id.get(id).copied() else {
            return false;
        };
        self.flows.remove(i);
        self.reindex();
        true
    }
}

struct SimState {
    config: SimConfig,
    org: Mutex<Org>,
    fault_queues: Mutex<HashMap<String, VecDeque<Fault>>>,
    empty_pages_left: Mutex<HashSet<u64>>,
    token_failures_remaining: AtomicU32,
    tokens: Mutex<HashMap<String, Instant>>,
    window: Mutex<VecDeque<Instant>>,
    revoked: AtomicBool,
    stats: SimStats,
    export_jobs: Mutex<HashMap<String, export_jobs::Job>>,
    write_faults: Mutex<Vec<WriteFault>>,
    objects: Mutex<SimObjects>,
    architect: architect::Runtime,
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
        let org = Mutex::new(Org::new(config.flows.clone()));
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
        let state_write_faults = config.write_faults.clone();
        let objects = config.objects.clone();
        let object_faults = config.object_write_faults.iter().map(|f| (f.kind, f.status)).collect();
        let state = Arc::new(SimState {
            token_failures_remaining: AtomicU32::new(config.token_failures),
            config,
            org,
            fault_queues: Mutex::new(queues),
            empty_pages_left: Mutex::new(empty_pages),
            tokens: Mutex::new(HashMap::new()),
            window: Mutex::new(VecDeque::new()),
            revoked: AtomicBool::new(false),
            stats: SimStats::default(),
            export_jobs: Mutex::default(),
            write_faults: Mutex::new(state_write_faults),
            objects: Mutex::new(objects),
            architect: architect::Runtime::new(object_faults),
        });
        let app = Router::new()
            .route("/oauth/token", post(token))
            .route("/api/v2/flows", get(list_flows).post(write::create))
            .route("/api/v2/flows/actions/{action}", post(write::action))
            .route("/api/v2/organizations/me", get(org_views::organization))
            .route("/api/v2/flows/divisionviews", get(org_views::divisionviews))
            .route("/api/v2/flows/export/jobs", post(export_jobs::register))
            .route("/api/v2/flows/export/jobs/{id}", get(export_jobs::status))
            .route("/sim/downloads/{id}", get(export_jobs::download))
            .route("/api/v2/flows/{id}", get(get_flow).delete(write::delete))
            .route("/api/v2/flows/{id}/latestconfiguration", get(latest_configuration))
            .route("/api/v2/flows/{id}/versions", get(list_versions).post(write::save))
            .route(
                "/api/v2/flows/{id}/versions/{version}/configuration",
                get(version_configuration),
            )
            .route("/sim/stats", get(stats))
            .merge(architect::routes())
            .route("/sim/locks", get(write::lock_table))
            .fallback(not_found)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            // Path segments are matched case-insensitively, as the API does (`checkOut`).
            let app = tower::ServiceExt::<axum::extract::Request>::map_request(app, write::lowercase_known_segments);
            let served = axum::serve(listener, axum::ServiceExt::into_make_service(app))
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

    /// The flows the org holds now, in listing order.
    pub fn flows(&self) -> Vec<SimFlow> {
        self.state.org().flows.clone()
    }

    /// Deletes a flow, as a user in Architect would; true if it existed.
    pub fn delete_flow(&self, id: &str) -> bool {
        self.state.org().delete(id)
    }

    /// Changes a flow in place (its id must stay), as an edit in Architect would; true if it existed.
    pub fn update_flow(&self, id: &str, change: impl FnOnce(&mut SimFlow)) -> bool {
        let mut org = self.state.org();
        match org.by_id.get(id).copied() {
            Some(i) => {
                change(&mut org.flows[i]);
                true
            }
            None => false,
        }
    }

    /// Locks a flow for a user, as someone editing it in Architect would.
    pub fn lock_flow(&self, id: &str, user: &str) -> bool {
        self.update_flow(id, |f| {
            f.meta["lockedUser"] = json!({"id": format!("user-{user}"), "name": user})
        })
    }

    /// The lock table: each locked flow's id and who holds it (`client ID` or `user NAME`).
    pub fn locks(&self) -> Vec<(String, String)> {
        write::locks(&self.state.org().flows)
    }

    /// The org's objects as they are now (with rows and audio).
    pub fn objects(&self) -> SimObjects {
        self.state.objects().clone()
    }

    /// Deletes the object of `kind` named `name` (with its rows or audio), as a user in Architect
    /// would; true if it existed.
    pub fn delete_object(&self, kind: ObjectKind, name: &str) -> bool {
        self.state.objects().remove_named(kind, name)
    }

    /// Changes the org's objects in place, e.g. `|o| o.edit(…)`, `o.put_row(…)`, `o.rerecord(…)`.
    pub fn update_objects<T>(&self, change: impl FnOnce(&mut SimObjects) -> T) -> T {
        change(&mut self.state.objects())
    }

    /// Creates a flow at the front of the listing.
    pub fn create_flow(&self, flow: SimFlow) {
        self.state.org().create_at_front([flow]);
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

impl SimState {
    fn org(&self) -> std::sync::MutexGuard<'_, Org> {
        self.org.lock().unwrap_or_else(|e| e.into_inner())
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
        if let Ok(mut times) = s.stats.limited.lock() {
            match retry_after {
                None => times.0.push(now),
                Some(_) => times.1.push(now),
            }
        }
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

/// The listing's query: paging and the filters the API documents.
#[derive(Default)]
struct ListQuery {
    page_number: u64,
    page_size: u64,
    types: Vec<String>,
    ids: Vec<String>,
    name: Option<String>,
    virtual_agent_sent: bool,
}

#[allow(clippy::result_large_err)] // the error is the response to send, built once
fn parse_list_query(query: Option<String>) -> Result<ListQuery, Response> {
    let mut q = ListQuery {
        page_number: 1,
        page_size: 25,
        ..ListQuery::default()
    };
    let bad = |what: &str| error_response(StatusCode::BAD_REQUEST, "bad.request", what);
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned() {
        let list = || v.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
        match k.as_str() {
            // Arrays come comma-joined (the SDKs, gc) or as repeated keys (CX as Code).
            "type" => q.types.extend(list().map(|t| t.to_lowercase())),
            "id" => q.ids.extend(list()),
            "name" => q.name = Some(v.to_lowercase()),
            "virtualAgentEnabled" => q.virtual_agent_sent = true,
            "pageNumber" => q.page_number = positive(&v).ok_or_else(|| bad("pageNumber must be a positive integer"))?,
            "pageSize" => q.page_size = positive(&v).ok_or_else(|| bad("pageSize must be a positive integer"))?,
            _ => {}
        }
    }
    let filterable: Vec<String> = FLOW_TYPES
        .iter()
        .filter(|t| **t != "BUSINESSPROCESS")
        .map(|t| t.to_lowercase())
        .collect();
    if let Some(t) = q.types.iter().find(|t| !filterable.contains(t)) {
        return Err(bad(&format!("Unknown flow type {t}")));
    }
    Ok(q)
}

fn positive(v: &str) -> Option<u64> {
    v.parse().ok().filter(|n| *n >= 1)
}

impl ListQuery {
    fn matches(&self, f: &SimFlow) -> bool {
        let name = f
            .meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_lowercase();
        // Like the real API (terraform-provider-genesyscloud issue 1835): sending
        // virtualAgentEnabled at all silently drops bot flows.
        (self.types.is_empty() || self.types.contains(&f.flow_type().to_lowercase()))
            && (self.ids.is_empty() || self.ids.iter().any(|i| i == f.id()))
            && self.name.as_ref().is_none_or(|n| name.contains(n.as_str()))
            && !(self.virtual_agent_sent && matches!(f.flow_type(), "BOT" | "DIGITALBOT"))
    }
}

/// Applies the org changes due once `served` listing pages have been served.
fn apply_listing_changes(s: &SimState, served: u64) {
    let mut org = s.org();
    if served == 1
        && let Some(late) = &s.config.late_flow
        && org.find(late.id()).is_none()
    {
        org.create_at_front([late.clone()]);
    }
    while let Some(change) = s.config.listing_changes.get(org.changes_done) {
        if change.after_pages > served {
            break;
        }
        for id in &change.delete {
            org.delete(id);
        }
        org.create_at_front(change.create.iter().cloned());
        org.changes_done += 1;
    }
}

async fn list_flows(State(s): State<Arc<SimState>>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let _in_flight = ListingInFlight::enter(&s.stats);
    if let Err(r) = admit(&s, &headers).await {
        return r;
    }
    let q = match parse_list_query(query) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let (mut serve, mut report) = (q.page_size, q.page_size);
    if q.page_size > s.config.max_page_size && q.page_number >= s.config.oversize_from_page {
        match s.config.oversize_page {
            OversizePage::Reject => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "invalid.value",
                    &format!("pageSize must be at most {}", s.config.max_page_size),
                );
            }
            OversizePage::Clamp => (serve, report) = (s.config.max_page_size, s.config.max_page_size),
            OversizePage::SilentClamp => serve = s.config.max_page_size,
        }
    }
    let served_pages = s.stats.list_requests.fetch_add(1, Ordering::Relaxed) + 1;
    let empty_now = s
        .empty_pages_left
        .lock()
        .map(|mut e| e.remove(&q.page_number))
        .unwrap_or(false);
    // Only the page served is copied out of the org, so a large org costs no memory per request.
    let (entities, total, page_count) = {
        let org = s.org();
        let matching: Vec<&Value> = org
            .flows
            .iter()
            .filter(|f| q.matches(f))
            .map(|f| &f.meta)
            .chain(s.config.malformed_rows.iter())
            .collect();
        let total = (matching.len() as i64 + s.config.total_offset).max(0) as u64;
        let page_count = total
            .div_ceil(report)
            .max(matching.len().div_ceil(serve as usize) as u64);
        let start = ((q.page_number - 1).saturating_mul(serve) as usize).min(matching.len());
        let end = (start + serve as usize).min(matching.len());
        let entities: Vec<Value> = if empty_now {
            Vec::new()
        } else {
            matching[start..end].iter().map(|v| (*v).clone()).collect()
        };
        (entities, total, page_count)
    };
    let body = listing_body(&entities, &q, report, total, page_count);
    apply_listing_changes(&s, served_pages);
    json_response(body.to_string())
}

fn listing_body(entities: &[Value], q: &ListQuery, page_size: u64, total: u64, page_count: u64) -> Value {
    let type_q: String = q.types.iter().map(|t| format!("&type={t}")).collect();
    let uri = |n: u64| format!("/api/v2/flows?pageSize={page_size}&pageNumber={n}{type_q}");
    let mut body = json!({
        "entities": entities,
        "pageSize": page_size,
        "pageNumber": q.page_number,
        "total": total,
        "pageCount": page_count,
        "firstUri": uri(1),
        "selfUri": uri(q.page_number),
        "lastUri": uri(page_count.max(1)),
    });
    if q.page_number < page_count {
        body["nextUri"] = Value::String(uri(q.page_number + 1));
    }
    if q.page_number > 1 {
        body["previousUri"] = Value::String(uri(q.page_number - 1));
    }
    body
}

/// The flow with this id as the org holds it now, or the API's answer for a missing one.
#[allow(clippy::result_large_err)] // the error is the response to send, built once
fn find_flow(s: &SimState, id: &str) -> Result<SimFlow, Response> {
    let org = s.org();
    match org.find(id) {
        Some(f) if !s.config.deleted_after_listing.contains(id) => Ok(f.clone()),
        _ if s.config.deleted_answers_gone => Err(error_response(
            StatusCode::GONE,
            "architect.flow.deleted",
            &format!("The flow with id {id} has been deleted"),
        )),
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
    count_configuration(&s, &id);
    configuration_of(&s, &id, None).await
}

fn count_configuration(s: &SimState, id: &str) {
    s.stats.configuration_requests.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut times) = s.stats.configuration_times.lock() {
        times.entry(id.to_string()).or_default().push(Instant::now());
    }
    if let Ok(mut span) = s.stats.configuration_span.lock() {
        let now = Instant::now();
        *span = Some(span.map_or((now, now), |(first, _)| (first, now)));
    }
}

/// A flow's configuration (the latest, or one version) with whatever fault is queued for it.
async fn configuration_of(s: &SimState, id: &str, version: Option<&str>) -> Response {
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
    let body = match version {
        None if flow.saved_version().is_none() => {
            return error_response(
                StatusCode::NOT_FOUND,
                "flow.configuration.not.found",
                &format!("Flow {id} has no saved configuration yet"),
            );
        }
        None => flow.configuration_json(),
        Some(v) => match flow.version_configuration(v) {
            Some(body) => body,
            None => {
                return error_response(
                    StatusCode::NOT_FOUND,
                    "flow.version.not.found",
                    &format!("Flow version {v} of flow {id} was not found"),
                );
            }
        },
    };
    let fault = s
        .fault_queues
        .lock()
        .ok()
        .and_then(|mut q| q.get_mut(id).and_then(VecDeque::pop_front));
    if s.config.deleted_after_fetch.contains(id) {
        s.org().delete(id);
    }
    match fault {
        None => json_response(body),
        Some(fault) => faulted(s, fault, body).await,
    }
}

/// The answer a queued fault gives instead of `body`.
async fn faulted(s: &SimState, fault: Fault, body: String) -> Response {
    match fault {
        Fault::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            error_response(status, "service.unavailable", "The service is currently unavailable")
        }
        Fault::Throttle(retry_after) => {
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
        Fault::Unavailable(secs) => {
            let mut resp = error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "service.unavailable",
                "The service is currently unavailable",
            );
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            resp
        }
        Fault::ResetMidBody => {
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
        Fault::TruncatedBody => json_response(body[..body.len() / 2].to_string()),
        Fault::NotJson => {
            let mut resp = Response::new(Body::from("<html><body>502 Bad Gateway</body></html>"));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
            resp
        }
        Fault::Slow(delay) => {
            tokio::time::sleep(delay).await;
            json_response(body)
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
    let mut versions: Vec<Value> = Vec::new();
    for key in ["savedVersion", "publishedVersion"] {
        if let Some(v) = flow.meta.get(key).filter(|v| !versions.contains(v)) {
            versions.push(v.clone());
        }
    }
    let body = json!({
        "entities": versions,
        "pageSize": 25, "pageNumber": 1, "total": versions.len(), "pageCount": 1,
        "selfUri": format!("/api/v2/flows/{id}/versions?pageSize=25&pageNumber=1"),
    });
    json_response(body.to_string())
}

async fn version_configuration(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path((id, version)): Path<(String, String)>,
) -> Response {
    if let Err(r) = admit(&s, &headers).await {
        return r;
    }
    count_configuration(&s, &id);
    configuration_of(&s, &id, Some(&version)).await
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
