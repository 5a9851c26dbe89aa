//! OAuth client-credentials tokens: fetched once, shared by every request, refreshed shortly
//! before they expire and once after a 401.
//!
//! The cache sits behind an async mutex, so when many fetchers need a token at the same moment
//! exactly one of them asks the login host and the others wait for its answer (single flight).

use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::{info, warn};

use super::retry::{RetryConfig, parse_retry_after};
use crate::secret::Secret;

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The login host refused the client id or secret (400/401 `invalid_client`).
    #[error(
        "Genesys Cloud rejected the OAuth client credentials at {url} (HTTP {status}: {description}); \
         check the client id and secret (GENESYSCLOUD_OAUTHCLIENT_ID / GENESYSCLOUD_OAUTHCLIENT_SECRET) and the region"
    )]
    Rejected {
        url: String,
        status: u16,
        description: String,
    },
    /// The login host kept failing or could not be reached.
    #[error(
        "could not get an OAuth token from {url} after {attempts} attempts: {reason}; check the region or --login-url and the network"
    )]
    Unavailable { url: String, attempts: u32, reason: String },
    /// A token issued after a 401 was refused too: refreshing again would only loop.
    #[error("the API refused a freshly issued token")]
    RefusedFresh,
    /// The login host answered 200 with something that is not a token.
    #[error("the login host {url} answered with an unreadable token response: {reason}")]
    BadResponse { url: String, reason: String },
}

/// A bearer token and when it stops being usable.
#[derive(Clone, Debug)]
pub struct AccessToken {
    /// The token itself; redacted in every print.
    pub value: Secret,
    refresh_at: Instant,
    /// When it was issued because the previous token was refused with a 401.
    after_rejection: Option<Instant>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<f64>,
}

#[derive(Deserialize, Default)]
struct OAuthErrorBody {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Fetches and caches client-credentials tokens for one OAuth client.
#[derive(Debug)]
pub struct TokenProvider {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    client_secret: Secret,
    retry: RetryConfig,
    cached: Mutex<Option<AccessToken>>,
}

impl TokenProvider {
    /// A provider for the client-credentials grant at `login_url` + `/oauth/token`.
    pub fn new(
        http: reqwest::Client,
        login_url: &str,
        client_id: String,
        client_secret: Secret,
        retry: RetryConfig,
    ) -> Self {
        TokenProvider {
            http,
            token_url: format!("{}/oauth/token", login_url.trim_end_matches('/')),
            client_id,
            client_secret,
            retry,
            cached: Mutex::new(None),
        }
    }

    /// A token that is valid now, fetching one if the cache is empty or about to expire.
    pub async fn token(&self) -> Result<AccessToken, AuthError> {
        let mut cached = self.cached.lock().await;
        if let Some(t) = cached.as_ref()
            && Instant::now() < t.refresh_at
        {
            return Ok(t.clone());
        }
        let fresh = self.fetch().await?;
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    /// Called after a 401 with the token that was refused: fetches a new one unless another
    /// caller already did, so a burst of 401s costs one token request.
    pub async fn refresh_after_rejection(&self, rejected: &AccessToken) -> Result<AccessToken, AuthError> {
        let mut cached = self.cached.lock().await;
        if let Some(t) = cached.as_ref()
            && t.value != rejected.value
            && Instant::now() < t.refresh_at
        {
            return Ok(t.clone());
        }
        // A token issued moments ago in answer to a 401 and refused again: the client is revoked.
        if rejected
            .after_rejection
            .is_some_and(|at| at.elapsed() < Duration::from_secs(60))
        {
            return Err(AuthError::RefusedFresh);
        }
        info!("the API refused the access token (401); requesting a new one");
        let mut fresh = self.fetch().await?;
        fresh.after_rejection = Some(Instant::now());
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    async fn fetch(&self) -> Result<AccessToken, AuthError> {
        let mut transient_retries = 0u32;
        let mut throttle_retries = 0u32;
        loop {
            let attempt = self
                .http
                .post(&self.token_url)
                .basic_auth(&self.client_id, Some(self.client_secret.expose()))
                .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials")
                .timeout(self.retry.request_timeout)
                .send()
                .await;
            let reason = match attempt {
                Err(e) => describe_transport_error(&e),
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_success() {
                        let issued = Instant::now();
                        return match resp.bytes().await {
                            Ok(body) => self.parse_token(&body, issued),
                            Err(e) => Err(AuthError::BadResponse {
                                url: self.token_url.clone(),
                                reason: describe_transport_error(&e),
                            }),
                        };
                    }
                    if status.as_u16() == 429 {
                        let retry_after = resp
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(parse_retry_after);
                        if throttle_retries < self.retry.max_throttle_retries
                            && retry_after.is_none_or(|d| d <= self.retry.max_retry_after)
                        {
                            let wait = self.retry.throttle_wait(retry_after, throttle_retries);
                            throttle_retries += 1;
                            warn!(
                                wait_ms = wait.as_millis() as u64,
                                "the login host is throttling token requests (429); waiting before retrying"
                            );
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                        return Err(AuthError::Unavailable {
                            url: self.token_url.clone(),
                            attempts: transient_retries + throttle_retries + 1,
                            reason: "throttled (HTTP 429)".into(),
                        });
                    }
                    if status.is_client_error() {
                        let body = resp.bytes().await.unwrap_or_default();
                        let parsed: OAuthErrorBody = serde_json::from_slice(&body).unwrap_or_default();
                        let description = parsed
                            .error_description
                            .or(parsed.description)
                            .or(parsed.message)
                            .or(parsed.error)
                            .unwrap_or_else(|| "no description".into());
                        return Err(AuthError::Rejected {
                            url: self.token_url.clone(),
                            status: status.as_u16(),
                            description: description.replace(self.client_secret.expose(), "[redacted]"),
                        });
                    }
                    format!("HTTP {status}")
                }
            };
            if transient_retries >= self.retry.max_retries {
                return Err(AuthError::Unavailable {
                    url: self.token_url.clone(),
                    attempts: transient_retries + throttle_retries + 1,
                    reason,
                });
            }
            let wait = self.retry.backoff(transient_retries);
            transient_retries += 1;
            warn!(reason = %reason, wait_ms = wait.as_millis() as u64, "token request failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    fn parse_token(&self, body: &[u8], issued: Instant) -> Result<AccessToken, AuthError> {
        let parsed: TokenResponse = serde_json::from_slice(body).map_err(|e| AuthError::BadResponse {
            url: self.token_url.clone(),
            reason: format!("not a token response ({e})"),
        })?;
        if parsed.access_token.is_empty() {
            return Err(AuthError::BadResponse {
                url: self.token_url.clone(),
                reason: "empty access_token".into(),
            });
        }
        let lifetime = parsed
            .expires_in
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(|s| Duration::from_secs_f64(s.min(1e9)))
            .unwrap_or(Duration::from_secs(300));
        // Refresh a little early: a tenth of the lifetime, at most a minute.
        let margin = (lifetime / 10).min(Duration::from_secs(60));
        info!(expires_in_s = lifetime.as_secs(), "obtained an OAuth access token");
        Ok(AccessToken {
            value: Secret::new(parsed.access_token),
            refresh_at: issued + lifetime - margin,
            after_rejection: None,
        })
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
