//! `flowvault export`: check the destination, authenticate (the one place a run does), then run
//! the pipeline.

use std::sync::Arc;

use tracing::{info, warn};

use crate::export::{self, ExportOptions, ExportReport, StopSignal};
use crate::genesys::{ApiError, GenesysClient, Organization};
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
    /// The credentials belong to another org than `--expect-org` names.
    #[error(
        "wrong org: the credentials belong to org {found}, but --expect-org / FLOWVAULT_EXPECT_ORG says `{expected}`; \
         fix the secret or the expected org (nothing was listed or written)"
    )]
    WrongOrg { expected: String, found: String },
    /// `--expect-org` is set but the org could not be read.
    #[error("cannot check --expect-org `{expected}`: reading /api/v2/organizations/me failed: {source}")]
    OrgUnknown { expected: String, source: ApiError },
}

/// Runs one export with `settings` until it ends or `stop` fires: destination check,
/// authentication, and only then the run's files or objects.
pub async fn run(settings: &ExportSettings, stop: StopSignal) -> Result<ExportReport, StartError> {
    let sink = sink::open(&settings.destination, &settings.run_id, settings.format, &settings.s3).await?;
    let client = Arc::new(GenesysClient::connect(settings.client.clone())?);
    client.authenticate().await?;
    let organization = identify(&client, settings.expect_org.as_deref()).await?;
    if let Some(org) = &organization {
        sink.set_org(&org.id);
    }
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
    let options = ExportOptions {
        organization,
        ..settings.export_options()
    };
    Ok(export::run(client, sink, options, stop).await)
}

/// Reads the org the credentials belong to and checks it against `expected`. Without an
/// expectation, an org that cannot be read is a warning (the manifest then names no org).
async fn identify(client: &GenesysClient, expected: Option<&str>) -> Result<Option<Organization>, StartError> {
    match (client.organization().await, expected) {
        (Ok(org), Some(expected)) if !org.is(expected) => Err(StartError::WrongOrg {
            expected: expected.to_string(),
            found: org.describe(),
        }),
        (Ok(org), _) => {
            info!(org_id = %org.id, org = %org.describe(), "backing up org {}", org.describe());
            Ok(Some(org))
        }
        (Err(source), Some(expected)) => Err(StartError::OrgUnknown {
            expected: expected.to_string(),
            source,
        }),
        (Err(e), None) if e.is_fatal_for_run() => Err(StartError::Auth(e)),
        (Err(e), None) => {
            warn!("could not read the org's identity (the manifest will not name it): {e}");
            Ok(None)
        }
    }
}
