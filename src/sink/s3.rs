//! An S3 bucket prefix as a store: runs are `s3://bucket/prefix/RUN/...`.
//!
//! Objects go up with one PutObject each; the archive is streamed as a multipart upload (a single
//! PutObject when it stays small). Every object and part carries an explicit
//! `x-amz-checksum-sha256`, so the store verifies what it received. Parts are uploaded while later
//! flows are still being fetched, a bounded number at a time, so memory stays near part size ×
//! parts in flight. A discarded upload is aborted: no half archive is left behind. The bucket is
//! checked with one `ListObjectsV2` under the run's prefix, which needs only `s3:ListBucket` on
//! that prefix and also finds a run that already exists.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{RequestChecksumCalculation, retry::RetryConfig, timeout::TimeoutConfig};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, MetadataDirective, ServerSideEncryption, StorageClass,
};
use base64::Engine;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::{CopySource, Entry, SinkError, Store, Upload};

/// S3 allows at most this many parts in one multipart upload.
const MAX_PARTS: i32 = 10_000;
/// Smallest multipart part S3 accepts (except the last).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Largest multipart part S3 accepts.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// How to reach the bucket and how to write objects.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// Endpoint override for S3-compatible stores.
    pub endpoint: Option<String>,
    /// Region override.
    pub region: Option<String>,
    /// Path-style addressing.
    pub force_path_style: bool,
    /// Multipart part size in bytes.
    pub part_size: u64,
    /// Uploads in flight at once (parts or objects).
    pub uploads_in_flight: usize,
    /// `AES256` or `aws:kms`.
    pub sse: Option<String>,
    /// KMS key for `aws:kms`.
    pub sse_kms_key_id: Option<String>,
    /// Storage class.
    pub storage_class: Option<String>,
    /// Only send checksums S3 requires.
    pub checksum_when_required: bool,
    /// How long one S3 request may take before it is cut and retried (a frozen store).
    pub request_timeout: Duration,
    /// Leave multipart uploads that crashed runs left under the destination (report only).
    pub keep_incomplete_uploads: bool,
    /// Incomplete multipart uploads older than this are aborted at the start of a run.
    pub incomplete_upload_age: Duration,
    /// Static credentials (access key id, secret) instead of the standard AWS chain: for a
    /// library caller that holds its own, without touching the process environment.
    pub static_credentials: Option<(String, crate::secret::Secret)>,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            endpoint: None,
            region: None,
            force_path_style: false,
            part_size: 8 * 1024 * 1024,
            uploads_in_flight: 4,
            sse: None,
            sse_kms_key_id: None,
            storage_class: None,
            checksum_when_required: false,
            request_timeout: Duration::from_secs(60),
            keep_incomplete_uploads: false,
            incomplete_upload_age: Duration::from_secs(86_400),
            static_credentials: None,
        }
    }
}

/// A bucket and a key prefix (cheap to clone: the client is shared).
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    /// The destination's prefix, without leading or trailing `/`: runs, claims and crashed
    /// uploads are under it.
    prefix: String,
    /// The endpoint, for messages.
    endpoint: String,
    options: S3Options,
    /// The org the run reads, stamped on every object once known.
    org_id: Arc<std::sync::OnceLock<String>>,
    /// Whether this process has written anything (a claim of a run that wrote nothing is given back).
    wrote: Arc<std::sync::atomic::AtomicBool>,
}

/// `bucket/key` as CopyObject takes it (`from.key` is `bucket/key`): percent-encoded, `/` kept.
fn copy_source(from: &CopySource) -> String {
    let mut out = String::new();
    for b in from.key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
                _ => condensed(e),
            }
        }
        _ => condensed(e),
    }
}

