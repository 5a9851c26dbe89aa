//! S3 destinations: one object per flow, or the tar.gz streamed as a multipart upload.
//!
//! Both sit behind the same [`Sink`] trait as the local destinations. The bucket is checked
//! (`HeadBucket`) before any Genesys call. Every object and part carries an explicit
//! `x-amz-checksum-sha256`, so the store verifies what it received. The archive uses the same
//! [`TarGzEncoder`] as the local file; parts are uploaded while later flows are still being
//! fetched, a bounded number at a time, so memory stays near part size × parts in flight. On any
//! failure or interrupt the multipart upload is aborted: no half archive is left behind.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{RequestChecksumCalculation, retry::RetryConfig, timeout::TimeoutConfig};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ServerSideEncryption, StorageClass,
};
use base64::Engine;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::{ARCHIVE_NAME, Format, MANIFEST_NAME, Sink, SinkError, TarGzEncoder};
use crate::config::S3Settings;

/// S3 allows at most this many parts in one multipart upload.
const MAX_PARTS: i32 = 10_000;

/// A checked bucket and the key prefix of this run.
pub struct S3Destination {
    client: Client,
    bucket: String,
    /// `prefix/RUN/` (or `RUN/` without a prefix).
    run_prefix: String,
    run_id: String,
    settings: S3Settings,
}

fn b64_sha256(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

/// An SDK error in plain words: the service's code and message, or why the request never got
/// an answer. Credentials are never part of these messages.
pub fn describe<E, R>(e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            match (err.code(), err.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_string(),
                _ => format!("{}", DisplayErrorContext(e)),
            }
        }
        SdkError::DispatchFailure(_) => format!("could not reach the S3 endpoint ({})", DisplayErrorContext(e)),
        SdkError::TimeoutError(_) => "the S3 request timed out".to_string(),
        _ => format!("{}", DisplayErrorContext(e)),
    }
}

fn status_of<E, R: HasStatus>(e: &SdkError<E, R>) -> Option<u16> {
    e.raw_response().map(|r| r.status_code())
}

trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// Builds an S3 client from the standard AWS chain plus the overrides in `settings`.
pub async fn build_client(settings: &S3Settings) -> Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &settings.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let shared = loader.load().await;
    let mut builder = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(settings.force_path_style)
        .retry_config(RetryConfig::standard().with_max_attempts(5))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(300))
                .build(),
        );
    if shared.region().is_none() && settings.region.is_none() {
        builder = builder.region(aws_config::Region::new("us-east-1"));
    }
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.endpoint_url(endpoint.clone());
    }
    if settings.checksum_when_required {
        builder = builder.request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
    }
    Client::from_conf(builder.build())
}

impl S3Destination {
    /// Checks that the bucket exists and is reachable with these credentials, and that the run's
    /// prefix does not already hold a run. Fails in seconds on a wrong endpoint or bucket.
    pub async fn connect(bucket: &str, prefix: &str, run_id: &str, settings: &S3Settings) -> Result<Self, SinkError> {
        let client = build_client(settings).await;
        let endpoint = settings.endpoint.clone().unwrap_or_else(|| "AWS S3".to_string());
        if let Err(e) = client.head_bucket().bucket(bucket).send().await {
            let msg = match (status_of(&e), e.as_service_error().map(|s| s.is_not_found())) {
                (_, Some(true)) | (Some(404), _) => {
                    format!("bucket `{bucket}` does not exist at {endpoint}; create it or fix --to")
                }
                (Some(403), _) => format!(
                    "access to bucket `{bucket}` at {endpoint} is denied (HTTP 403); check the AWS credentials and the bucket policy"
                ),
                (Some(301), _) => {
                    format!("bucket `{bucket}` is in another region; set --s3-region to the bucket's region")
                }
                _ => format!("cannot use bucket `{bucket}` at {endpoint}: {}", describe(&e)),
            };
            return Err(SinkError::Destination(msg));
        }
        let run_prefix = if prefix.is_empty() {
            format!("{run_id}/")
        } else {
            format!("{prefix}/{run_id}/")
        };
        let dest = S3Destination {
            client,
            bucket: bucket.to_string(),
            run_prefix,
            run_id: run_id.to_string(),
            settings: settings.clone(),
        };
        for existing in [MANIFEST_NAME, ARCHIVE_NAME] {
            let key = dest.key(existing);
            if dest.client.head_object().bucket(bucket).key(&key).send().await.is_ok() {
                return Err(SinkError::Destination(format!(
                    "s3://{bucket}/{key} already exists: this run id already holds a run; choose another --run-id"
                )));
            }
        }
        Ok(dest)
    }

