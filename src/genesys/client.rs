//! Typed calls to the Genesys Cloud Platform API, each behind the shared rate limiter, token
//! provider and retry policy: list flows page by page, and fetch one flow's configuration.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use tracing::{debug, warn};
use url::Url;

use super::auth::{AuthError, TokenProvider, describe_transport_error};
use super::ratelimit::RateLimiter;
use super::retry::{RetryConfig, parse_retry_after};

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
    /// 401 even with a freshly issued token: the client or token was revoked.
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

/// A JSON body as served, with the number of attempts it took.
#[derive(Debug)]
pub struct Fetched {
    /// The body, validated as JSON but otherwise untouched.
    pub body: Box<RawValue>,
    /// Requests sent for it, the successful one included.
    pub attempts: u32,
}

/// One page of `GET /api/v2/flows`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowPage {
    /// The flows on this page, each kept exactly as served.
    #[serde(default)]
    pub entities: Option<Vec<Box<RawValue>>>,
    /// The page size the server actually used.
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

/// Settings for a [`GenesysClient`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Platform API base, e.g. `https://api.mypurecloud.com`.
    pub api_url: Url,
    /// Retry caps and delays.
    pub retry: RetryConfig,
}

/// The Platform API client: rate-limited, authenticated, retrying.
#[derive(Debug)]
pub struct GenesysClient {
    http: reqwest::Client,
    api_url: Url,
    tokens: Arc<TokenProvider>,
    limiter: Arc<RateLimiter>,
    retry: RetryConfig,
}

/// What one attempt came to, for the retry loop.
enum Attempt {
    Done(Box<RawValue>),
    Throttled {
        retry_after: Option<Duration>,
        reason: String,
    },
    Transient(String),
    Unauthorized(Option<String>),
    Failed(ApiError),
}

impl GenesysClient {
    /// A client sending through `http`, authenticated by `tokens`, paced by `limiter`.
    pub fn new(
        http: reqwest::Client,
        config: ClientConfig,
        tokens: Arc<TokenProvider>,
        limiter: Arc<RateLimiter>,
    ) -> Self {
        GenesysClient {
            http,
            api_url: config.api_url,
            tokens,
            limiter,
            retry: config.retry,
        }
    }

