//! Typed calls to the Genesys Cloud Platform API, each behind the shared rate limiter, token
//! provider and retry driver: one page of the flow listing, and one flow's configuration.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::time::Instant;
use tracing::debug;
use url::Url;

use super::auth::{AccessToken, AuthError, TokenProvider};
use super::org::Organization;
use super::ratelimit::RateLimiter;
use super::retry::{Attempt, GaveUp, Pace, Retrier, RetryConfig, retry_after_of};
use crate::secret::Secret;

/// A failed call to the Platform API, after whatever retries the policy allowed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404 or 410: the resource does not exist (a flow deleted after listing).
    #[error("not found (HTTP {status}) at {url}{}", correlation(.correlation_id))]
    NotFound {
        url: String,
        status: u16,
        correlation_id: Option<String>,
    },
    /// 403: the OAuth client's role lacks a permission or the flow's division.
    #[error(
        "forbidden (HTTP 403) at {url}: {message}; the OAuth client's role needs architect:flow:view \
         and access to the flow's division{}", correlation(.correlation_id)
    )]
    Forbidden {
        url: String,
        message: String,
        correlation_id: Option<String>,
    },
    /// 401 on a token inside its lifetime and again on its replacement: the client was revoked.
    #[error(
        "the API refused a freshly issued token (HTTP 401) at {url}; the OAuth client may have been \
         revoked or lack the Platform API grant{}", correlation(.correlation_id)
    )]
    Unauthorized {
        url: String,
        correlation_id: Option<String>,
    },
    /// Another 4xx the request cannot recover from.
    #[error("HTTP {status} at {url}: {message}{}", correlation(.correlation_id))]
    Rejected {
        url: String,
        status: u16,
        message: String,
        correlation_id: Option<String>,
    },
    /// Transient faults or throttling outlasted the retry caps.
    #[error("gave up at {url} after {attempts} attempts: {last}")]
    Exhausted { url: String, attempts: u32, last: String },
    /// No token could be obtained.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The HTTP client could not be built.
    #[error("could not set up the HTTP client: {0}")]
    Setup(String),
    /// A write got no clear answer (5xx, timeout, reset): it may or may not have happened, so it
    /// is not resent; the caller reads the state back.
    #[error("no clear answer to the write at {url} ({reason}); it may have happened")]
    OutcomeUnknown { url: String, reason: String },
}

fn correlation(id: &Option<String>) -> String {
    match id {
        Some(id) => format!(" (inin-correlation-id {id})"),
        None => String::new(),
    }
}

impl ApiError {
    /// True when the error concerns the whole run (credentials), not one resource.
    pub fn is_fatal_for_run(&self) -> bool {
        matches!(self, ApiError::Auth(_) | ApiError::Unauthorized { .. })
    }
}

/// What a client's requests came to over its life, for metrics.
#[derive(Debug, Default)]
pub struct ClientStats {
    /// Answers by HTTP status (0: no answer — a transport error).
    by_status: std::sync::Mutex<std::collections::BTreeMap<u16, u64>>,
    /// Requests sent again after a failed attempt.
    pub retries: std::sync::atomic::AtomicU64,
    /// 429 answers (each one pauses sending).
    pub throttled: std::sync::atomic::AtomicU64,
}

