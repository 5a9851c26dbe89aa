//! S3 destinations: one object per flow, or the tar.gz streamed as a multipart upload.

use super::{Format, Sink, SinkError};
use crate::config::S3Settings;

/// Opens an S3 destination after checking the bucket.
pub async fn open(
    _bucket: &str,
    _prefix: &str,
    _run_id: &str,
    _format: Format,
    _s3: &S3Settings,
) -> Result<Box<dyn Sink>, SinkError> {
    Err(SinkError::Destination("S3 destinations are not available yet".into()))
}

/// Checks the bucket before any Genesys call.
pub async fn preflight(_bucket: &str, _prefix: &str, _run_id: &str, _s3: &S3Settings) -> Result<(), SinkError> {
    Err(SinkError::Destination("S3 destinations are not available yet".into()))
}
