//! OAuth client-credentials tokens: fetched once, shared by every request, refreshed shortly
//! before they expire, and replaced when the API refuses one.
//!
//! The cache sits behind an async mutex, so when many requests need a token at the same moment
//! exactly one of them asks the login host and the others wait for its answer (single flight).
//! Callers take the token at the moment they send (after the rate limiter and any pause), so a
//! token never expires while its request waits. A refusal (401) counts as revocation only when a
//! token refused inside its own lifetime is followed by its replacement being refused too, with no
//! success in between; a token that merely expired on the way is replaced quietly. That works for
//! any lifetime from seconds to days.

use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::info;

use super::client::transport_fault;
use super::retry::{Attempt, GaveUp, Retrier, Unpaced, retry_after_of};
use crate::secret::Secret;

/// The settings that name the OAuth client, for error messages.
pub const CREDENTIAL_SETTINGS: &str = "GENESYSCLOUD_OAUTHCLIENT_ID / GENESYSCLOUD_OAUTHCLIENT_SECRET";

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The login host refused the client id or secret (400/401 `invalid_client`).
    #[error(
        "Genesys Cloud rejected the OAuth client credentials at {url} (HTTP {status}: {description}); \
         check the client id and secret ({CREDENTIAL_SETTINGS}) and the region"
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
    /// A token refused inside its lifetime, and then its replacement too: the client is revoked.
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
    /// When flowvault stops sending it (a little before it expires).
    refresh_at: Instant,
    /// How long it lasts (`expires_in`).
    pub lifetime: Duration,
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

#[derive(Debug, Default)]
struct Cache {
    current: Option<AccessToken>,
    /// Consecutive distinct tokens refused inside their lifetime, with no success since.
    refused_in_a_row: u32,
    /// The last token counted there, so a burst of 401s for one token counts once.
    last_refused: Option<Secret>,
    /// Found revoked: every later refusal is final, without asking for more tokens.
    revoked: bool,
}

/// Fetches and caches client-credentials tokens for one OAuth client.
#[derive(Debug)]
pub struct TokenProvider {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    client_secret: Secret,
    retrier: Retrier,
    cache: Mutex<Cache>,
    accepted_since_refusal: std::sync::atomic::AtomicBool,
}

impl TokenProvider {
    /// A provider for the client-credentials grant at `login_url` + `/oauth/token`.
    pub fn new(
        http: reqwest::Client,
        login_url: &str,
        client_id: String,
        client_secret: Secret,
        retrier: Retrier,
    ) -> Self {
        TokenProvider {
            http,
            token_url: format!("{}/oauth/token", login_url.trim_end_matches('/')),
            client_id,
            client_secret,
            retrier,
            cache: Mutex::new(Cache::default()),
            accepted_since_refusal: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// A token that is valid now, fetching one if the cache is empty or about to expire.
    pub async fn token(&self) -> Result<AccessToken, AuthError> {
        let mut cache = self.cache.lock().await;
        if let Some(t) = cache.current.as_ref()
            && Instant::now() < t.refresh_at
        {
            return Ok(t.clone());
        }
        let fresh = self.fetch().await?;
        cache.current = Some(fresh.clone());
        Ok(fresh)
    }

    /// Records that a request succeeded: any streak of refused tokens is over.
    pub fn accepted(&self) {
        self.accepted_since_refusal
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Called after a 401 for a request that sent `refused` at `sent_at`. Ok means a usable
    /// token is cached again and the request may be retried; [`AuthError::RefusedFresh`] means
    /// the client is revoked.
    pub async fn refused(&self, refused: &AccessToken, sent_at: Instant) -> Result<(), AuthError> {
        let mut cache = self.cache.lock().await;
        if self
            .accepted_since_refusal
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            cache.refused_in_a_row = 0;
            cache.last_refused = None;
            cache.revoked = false;
        }
        if cache.revoked {
            return Err(AuthError::RefusedFresh);
        }
        let current_is_refused = cache.current.as_ref().is_some_and(|c| c.value == refused.value);
        let inside_lifetime = sent_at < refused.refresh_at;
        if inside_lifetime && cache.last_refused.as_ref() != Some(&refused.value) {
            cache.refused_in_a_row += 1;
            cache.last_refused = Some(refused.value.clone());
            if cache.refused_in_a_row >= 2 {
                cache.revoked = true;
                return Err(AuthError::RefusedFresh);
            }
        }
        if !current_is_refused && cache.current.as_ref().is_some_and(|c| Instant::now() < c.refresh_at) {
            return Ok(()); // another request already replaced it
        }
        if inside_lifetime {
            info!("the API refused the access token (401); requesting a new one");
        } else {
            info!("the access token expired on the way (401); requesting a new one");
        }
        let fresh = self.fetch().await?;
        cache.current = Some(fresh);
        Ok(())
    }

    async fn fetch(&self) -> Result<AccessToken, AuthError> {
        let result = self.retrier.run(&self.token_url, &Unpaced, || self.attempt()).await;
        match result {
            Ok(s) => Ok(s.value),
            Err(GaveUp::Fatal(e)) => Err(e),
            Err(GaveUp::Exhausted { attempts, last }) => Err(AuthError::Unavailable {
                url: self.token_url.clone(),
                attempts,
                reason: last,
            }),
        }
    }

    async fn attempt(&self) -> Attempt<AccessToken, AuthError> {
        let sent = self
            .http
            .post(&self.token_url)
            .basic_auth(&self.client_id, Some(self.client_secret.expose()))
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .timeout(self.retrier.config().request_timeout)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return transport_fault(&e),
        };
        let status = resp.status();
        let retry_after = retry_after_of(resp.headers());
        if status.is_success() {
            let issued = Instant::now();
            return match resp.bytes().await {
                Ok(body) => match self.parse_token(&body, issued) {
                    Ok(t) => Attempt::Done(t),
                    Err(e) => Attempt::Fatal(e),
                },
                Err(e) => transport_fault(&e),
            };
        }
        if status.as_u16() == 429 {
            return Attempt::Throttled {
                retry_after,
                reason: "the login host is throttling token requests (HTTP 429)".into(),
            };
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
            return Attempt::Fatal(AuthError::Rejected {
                url: self.token_url.clone(),
                status: status.as_u16(),
                description: description.replace(self.client_secret.expose(), "[redacted]"),
            });
        }
        Attempt::Transient {
            retry_after,
            reason: format!("token request failed: HTTP {status}"),
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
            lifetime,
        })
    }
}