impl ClientStats {
    fn record(&self, status: u16) {
        if let Ok(mut m) = self.by_status.lock() {
            *m.entry(status).or_default() += 1;
        }
        if status == 429 {
            self.throttled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Answers by HTTP status so far (0: transport errors).
    pub fn by_status(&self) -> std::collections::BTreeMap<u16, u64> {
        self.by_status.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// A JSON body as served, with the number of attempts it took.
#[derive(Debug)]
pub struct Fetched {
    /// The body, validated as JSON but otherwise untouched.
    pub body: Box<RawValue>,
    /// Requests sent for it, the successful one included.
    pub attempts: u32,
}

/// The error of a request the retry driver gave up on: its own error, or `Exhausted` naming `url`.
fn gave_up(e: GaveUp<ApiError>, url: String) -> ApiError {
    match e {
        GaveUp::Fatal(e) => e,
        GaveUp::Exhausted { attempts, last } => ApiError::Exhausted { url, attempts, last },
    }
}

/// One page of `GET /api/v2/flows`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowPage {
    /// The flows on this page, each kept exactly as served.
    #[serde(default)]
    pub entities: Option<Vec<Box<RawValue>>>,
    /// The page size the server says it used.
    #[serde(default)]
    pub page_size: Option<u64>,
    /// The number of this page (from 1).
    #[serde(default)]
    pub page_number: Option<u64>,
    /// How many flows the server says match.
    #[serde(default)]
    pub total: Option<u64>,
    /// How many pages the server says there are.
    #[serde(default)]
    pub page_count: Option<u64>,
    /// Present unless this is the last page.
    #[serde(default)]
    pub next_uri: Option<String>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// How to reach and authenticate to one org.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Platform API base, e.g. `https://api.mypurecloud.com`.
    pub api_url: Url,
    /// OAuth login base, e.g. `https://login.mypurecloud.com`.
    pub login_url: Url,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: Secret,
    /// Client-side rate limit in requests per second; `None` learns the server's from its 429s.
    pub rate_per_second: Option<f64>,
    /// Requests in flight at once (sizes the connection pool).
    pub concurrency: usize,
    /// Retry caps and delays.
    pub retry: RetryConfig,
}

/// The Platform API client: rate-limited, authenticated, retrying.
#[derive(Debug)]
pub struct GenesysClient {
    http: reqwest::Client,
    api_url: Url,
    client_id: String,
    stats: ClientStats,
    tokens: Arc<TokenProvider>,
    limiter: Arc<RateLimiter>,
    retrier: Retrier,
}

/// The rate limiter as the retry driver's pace.
struct LimiterPace<'a>(&'a RateLimiter);

impl Pace for LimiterPace<'_> {
    fn ready(&self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(self.0.acquire())
    }
    fn throttled(&self, wait: Duration, retry_after: Option<Duration>) {
        self.0.throttled(wait, retry_after);
    }
    fn succeeded(&self, sent_at: Instant) {
        self.0.succeeded(sent_at);
    }
}

impl GenesysClient {
    /// Builds the HTTP client (rustls, certificate checks on), the token provider, the rate
    /// limiter and the retry driver for one org. Sends nothing yet.
    pub fn connect(config: ClientConfig) -> Result<Self, ApiError> {
        crate::tls::init();
        let http = reqwest::Client::builder()
            .user_agent(concat!("flowvault/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .pool_max_idle_per_host(config.concurrency.max(4))
            .build()
            .map_err(|e| ApiError::Setup(e.to_string()))?;
        let retrier = Retrier::new(config.retry);
        let client_id = config.client_id.clone();
        let tokens = Arc::new(TokenProvider::new(
            http.clone(),
            config.login_url.as_str(),
            config.client_id,
            config.client_secret,
            retrier.clone(),
        ));
        Ok(GenesysClient {
            http,
            api_url: config.api_url,
            client_id,
            stats: ClientStats::default(),
            tokens,
            limiter: Arc::new(RateLimiter::new(config.rate_per_second)),
            retrier,
        })
    }

    /// The API base URL this client talks to.
    pub fn api_url(&self) -> &Url {
        &self.api_url
    }

    /// The OAuth client id (locks taken by this client carry it as `lockedClient.id`).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// What this client's requests came to so far.
    pub fn stats(&self) -> &ClientStats {
        &self.stats
    }

    /// The shared rate limiter.
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// Checks that credentials work by fetching a token.
    pub async fn authenticate(&self) -> Result<(), ApiError> {
        self.tokens.token().await?;
        Ok(())
    }

    /// The lifetime (`expires_in`) of the current token, fetching one if needed.
    pub async fn token_lifetime(&self) -> Result<Duration, ApiError> {
        Ok(self.tokens.token().await?.lifetime)
    }

    /// `GET /api/v2/flows` for one page; `flow_type` is a single lowercase type filter.
    pub async fn list_flows_page(
        &self,
        page_number: u64,
        page_size: u64,
        flow_type: Option<&str>,
    ) -> Result<FlowPage, ApiError> {
        let mut url = self.endpoint(&["api", "v2", "flows"]);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("pageNumber", &page_number.to_string());
            q.append_pair("pageSize", &page_size.to_string());
            if let Some(t) = flow_type {
                q.append_pair("type", t);
            }
        }
        let fetched = self.get_json(url.clone()).await?;
        serde_json::from_str(fetched.body.get()).map_err(|e| ApiError::Exhausted {
            url: url.to_string(),
            attempts: fetched.attempts,
            last: format!("the response is not a flow listing ({e})"),
        })
    }

    /// `GET /api/v2/flows/{id}/latestconfiguration`: the flow's latest saved definition, as served.
    pub async fn latest_configuration(&self, flow_id: &str) -> Result<Fetched, ApiError> {
        let url = self.endpoint(&["api", "v2", "flows", flow_id, "latestconfiguration"]);
        self.get_json(url).await
    }

    /// `GET /api/v2/flows/{id}/versions/{version}/configuration`: one version's definition, as served.
    pub async fn version_configuration(&self, flow_id: &str, version: &str) -> Result<Fetched, ApiError> {
        let url = self.endpoint(&["api", "v2", "flows", flow_id, "versions", version, "configuration"]);
        self.get_json(url).await
    }

    /// `GET /api/v2/organizations/me`: the org this client reads (needs no permission).
    pub async fn organization(&self) -> Result<Organization, ApiError> {
        let url = self.endpoint(&["api", "v2", "organizations", "me"]);
        let fetched = self.get_json(url.clone()).await?;
        serde_json::from_str(fetched.body.get()).map_err(|e| ApiError::Exhausted {
            url: url.to_string(),
            attempts: fetched.attempts,
            last: format!("the response is not an organization ({e})"),
        })
    }

    /// `GET /api/v2/flows/divisionviews` for one page (needs `architect:flow:search`).
    pub async fn divisionviews_page(&self, page_number: u64, page_size: u64) -> Result<FlowPage, ApiError> {
        let mut url = self.endpoint(&["api", "v2", "flows", "divisionviews"]);
        url.query_pairs_mut()
            .append_pair("pageNumber", &page_number.to_string())
            .append_pair("pageSize", &page_size.to_string());
        let fetched = self.get_json(url.clone()).await?;
        serde_json::from_str(fetched.body.get()).map_err(|e| ApiError::Exhausted {
            url: url.to_string(),
            attempts: fetched.attempts,
            last: format!("the response is not a flow listing ({e})"),
        })
    }

    /// The URL of an API path given as segments (each one escaped).
    pub fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.api_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    /// GET a JSON document through the rate limiter and the retry driver.
    pub async fn get_json(&self, url: Url) -> Result<Fetched, ApiError> {
        self.send_json(reqwest::Method::GET, url, None).await
    }

    /// POST a JSON body and read the JSON answer, through the rate limiter and the retry driver.
    pub async fn post_json(&self, url: Url, body: &serde_json::Value) -> Result<Fetched, ApiError> {
        let body = Bytes::from(serde_json::to_vec(body).map_err(|e| ApiError::Setup(e.to_string()))?);
        self.send_json(reqwest::Method::POST, url, Some(body)).await
    }

    /// POST a body that is already JSON (a configuration exactly as archived), or none.
    pub async fn post_raw(&self, url: Url, body: Option<Bytes>) -> Result<Fetched, ApiError> {
        self.send_json(reqwest::Method::POST, url, body).await
    }

    /// POSTs a write that is not idempotent: resent only when it certainly did not happen (429,
    /// a refused token); a 5xx, timeout or reset ends in [`ApiError::OutcomeUnknown`].
    pub async fn post_once(&self, url: Url, body: Option<Bytes>) -> Result<Fetched, ApiError> {
        self.write_once(reqwest::Method::POST, url, body).await
    }

    /// Sends one API request until it is answered or the retry policy gives up. The token is
    /// taken at the moment of sending, after any wait, so it cannot expire while the request waits.
    async fn send_json(&self, method: reqwest::Method, url: Url, body: Option<Bytes>) -> Result<Fetched, ApiError> {
        let pace = LimiterPace(&self.limiter);
        let (url_ref, method_ref, body_ref) = (&url, &method, &body);
        let result = self
            .retrier
            .run(url.as_str(), &pace, move || async move {
                let token = match self.tokens.token().await {
                    Ok(t) => t,
                    Err(e) => return Attempt::Fatal(ApiError::Auth(e)),
                };
                let sent_at = Instant::now();
                let answer = self.attempt(method_ref, url_ref, body_ref, &token).await;
                self.after_answer(answer, &token, sent_at).await
            })
            .await;
        let attempts = match &result {
            Ok(s) => s.attempts,
            Err(GaveUp::Exhausted { attempts, .. }) => *attempts,
            Err(GaveUp::Fatal(_)) => 1,
        };
        self.stats.retries.fetch_add(
            u64::from(attempts.saturating_sub(1)),
            std::sync::atomic::Ordering::Relaxed,
        );
        result
            .map(|s| Fetched {
                body: s.value,
                attempts: s.attempts,
            })
            .map_err(|e| gave_up(e, url.to_string()))
    }

    /// Downloads a signed URL (an export job's result): no Authorization header, no API rate
    /// limit, the same retry policy. The URL's query (its signature) never appears in errors.
    pub async fn download(&self, url: &Url) -> Result<Bytes, ApiError> {
        let mut shown = url.clone();
        shown.set_query(None);
        let shown = shown.to_string();
        let result = self
            .retrier
            .run(&shown, &super::retry::Unpaced, || async {
                let sent = self
                    .http
                    .get(url.clone())
                    .timeout(self.retrier.config().request_timeout)
                    .send()
                    .await;
                let resp = match sent {
                    Ok(r) => r,
                    Err(e) => return transport_fault(&e),
                };
                let status = resp.status().as_u16();
                let retry_after = retry_after_of(resp.headers());
                match (status, resp.bytes().await) {
                    (200..=299, Ok(b)) => Attempt::Done(b),
                    (_, Err(e)) => transport_fault(&e),
                    (429 | 408 | 500..=599, _) => Attempt::Transient {
                        retry_after,
                        reason: format!("HTTP {status} downloading {shown}"),
                    },
                    (_, Ok(_)) => Attempt::Fatal(ApiError::Rejected {
                        url: shown.clone(),
                        status,
                        message: "the signed download URL was refused (expired?)".into(),
                        correlation_id: None,
                    }),
                }
            })
            .await;
        result.map(|s| s.value).map_err(|e| gave_up(e, shown))
    }

    /// Tells the token provider how its token fared; a refused token is replaced (or the client
    /// found revoked) before the driver decides what follows.
    async fn after_answer(
        &self,
        answer: Attempt<Box<RawValue>, ApiError>,
        token: &AccessToken,
        sent_at: Instant,
    ) -> Attempt<Box<RawValue>, ApiError> {
        match answer {
            Attempt::Fatal(ApiError::Unauthorized { url, correlation_id }) => {
                match self.tokens.refused(token, sent_at).await {
                    Ok(()) => Attempt::Reauthorized {
                        reason: format!("HTTP 401 at {url}{}", correlation(&correlation_id)),
                    },
                    Err(AuthError::RefusedFresh) => Attempt::Fatal(ApiError::Unauthorized { url, correlation_id }),
                    Err(e) => Attempt::Fatal(e.into()),
                }
            }
            Attempt::Done(body) => {
                self.tokens.accepted();
                Attempt::Done(body)
            }
            other => other,
        }
    }

    /// Sends one request and classifies the answer.
    async fn attempt(
        &self,
        method: &reqwest::Method,
        url: &Url,
        body: &Option<Bytes>,
        token: &AccessToken,
    ) -> Attempt<Box<RawValue>, ApiError> {
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(token.value.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.retrier.config().request_timeout);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let sent = request.send().await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                self.stats.record(0);
                return transport_fault(&e);
            }
        };
        let status = resp.status().as_u16();
        self.stats.record(status);
        let correlation_id = resp
            .headers()
            .get("inin-correlation-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let retry_after = retry_after_of(resp.headers());
        let body: Bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Attempt::Transient {
                    retry_after: None,
                    reason: format!("HTTP {status} but {}", describe_transport_error(&e)),
                };
            }
        };
        classify(url, status, &body, retry_after, correlation_id)
    }
}