    /// The API base URL this client talks to.
    pub fn api_url(&self) -> &Url {
        &self.api_url
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

    /// `GET /api/v2/flows` for one page; `flow_type` is a single lowercase type filter.
    pub async fn list_flows_page(
        &self,
        page_number: u64,
        page_size: u64,
        flow_type: Option<&str>,
    ) -> Result<(FlowPage, u32), ApiError> {
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
        let page: FlowPage = serde_json::from_str(fetched.body.get()).map_err(|e| ApiError::Exhausted {
            url: url.to_string(),
            attempts: fetched.attempts,
            last: format!("the response is not a flow listing ({e})"),
        })?;
        Ok((page, fetched.attempts))
    }

    /// `GET /api/v2/flows/{id}/latestconfiguration`: the flow's latest saved definition, as served.
    pub async fn latest_configuration(&self, flow_id: &str) -> Result<Fetched, ApiError> {
        let url = self.endpoint(&["api", "v2", "flows", flow_id, "latestconfiguration"]);
        self.get_json(url).await
    }

    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.api_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    /// GET a JSON document, retrying throttling and transient faults within the caps.
    pub async fn get_json(&self, url: Url) -> Result<Fetched, ApiError> {
        let mut attempts = 0u32;
        let mut transient = 0u32;
        let mut throttled = 0u32;
        let mut refreshed = false;
        let mut token = self.tokens.token().await?;
        loop {
            self.limiter.acquire().await;
            let sent_at = tokio::time::Instant::now();
            attempts += 1;
            match self.attempt(&url, &token).await {
                Attempt::Done(body) => {
                    self.limiter.succeeded(sent_at);
                    return Ok(Fetched { body, attempts });
                }
                Attempt::Unauthorized(correlation_id) => {
                    if refreshed {
                        return Err(ApiError::Unauthorized {
                            url: url.to_string(),
                            correlation_id,
                        });
                    }
                    refreshed = true;
                    token = match self.tokens.refresh_after_rejection(&token).await {
                        Ok(t) => t,
                        Err(AuthError::RefusedFresh) => {
                            return Err(ApiError::Unauthorized {
                                url: url.to_string(),
                                correlation_id,
                            });
                        }
                        Err(e) => return Err(e.into()),
                    };
                }
                Attempt::Throttled { retry_after, reason } => {
                    if throttled >= self.retry.max_throttle_retries {
                        return Err(ApiError::Exhausted {
                            url: url.to_string(),
                            attempts,
                            last: format!("{reason}, {throttled} throttled retries"),
                        });
                    }
                    if let Some(d) = retry_after
                        && d > self.retry.max_retry_after
                    {
                        return Err(ApiError::Exhausted {
                            url: url.to_string(),
                            attempts,
                            last: format!(
                                "{reason}; Retry-After {}s exceeds the {}s cap",
                                d.as_secs(),
                                self.retry.max_retry_after.as_secs()
                            ),
                        });
                    }
                    let wait = self.retry.throttle_wait(retry_after, throttled);
                    throttled += 1;
                    self.limiter.throttled(wait, retry_after);
                    warn!(url = %url, wait_ms = wait.as_millis() as u64, retry = throttled, "{reason}; waiting as the API asked before retrying");
                    // The limiter holds everyone back; this request waits its turn there.
                }
                Attempt::Transient(reason) => {
                    if transient >= self.retry.max_retries {
                        return Err(ApiError::Exhausted {
                            url: url.to_string(),
                            attempts,
                            last: format!("{reason} ({transient} retries)"),
                        });
                    }
                    let wait = self.retry.backoff(transient);
                    transient += 1;
                    warn!(url = %url, wait_ms = wait.as_millis() as u64, retry = transient, "{reason}; backing off before retrying");
                    tokio::time::sleep(wait).await;
                    // A long outage may outlive the token; make sure the next try carries a valid one.
                    token = self.tokens.token().await?;
                }
                Attempt::Failed(e) => return Err(e),
            }
        }
    }

    async fn attempt(&self, url: &Url, token: &super::auth::AccessToken) -> Attempt {
        let sent = self
            .http
            .get(url.clone())
            .bearer_auth(token.value.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.retry.request_timeout)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return Attempt::Transient(describe_transport_error(&e)),
        };
        let status = resp.status().as_u16();
        let correlation_id = resp
            .headers()
            .get("inin-correlation-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body: Result<Bytes, _> = resp.bytes().await;
        let body = match body {
            Ok(b) => b,
            Err(e) => {
                return Attempt::Transient(format!("HTTP {status} but {}", describe_transport_error(&e)));
            }
        };
        let detail = || {
            let parsed: ErrorBody = serde_json::from_slice(&body).unwrap_or_default();
            match (parsed.message, parsed.code) {
                (Some(m), Some(c)) => format!("{m} [{c}]"),
                (Some(m), None) => m,
                (None, Some(c)) => c,
                (None, None) => String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_string(),
            }
        };
        let url_s = url.to_string();
        match status {
            200..=299 => match serde_json::from_slice::<Box<RawValue>>(&body) {
                Ok(v) => Attempt::Done(v),
                Err(e) => Attempt::Transient(format!(
                    "HTTP {status} with a body that is not valid JSON ({e}, {} bytes)",
                    body.len()
                )),
            },
            401 => {
                debug!(url = %url_s, "401 from the API");
                Attempt::Unauthorized(correlation_id)
            }
            403 => Attempt::Failed(ApiError::Forbidden {
                url: url_s,
                message: detail(),
                correlation_id,
            }),
            404 | 410 => Attempt::Failed(ApiError::NotFound {
                url: url_s,
                status,
                correlation_id,
            }),
            429 => Attempt::Throttled {
                retry_after,
                reason: format!(
                    "throttled by the API (HTTP 429{}){}",
                    match retry_after {
                        Some(d) => format!(", Retry-After {:.1}s", d.as_secs_f64()),
                        None => ", no Retry-After".into(),
                    },
                    correlation(&correlation_id)
                ),
            },
            408 | 500..=599 => {
                Attempt::Transient(format!("HTTP {status}: {}{}", detail(), correlation(&correlation_id)))
            }
            _ => Attempt::Failed(ApiError::Rejected {
                url: url_s,
                status,
                message: detail(),
                correlation_id,
            }),
        }
    }
}