    /// `s3://bucket/prefix/RUN`.
    pub fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.run_prefix.trim_end_matches('/'))
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.run_prefix)
    }

    /// The sink for `format` writing into this run's prefix.
    pub fn into_sink(self, format: Format) -> Box<dyn Sink> {
        let dest = Arc::new(self);
        let permits = Arc::new(Semaphore::new(dest.settings.uploads_in_flight.max(1)));
        match format {
            Format::Objects => Box::new(S3ObjectsSink {
                dest,
                permits,
                uploads: JoinSet::new(),
                failures: Vec::new(),
            }),
            Format::TarGz => Box::new(S3TarGzSink {
                key: dest.key(ARCHIVE_NAME),
                part_size: dest.settings.part_size as usize,
                dest,
                permits,
                encoder: Some(TarGzEncoder::new()),
                buffer: Vec::new(),
                upload_id: None,
                next_part: 1,
                uploads: JoinSet::new(),
                parts: Vec::new(),
            }),
        }
    }

    /// PutObject with an explicit SHA-256 checksum and the run's metadata and options.
    async fn put_object(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), String> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(b64_sha256(&body))
            .metadata("flowvault-run-id", &self.run_id)
            .body(ByteStream::from(body));
        if let Some(sse) = &self.settings.sse {
            req = req.server_side_encryption(ServerSideEncryption::from(sse.as_str()));
        }
        if let Some(k) = &self.settings.sse_kms_key_id {
            req = req.ssekms_key_id(k);
        }
        if let Some(c) = &self.settings.storage_class {
            req = req.storage_class(StorageClass::from(c.as_str()));
        }
        req.send().await.map(|_| ()).map_err(|e| describe(&e))
    }

    async fn put_manifest(&self, manifest: Bytes) -> Result<(), SinkError> {
        let key = self.key(MANIFEST_NAME);
        self.put_object(&key, manifest, "application/json")
            .await
            .map_err(|e| SinkError::ObjectStore(format!("cannot write s3://{}/{key}: {e}", self.bucket)))
    }
}

/// One object per flow under `prefix/RUN/flows/`, uploaded concurrently.
struct S3ObjectsSink {
    dest: Arc<S3Destination>,
    permits: Arc<Semaphore>,
    uploads: JoinSet<(String, Result<(), String>)>,
    failures: Vec<(String, String)>,
}

impl S3ObjectsSink {
    fn record(&mut self, joined: Result<(String, Result<(), String>), tokio::task::JoinError>) {
        match joined {
            Ok((_, Ok(()))) => {}
            Ok((name, Err(e))) => {
                warn!("upload of {name} failed: {e}");
                self.failures.push((name, e));
            }
            Err(e) => self
                .failures
                .push(("(unknown)".into(), format!("upload task failed: {e}"))),
        }
    }
}

#[async_trait]
impl Sink for S3ObjectsSink {
    fn location(&self) -> String {
        self.dest.location()
    }

    async fn put(&mut self, name: &str, document: Bytes) -> Result<(), SinkError> {
        while let Some(done) = self.uploads.try_join_next() {
            self.record(done);
        }
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| SinkError::ObjectStore("the upload pool is closed".into()))?;
        let dest = self.dest.clone();
        let name = name.to_string();
        self.uploads.spawn(async move {
            let key = dest.key(&name);
            let result = dest.put_object(&key, document, "application/json").await;
            drop(permit);
            (
                name,
                result.map_err(|e| format!("cannot write s3://{}/{key}: {e}", dest.bucket)),
            )
        });
        Ok(())
    }

    async fn settle(&mut self) -> Result<Vec<(String, String)>, SinkError> {
        while let Some(done) = self.uploads.join_next().await {
            self.record(done);
        }
        Ok(std::mem::take(&mut self.failures))
    }

    async fn finish(&mut self, manifest: Bytes) -> Result<(), SinkError> {
        let late = self.settle().await?;
        if let Some((name, e)) = late.first() {
            return Err(SinkError::ObjectStore(format!(
                "upload of {name} failed after the manifest was built: {e}"
            )));
        }
        self.dest.put_manifest(manifest).await
    }

    async fn abort(&mut self, manifest: Bytes) -> Result<(), SinkError> {
        let _ = self.settle().await;
        self.dest.put_manifest(manifest).await
    }

    fn keeps_documents_on_abort(&self) -> bool {
        true
    }
}