/// A request that got no answer, condensed to its cause (credentials missing, endpoint
/// unreachable, timed out) on one line; the SDK's full text only at `--log-level debug`.
fn condensed<E, R>(e: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let full = format!("{}", DisplayErrorContext(e));
    tracing::debug!(error = %full, "S3 request failed");
    let lower = full.to_ascii_lowercase();
    if lower.contains("credential") || lower.contains("nomatchingauthscheme") {
        return "no AWS credentials were found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                AWS_PROFILE, or a role (add --log-level debug for the SDK's account)"
            .to_string();
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let cause = cause
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(160)
        .collect::<String>();
    match e {
        SdkError::TimeoutError(_) => "the S3 request timed out; check --s3-endpoint and the network".to_string(),
        SdkError::DispatchFailure(d) if d.is_timeout() => {
            "the S3 endpoint did not answer in time; check --s3-endpoint and the network".to_string()
        }
        SdkError::DispatchFailure(_) => {
            format!("could not reach the S3 endpoint ({cause}); check --s3-endpoint and the network")
        }
        _ => format!("the S3 request failed: {cause} (add --log-level debug for the SDK's account)"),
    }
}

/// What a refused request says about the bucket or prefix: missing, denied, another region, or
/// another failure (retryable when it may pass later).
pub(crate) fn access_error<E, R>(e: &SdkError<E, R>, bucket: &str, prefix: &str, endpoint: &str) -> SinkError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HasStatus,
{
    let code = e.as_service_error().and_then(|s| s.code()).map(str::to_string);
    match (status_of(e), code.as_deref()) {
        (_, Some("NoSuchBucket")) | (Some(404), _) => SinkError::BucketMissing {
            bucket: bucket.to_string(),
            endpoint: endpoint.to_string(),
        },
        (Some(403), _) => SinkError::AccessDenied {
            target: format!("s3://{bucket}/{prefix}"),
            endpoint: endpoint.to_string(),
        },
        (Some(301), _) => SinkError::Store {
            message: format!("bucket `{bucket}` is in another region; set --s3-region to the bucket's region"),
            retryable: false,
        },
        _ => SinkError::Store {
            message: format!("cannot use bucket `{bucket}` at {endpoint}: {}", describe(e)),
            retryable: true,
        },
    }
}

pub(crate) fn status_of<E, R: HasStatus>(e: &SdkError<E, R>) -> Option<u16> {
    e.raw_response().map(|r| r.status_code())
}

/// The HTTP status of a raw SDK response.
pub trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// Attempts per S3 request (the SDK's standard retry: timeouts, 5xx and throttling).
const S3_ATTEMPTS: u32 = 3;

/// Every request's timeouts: each attempt is cut after `request`, and a request with its retries
/// after [`S3_ATTEMPTS`] of them, so a store that stops answering ends the run instead of hanging it.
fn timeouts(request: Duration) -> TimeoutConfig {
    let request = request.max(Duration::from_millis(100));
    TimeoutConfig::builder()
        .connect_timeout(request.min(Duration::from_secs(5)))
        .read_timeout(request)
        .operation_attempt_timeout(request)
        .operation_timeout(request * S3_ATTEMPTS + Duration::from_secs(1))
        .build()
}

/// Builds an S3 client from the standard AWS chain plus the overrides in `settings`.
pub async fn build_client(settings: &S3Options) -> Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &settings.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some((key, secret)) = &settings.static_credentials {
        let credentials = aws_sdk_s3::config::Credentials::new(key, secret.expose(), None, None, "flowvault");
        loader = loader.credentials_provider(credentials);
    }
    let shared = loader.load().await;
    let mut builder = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(settings.force_path_style)
        .retry_config(RetryConfig::standard().with_max_attempts(S3_ATTEMPTS))
        .timeout_config(timeouts(settings.request_timeout));
    if shared.region().is_none() && settings.region.is_none() {
        builder = builder.region(aws_config::Region::new("us-east-1"));
    }
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.endpoint_url(endpoint.clone());
    }
    if settings.checksum_when_required {
        builder = builder.request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
    }
    Client::from_conf(builder.interceptor(NoteAnswers).build())
}

/// Notes every answer the store gives ([`super::note_answer`]), so a stopped run can tell a
/// frozen store from a slow one.
#[derive(Debug)]
struct NoteAnswers;

impl aws_sdk_s3::config::Intercept for NoteAnswers {
    fn name(&self) -> &'static str {
        "NoteAnswers"
    }

    fn read_after_transmit(
        &self,
        _context: &aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_s3::config::RuntimeComponents,
        _cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        super::note_answer();
        Ok(())
    }
}

impl S3Store {
    /// The store at `bucket`/`prefix`; nothing is sent yet.
    pub async fn new(bucket: &str, prefix: &str, options: &S3Options) -> Self {
        S3Store {
            client: build_client(options).await,
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            endpoint: options.endpoint.clone().unwrap_or_else(|| "AWS S3".to_string()),
            options: options.clone(),
            org_id: Arc::default(),
            wrote: Arc::default(),
        }
    }