/// What an answer means: done, wait and retry, or fail.
fn classify(
    url: &Url,
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    correlation_id: Option<String>,
) -> Attempt<Box<RawValue>, ApiError> {
    let detail = || {
        let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
        match (parsed.message, parsed.code) {
            (Some(m), Some(c)) => format!("{m} [{c}]"),
            (Some(m), None) => m,
            (None, Some(c)) => c,
            (None, None) => String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_string(),
        }
    };
    let body = if body.is_empty() && (200..300).contains(&status) {
        b"{}".as_slice()
    } else {
        body
    };
    let waited = match retry_after {
        Some(d) => format!(", Retry-After {:.1}s", d.as_secs_f64()),
        None => ", no Retry-After".into(),
    };
    let url_s = url.to_string();
    match status {
        200..=299 => match serde_json::from_slice::<Box<RawValue>>(body) {
            Ok(v) => Attempt::Done(v),
            Err(e) => Attempt::Transient {
                retry_after: None,
                reason: format!(
                    "HTTP {status} with a body that is not valid JSON ({e}, {} bytes)",
                    body.len()
                ),
            },
        },
        401 => {
            debug!(url = %url_s, "401 from the API");
            Attempt::Fatal(ApiError::Unauthorized {
                url: url_s,
                correlation_id,
            })
        }
        403 => Attempt::Fatal(ApiError::Forbidden {
            url: url_s,
            message: detail(),
            correlation_id,
        }),
        404 | 410 => Attempt::Fatal(ApiError::NotFound {
            url: url_s,
            status,
            correlation_id,
        }),
        429 => Attempt::Throttled {
            retry_after,
            reason: format!(
                "throttled by the API (HTTP 429{waited}){}",
                correlation(&correlation_id)
            ),
        },
        408 | 500..=599 => Attempt::Transient {
            retry_after,
            reason: format!(
                "HTTP {status}: {}{}{}",
                detail(),
                if retry_after.is_some() { waited.as_str() } else { "" },
                correlation(&correlation_id)
            ),
        },
        _ => Attempt::Fatal(ApiError::Rejected {
            url: url_s,
            status,
            message: detail(),
            correlation_id,
        }),
    }
}

