//! `flowvault export`: check the destination, authenticate (the one place a run does), then run
//! the pipeline.

use std::sync::Arc;

use tracing::info;

use crate::export::{self, ExportReport, StopSignal};
use crate::genesys::{ApiError, GenesysClient};
use crate::settings::ExportSettings;
use crate::sink::{self, SinkError};

/// A failure before the pipeline could start; nothing of the run was written.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The destination failed its check.
    #[error("destination check failed: {0}")]
    Destination(#[from] SinkError),
    /// Authentication failed, or the HTTP client could not be built.
    #[error(transparent)]
    Auth(#[from] ApiError),
}

/// Runs one export with `settings` until it ends or `stop` fires: destination check,
/// authentication, and only then the run's files or objects.
pub async fn run(settings: &ExportSettings, stop: StopSignal) -> Result<ExportReport, StartError> {
    let sink = sink::open(&settings.destination, &settings.run_id, settings.format, &settings.s3).await?;
    let client = Arc::new(GenesysClient::connect(settings.client.clone())?);
    client.authenticate().await?;
    info!(destination = %sink.location(), format = %settings.format, "destination is ready");
    if let Some(limit) = settings.max_duration {
        stop.stop_after(limit);
    }
    info!(
        api_url = %settings.client.api_url,
        concurrency = settings.client.concurrency,
        rate_limit_per_s = settings.client.rate_per_second.unwrap_or(0.0),
        "starting export run {}", settings.run_id
    );
    Ok(export::run(client, sink, settings.export_options(), stop).await)
}