    /// The key of `name` (relative to the prefix).
    fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    /// Where run `run_id` is.
    fn run_location(&self, run_id: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(run_id))
    }

    /// Checks, with one `ListObjectsV2` under the run's prefix, that the bucket exists and is
    /// readable with these credentials and that the prefix holds no run yet. Fails in seconds on
    /// a wrong endpoint or bucket.
    async fn check_run_free(&self, run_id: &str) -> Result<(), SinkError> {
        let run_prefix = format!("{}/", self.key(run_id));
        let listed = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&run_prefix)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| access_error(&e, &self.bucket, &run_prefix, &self.endpoint))?;
        match listed.contents().first().and_then(|o| o.key()) {
            Some(key) => Err(SinkError::RunExists {
                location: self.run_location(run_id),
                found: key.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Writes one small object under the prefix and deletes it again (`doctor`). `Ok(Some(why))`
    /// when the write worked but the delete was refused (the job's policy need not grant deletes).
    async fn write_probe(&self) -> Result<Option<String>, SinkError> {
        let name = ".flowvault-doctor/probe";
        self.put(name, Bytes::from_static(b"flowvault doctor probe\n"), "text/plain")
            .await?;
        let key = self.key(name);
        match self.client.delete_object().bucket(&self.bucket).key(&key).send().await {
            Ok(_) => Ok(None),
            Err(e) => Ok(Some(format!(
                "the probe s3://{}/{key} was written but could not be deleted ({}); delete it by hand — the export job itself never deletes",
                self.bucket,
                describe(&e)
            ))),
        }
    }

    fn store_error<E, R>(&self, what: &str, key: &str, e: &SdkError<E, R>) -> SinkError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + HasStatus,
    {
        let retryable = matches!(e, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_))
            || status_of(e).is_some_and(|s| s >= 500);
        SinkError::Store {
            message: format!("{what} s3://{}/{key}: {}", self.bucket, describe(e)),
            retryable,
        }
    }
}

/// The run id of object `name` (its first segment: `RUN/...`).
fn run_of(name: &str) -> &str {
    name.split('/').next().unwrap_or(name)
}

/// The run's metadata (run id, org) and the store's options (encryption, storage class) on a
/// request that creates an object: PutObject, CopyObject, CreateMultipartUpload.
macro_rules! with_run_options {
    ($req:expr, $store:expr, $run_id:expr) => {{
        let store: &S3Store = &$store;
        let mut req = $req.metadata("flowvault-run-id", $run_id);
        if let Some(org) = store.org_id.get() {
            req = req.metadata("flowvault-org-id", org);
        }
        if let Some(sse) = &store.options.sse {
            req = req.server_side_encryption(ServerSideEncryption::from(sse.as_str()));
        }
        if let Some(k) = &store.options.sse_kms_key_id {
            req = req.ssekms_key_id(k);
        }
        if let Some(c) = &store.options.storage_class {
            req = req.storage_class(StorageClass::from(c.as_str()));
        }
        req
    }};
}

#[async_trait]
impl Store for S3Store {
    fn writes_in_flight(&self) -> usize {
        self.options.uploads_in_flight
    }

    async fn check_run(&self, run_id: &str) -> Result<(), SinkError> {
        self.check_run_free(run_id).await
    }

    async fn claim(&self, run_id: &str) -> Result<(), SinkError> {
        self.check_run_free(run_id).await?;
        self.claim_run(run_id).await?;
        self.sweep_uploads().await;
        Ok(())
    }

    async fn probe(&self) -> Result<Option<String>, SinkError> {
        self.write_probe().await
    }

    fn set_org(&self, org_id: &str) {
        let _ = self.org_id.set(org_id.to_string());
    }

    async fn release(&self, run_id: &str) {
        self.release_claim(run_id).await;
    }

    async fn remove(&self, name: &str) -> Result<(), SinkError> {
        let key = self.key(name);
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.store_error("cannot delete", &key, &e))
    }

    fn location(&self) -> String {
        match self.prefix.as_str() {
            "" => format!("s3://{}", self.bucket),
            prefix => format!("s3://{}/{prefix}", self.bucket),
        }
    }

    /// PutObject with an explicit SHA-256 checksum and the run's metadata and options.
    async fn put(&self, name: &str, body: Bytes, content_type: &str) -> Result<(), SinkError> {
        self.wrote.store(true, std::sync::atomic::Ordering::Relaxed);
        let key = self.key(name);
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type(content_type)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(b64_sha256(&body))
            .body(ByteStream::from(body));
        req = with_run_options!(req, self, run_of(name));
        req.send()
            .await
            .map(|_| ())
            .map_err(|e| self.store_error("cannot write", &key, &e))
    }

    fn copy_source(&self, name: &str) -> Option<CopySource> {
        let key = self.key(name);
        Some(CopySource {
            origin: self.origin(),
            location: format!("s3://{}/{key}", self.bucket),
            key: format!("{}/{key}", self.bucket),
        })
    }

    fn can_copy(&self) -> bool {
        true
    }

    /// CopyObject within the endpoint, with this run's metadata and options; the store computes
    /// the copy's SHA-256, which must be `sha256`.
    async fn copy(&self, name: &str, from: &CopySource, sha256: &str) -> Result<(), SinkError> {
        if from.origin != self.origin() {
            return Err(from.cannot_copy_into(&self.location(), name));
        }
        self.wrote.store(true, std::sync::atomic::Ordering::Relaxed);
        let key = self.key(name);
        let mut req = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(&key)
            .copy_source(copy_source(from))
            .metadata_directive(MetadataDirective::Replace)
            .content_type("application/json")
            .checksum_algorithm(ChecksumAlgorithm::Sha256);
        req = with_run_options!(req, self, run_of(name));
        let out = req
            .send()
            .await
            .map_err(|e| self.store_error(&format!("cannot copy {from} to"), &key, &e))?;
        let copied = out
            .copy_object_result()
            .and_then(|r| r.checksum_sha256())
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok());
        match copied {
            Some(sha) if hex::encode(&sha) != sha256 => Err(SinkError::Store {
                message: format!(
                    "the copy of {from} at s3://{}/{key} has SHA-256 {} where the manifest says {sha256}",
                    self.bucket,
                    hex::encode(&sha)
                ),
                retryable: false,
            }),
            _ => Ok(()),
        }
    }

    async fn run_ids(&self) -> Result<Vec<String>, SinkError> {
        self.read_run_ids().await
    }

    async fn list(&self, dir: &str) -> Result<Vec<Entry>, SinkError> {
        self.read_list(dir).await
    }

    async fn open(&self, name: &str) -> Result<Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>, SinkError> {
        self.read_stream(name).await
    }

    async fn read(&self, name: &str) -> Result<Option<Bytes>, SinkError> {
        self.read_whole(name).await
    }

    async fn read_from(&self, name: &str, offset: u64) -> Result<Option<Bytes>, SinkError> {
        self.read_range(name, offset).await
    }

    async fn stored_sha256(&self, name: &str) -> Result<Option<String>, SinkError> {
        self.read_sha256(name).await
    }

    async fn create_upload(&self, name: &str, content_type: &str) -> Result<Box<dyn Upload>, SinkError> {
        self.wrote.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(Box::new(S3Upload {
            store: Arc::new(self.clone()),
            key: self.key(name),
            name: name.to_string(),
            content_type: content_type.to_string(),
            part_size: self.options.part_size as usize,
            permits: Arc::new(Semaphore::new(self.options.uploads_in_flight.max(1))),
            buffer: Vec::new(),
            upload_id: None,
            next_part: 1,
            uploads: JoinSet::new(),
            parts: Vec::new(),
        }))
    }
}