/// A request that never got a whole answer (connect, timeout, reset) may succeed on a retry.
pub(crate) fn transport_fault<T, E>(e: &reqwest::Error) -> Attempt<T, E> {
    Attempt::Transient {
        retry_after: None,
        reason: describe_transport_error(e),
    }
}

/// A transport error in plain words, without any URL query or credentials.
pub(crate) fn describe_transport_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the connection broke while reading the body"
    } else if e.is_request() {
        "the request failed"
    } else {
        "transport error"
    };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut deepest = None;
    while let Some(s) = source {
        deepest = Some(s.to_string());
        source = s.source();
    }
    match deepest {
        Some(d) => format!("{kind} ({d})"),
        None => kind.to_string(),
    }
}

/// How a PUT to a presigned upload URL ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadAnswer {
    /// 2xx: the bytes were stored.
    Stored,
    /// 403: the URL expired (ask for a new one).
    Expired,
    /// Another 4xx: the upload was refused; `message` says why.
    Refused { status: u16, message: String },
    /// No clear answer (5xx, timeout, reset): the bytes may or may not have been stored.
    Unknown(String),
}

impl GenesysClient {
    /// Sends a write that is not idempotent (`POST`, `PUT`, `DELETE`) once: resent only when it
    /// certainly did not happen (429, a refused token); a 5xx, timeout or reset ends in
    /// [`ApiError::OutcomeUnknown`] and the caller reads the state back.
    pub async fn write_once(
        &self,
        method: reqwest::Method,
        url: Url,
        body: Option<Bytes>,
    ) -> Result<Fetched, ApiError> {
        let pace = LimiterPace(&self.limiter);
        let (url_ref, body_ref, method_ref) = (&url, &body, &method);
        let result = self
            .retrier
            .run(url.as_str(), &pace, move || async move {
                let token = match self.tokens.token().await {
                    Ok(t) => t,
                    Err(e) => return Attempt::Fatal(ApiError::Auth(e)),
                };
                let sent_at = Instant::now();
                let answer = self.attempt(method_ref, url_ref, body_ref, &token).await;
                match self.after_answer(answer, &token, sent_at).await {
                    Attempt::Transient { reason, .. } => Attempt::Fatal(ApiError::OutcomeUnknown {
                        url: url_ref.to_string(),
                        reason,
                    }),
                    other => other,
                }
            })
            .await;
        result
            .map(|s| Fetched {
                body: s.value,
                attempts: s.attempts,
            })
            .map_err(|e| gave_up(e, url.to_string()))
    }

    /// PUTs `body` to a presigned upload URL once, with exactly `headers` and no Authorization
    /// header (the storage behind it refuses one), outside the API's rate limit. The URL's query
    /// (its signature) never appears in messages.
    pub async fn put_presigned(&self, url: &Url, headers: &[(String, String)], body: Bytes) -> UploadAnswer {
        let mut request = self
            .http
            .put(url.clone())
            .timeout(self.retrier.config().request_timeout)
            .body(body);
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("authorization") {
                continue;
            }
            request = request.header(name.as_str(), value.as_str());
        }
        let resp = match request.send().await {
            Ok(r) => r,
            Err(e) => return UploadAnswer::Unknown(describe_transport_error(&e)),
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let message: String = text.chars().take(200).collect();
        match status {
            200..=299 => UploadAnswer::Stored,
            403 => UploadAnswer::Expired,
            408 | 429 | 500..=599 => UploadAnswer::Unknown(format!("HTTP {status}")),
            _ => UploadAnswer::Refused { status, message },
        }
    }
}
