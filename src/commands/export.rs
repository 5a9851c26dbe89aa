//! `flowvault export`: check the destination, authenticate, then run the pipeline.

use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use crate::config::ExportSettings;
use crate::export::{self, ExportOptions, ExportReport, StopCause, StopSignal};
use crate::genesys::{ClientConfig, GenesysClient, RateLimiter, TokenProvider};
use crate::sink::{self, Destination, Format, LocalObjectsSink, LocalTarGzSink, Sink, SinkError};

/// A failure before the pipeline could start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The destination failed its preflight check.
    #[error("destination check failed: {0}")]
    Destination(#[from] SinkError),
    /// Authentication failed.
    #[error(transparent)]
    Auth(#[from] crate::genesys::ApiError),
    /// The HTTP client could not be built.
    #[error("could not set up the HTTP client: {0}")]
    Http(String),
}

/// A destination that passed its checks and is ready to receive a run.
pub enum Prepared {
    /// A local directory.
    Local(std::path::PathBuf),
    /// A checked S3 bucket.
    S3(Box<sink::s3::S3Destination>),
}

/// Checks the destination without writing a run into it, before any Genesys call.
pub async fn preflight(settings: &ExportSettings) -> Result<Prepared, SinkError> {
    match &settings.destination {
        Destination::Local(root) => {
            sink::local::preflight(root, &settings.run_id).await?;
            Ok(Prepared::Local(root.clone()))
        }
        Destination::S3 { bucket, prefix } => Ok(Prepared::S3(Box::new(
            sink::s3::S3Destination::connect(bucket, prefix, &settings.run_id, &settings.s3).await?,
        ))),
    }
}

/// Opens the run in a prepared destination.
pub async fn open_sink(prepared: Prepared, settings: &ExportSettings) -> Result<Box<dyn Sink>, SinkError> {
    match (prepared, settings.format) {
        (Prepared::Local(root), Format::TarGz) => Ok(Box::new(LocalTarGzSink::create(&root, &settings.run_id).await?)),
        (Prepared::Local(root), Format::Objects) => {
            Ok(Box::new(LocalObjectsSink::create(&root, &settings.run_id).await?))
        }
        (Prepared::S3(dest), format) => Ok(dest.into_sink(format)),
    }
}

/// Builds the HTTP client every Genesys request goes through (rustls, certificate checks on).
pub fn http_client(concurrency: usize) -> Result<reqwest::Client, StartError> {
    reqwest::Client::builder()
        .user_agent(concat!("flowvault/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        .pool_max_idle_per_host(concurrency.max(4))
        .build()
        .map_err(|e| StartError::Http(e.to_string()))
}

/// Runs one export with `settings` until it ends or `stop` fires: destination check,
/// authentication, and only then the run's files or objects.
pub async fn run(settings: &ExportSettings, stop: StopSignal) -> Result<ExportReport, StartError> {
    let prepared = preflight(settings).await?;
    let http = http_client(settings.concurrency)?;
    let tokens = Arc::new(TokenProvider::new(
        http.clone(),
        settings.login_url.as_str(),
        settings.client_id.clone(),
        settings.client_secret.clone(),
        settings.retry.clone(),
    ));
    let limiter = Arc::new(RateLimiter::new(settings.rate_per_second));
    let client = Arc::new(GenesysClient::new(
        http,
        ClientConfig {
            api_url: settings.api_url.clone(),
            retry: settings.retry.clone(),
        },
        tokens,
        limiter,
    ));
    client.authenticate().await?;
    let sink = open_sink(prepared, settings).await?;
    info!(destination = %sink.location(), format = %settings.format, "destination is ready");
    if let Some(limit) = settings.max_duration {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            stop.stop(StopCause::MaxDuration(limit));
        });
    }
    info!(
        api_url = %settings.api_url,
        concurrency = settings.concurrency,
        rate_limit_per_s = settings.rate_per_second.unwrap_or(0.0),
        "starting export run {}", settings.run_id
    );
    let options = ExportOptions {
        run_id: settings.run_id.clone(),
        format: settings.format,
        destination: settings.destination.to_string(),
        region: settings.region.map(|r| r.domain.to_string()),
        type_filter: settings.types.clone(),
        page_size: settings.page_size,
        concurrency: settings.concurrency,
        shutdown_grace: settings.shutdown_grace,
    };
    Ok(export::run(client, sink, options, stop).await)
}