/// An object streamed as a multipart upload, or one PutObject when it stays under one part.
struct S3Upload {
    store: Arc<S3Store>,
    key: String,
    name: String,
    content_type: String,
    permits: Arc<Semaphore>,
    buffer: Vec<u8>,
    part_size: usize,
    upload_id: Option<String>,
    next_part: i32,
    uploads: JoinSet<Result<CompletedPart, String>>,
    parts: Vec<CompletedPart>,
}

impl S3Upload {
    /// The size of the next part: the configured size, doubled every 2,500 parts so that even a
    /// huge archive fits in S3's 10,000 parts.
    fn current_part_size(&self) -> usize {
        let doublings = ((self.next_part - 1) / 2_500).min(3) as u32;
        self.part_size << doublings
    }

    fn err(&self, what: &str, e: String) -> SinkError {
        SinkError::Store {
            message: format!("{what} s3://{}/{}: {e}", self.store.bucket, self.key),
            retryable: false,
        }
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
        let mut req = self
            .store
            .client
            .create_multipart_upload()
            .bucket(&self.store.bucket)
            .key(&self.key)
            .content_type(&self.content_type)
            .checksum_algorithm(ChecksumAlgorithm::Sha256);
        req = with_run_options!(req, self.store, run_of(&self.name));
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
        let (client, bucket, key) = (self.store.client.clone(), self.store.bucket.clone(), self.key.clone());
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
}

#[async_trait]
impl Upload for S3Upload {
    async fn write(&mut self, bytes: Vec<u8>) -> Result<(), SinkError> {
        self.buffer.extend(bytes);
        self.collect_finished()?;
        self.ship_full_parts().await
    }

    async fn complete(&mut self) -> Result<(), SinkError> {
        if self.upload_id.is_none() && self.buffer.len() < self.current_part_size() {
            let body = Bytes::from(std::mem::take(&mut self.buffer));
            let content_type = self.content_type.clone();
            return self.store.put(&self.name, body, &content_type).await;
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
        self.store
            .client
            .complete_multipart_upload()
            .bucket(&self.store.bucket)
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

    async fn discard(&mut self) {
        self.buffer = Vec::new();
        self.uploads.abort_all();
        while self.uploads.join_next().await.is_some() {}
        if let Some(id) = self.upload_id.take() {
            let aborted = self
                .store
                .client
                .abort_multipart_upload()
                .bucket(&self.store.bucket)
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

// After `with_run_options!`, which the claim's request uses too.
mod claim;
mod read;