/// `prefix/RUN/flows.tar.gz` streamed as a multipart upload (a single PutObject when small).
struct S3TarGzSink {
    dest: Arc<S3Destination>,
    key: String,
    permits: Arc<Semaphore>,
    encoder: Option<TarGzEncoder>,
    buffer: Vec<u8>,
    part_size: usize,
    upload_id: Option<String>,
    next_part: i32,
    uploads: JoinSet<Result<CompletedPart, String>>,
    parts: Vec<CompletedPart>,
}

impl S3TarGzSink {
    /// The size of the next part: the configured size, doubled every 2,500 parts so that even a
    /// huge archive fits in S3's 10,000 parts.
    fn current_part_size(&self) -> usize {
        let doublings = ((self.next_part - 1) / 2_500).min(3) as u32;
        self.part_size << doublings
    }

    fn err(&self, what: &str, e: String) -> SinkError {
        SinkError::ObjectStore(format!("{what} s3://{}/{}: {e}", self.dest.bucket, self.key))
    }

    fn collect_finished(&mut self) -> Result<(), SinkError> {
        while let Some(done) = self.uploads.try_join_next() {
            self.record(done)?;
        }
        Ok(())
    }

    fn record(
        &mut self,
        joined: Result<Result<CompletedPart, String>, tokio::task::JoinError>,
    ) -> Result<(), SinkError> {
        match joined {
            Ok(Ok(part)) => {
                self.parts.push(part);
                Ok(())
            }
            Ok(Err(e)) => Err(self.err("a part upload failed for", e)),
            Err(e) => Err(self.err("a part upload task failed for", e.to_string())),
        }
    }

    async fn start_upload(&mut self) -> Result<String, SinkError> {
        if let Some(id) = &self.upload_id {
            return Ok(id.clone());
        }
        let s = &self.dest.settings;
        let mut req = self
            .dest
            .client
            .create_multipart_upload()
            .bucket(&self.dest.bucket)
            .key(&self.key)
            .content_type("application/gzip")
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .metadata("flowvault-run-id", &self.dest.run_id);
        if let Some(sse) = &s.sse {
            req = req.server_side_encryption(ServerSideEncryption::from(sse.as_str()));
        }
        if let Some(k) = &s.sse_kms_key_id {
            req = req.ssekms_key_id(k);
        }
        if let Some(c) = &s.storage_class {
            req = req.storage_class(StorageClass::from(c.as_str()));
        }
        let out = req
            .send()
            .await
            .map_err(|e| self.err("cannot start the multipart upload of", describe(&e)))?;
        let id = out
            .upload_id()
            .ok_or_else(|| self.err("no upload id returned for", "the store answered without one".into()))?
            .to_string();
        info!(key = %self.key, "started multipart upload");
        self.upload_id = Some(id.clone());
        Ok(id)
    }

    /// Uploads `body` as the next part, waiting for a free slot first (backpressure).
    async fn ship_part(&mut self, body: Vec<u8>) -> Result<(), SinkError> {
        if self.next_part > MAX_PARTS {
            return Err(self.err("the archive outgrew S3's 10,000 parts for", "raise --part-size".into()));
        }
        let upload_id = self.start_upload().await?;
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| self.err("the upload pool is closed for", String::new()))?;
        self.collect_finished()?;
        let part_number = self.next_part;
        self.next_part += 1;
        let (client, bucket, key) = (self.dest.client.clone(), self.dest.bucket.clone(), self.key.clone());
        self.uploads.spawn(async move {
            let checksum = b64_sha256(&body);
            let len = body.len();
            let out = client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(part_number)
                .checksum_sha256(&checksum)
                .body(ByteStream::from(body))
                .send()
                .await;
            drop(permit);
            match out {
                Ok(o) => {
                    tracing::debug!(part_number, bytes = len, "uploaded part");
                    Ok(CompletedPart::builder()
                        .part_number(part_number)
                        .set_e_tag(o.e_tag().map(str::to_string))
                        .checksum_sha256(o.checksum_sha256().unwrap_or(&checksum))
                        .build())
                }
                Err(e) => Err(format!("part {part_number}: {}", describe(&e))),
            }
        });
        Ok(())
    }

    async fn ship_full_parts(&mut self) -> Result<(), SinkError> {
        while self.buffer.len() >= self.current_part_size() {
            let size = self.current_part_size();
            let rest = self.buffer.split_off(size);
            let part = std::mem::replace(&mut self.buffer, rest);
            self.ship_part(part).await?;
        }
        Ok(())
    }

    async fn seal(&mut self, manifest: &Bytes) -> Result<(), SinkError> {
        let mut encoder = self
            .encoder
            .take()
            .ok_or_else(|| self.err("already closed:", String::new()))?;
        encoder
            .append(MANIFEST_NAME, manifest)
            .map_err(|e| self.err("cannot encode the manifest into", e.to_string()))?;
        self.buffer.extend(encoder.take_output());
        self.buffer
            .extend(encoder.finish().map_err(|e| self.err("cannot finish", e.to_string()))?);
        if self.upload_id.is_none() && self.buffer.len() < self.current_part_size() {
            let body = Bytes::from(std::mem::take(&mut self.buffer));
            return self
                .dest
                .put_object(&self.key, body, "application/gzip")
                .await
                .map_err(|e| self.err("cannot write", e));
        }
        self.ship_full_parts().await?;
        if !self.buffer.is_empty() {
            let last = std::mem::take(&mut self.buffer);
            self.ship_part(last).await?;
        }
        while let Some(done) = self.uploads.join_next().await {
            self.record(done)?;
        }
        let upload_id = self.upload_id.clone().unwrap_or_default();
        let mut parts = std::mem::take(&mut self.parts);
        parts.sort_by_key(|p| p.part_number());
        let count = parts.len();
        self.dest
            .client
            .complete_multipart_upload()
            .bucket(&self.dest.bucket)
            .key(&self.key)
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| self.err("cannot complete the multipart upload of", describe(&e)))?;
        info!(key = %self.key, parts = count, "completed multipart upload");
        self.upload_id = None;
        Ok(())
    }

    async fn abort_upload(&mut self) {
        self.uploads.abort_all();
        while self.uploads.join_next().await.is_some() {}
        if let Some(id) = self.upload_id.take() {
            let aborted = self
                .dest
                .client
                .abort_multipart_upload()
                .bucket(&self.dest.bucket)
                .key(&self.key)
                .upload_id(&id)
                .send()
                .await;
            match aborted {
                Ok(_) => info!(key = %self.key, "aborted the multipart upload; no partial archive is left"),
                Err(e) => {
                    warn!(key = %self.key, "could not abort the multipart upload ({}); a bucket lifecycle rule for incomplete uploads will remove it", describe(&e))
                }
            }
        }
    }
}

#[async_trait]
impl Sink for S3TarGzSink {
    fn location(&self) -> String {
        self.dest.location()
    }

    async fn put(&mut self, name: &str, document: Bytes) -> Result<(), SinkError> {
        let encoder = self
            .encoder
            .as_mut()
            .ok_or_else(|| SinkError::ObjectStore("the archive is already closed".into()))?;
        encoder
            .append(name, &document)
            .map_err(|e| SinkError::ObjectStore(format!("cannot encode {name}: {e}")))?;
        let out = encoder.take_output();
        self.buffer.extend(out);
        self.collect_finished()?;
        self.ship_full_parts().await
    }

    async fn finish(&mut self, manifest: Bytes) -> Result<(), SinkError> {
        if let Err(e) = self.seal(&manifest).await {
            self.abort_upload().await;
            return Err(e);
        }
        self.dest.put_manifest(manifest).await
    }

    async fn abort(&mut self, manifest: Bytes) -> Result<(), SinkError> {
        self.encoder = None;
        self.buffer = Vec::new();
        self.abort_upload().await;
        self.dest.put_manifest(manifest).await
    }

    fn keeps_documents_on_abort(&self) -> bool {
        false
    }
}
