//! Claiming a run id in a bucket before anything of the run is written, and sweeping the
//! multipart uploads crashed runs left under the destination.
//!
//! The claim is `PREFIX/.flowvault-claims/RUN` (run ids never start with `.`, so it is never
//! taken for a run), created with `If-None-Match: *`: AWS, MinIO, moto and SeaweedFS refuse a
//! second create with 412 (or 409 while two race). A store that ignores the condition is found
//! out by a second conditional write that it accepts; the claim is then confirmed by reading it
//! back after a pause, so of two racing runs only the one whose claim stayed goes on.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, MultipartUpload, ServerSideEncryption, StorageClass};
use bytes::Bytes;
use tracing::{info, warn};

use super::{S3Store, b64_sha256, describe, status_of};
use crate::sink::SinkError;

/// Where claims live under the destination's prefix.
pub const CLAIMS_DIR: &str = ".flowvault-claims";
/// How long a claim on a store that ignores `If-None-Match` settles before it is read back.
const CLAIM_SETTLE: Duration = Duration::from_secs(2);

/// What a conditional create came to.
enum Created {
    Yes,
    AlreadyThere,
}

/// Whether `key` is an archive or manifest of a run under `prefix` (`PREFIX/RUN/NAME`).
fn is_run_object(key: &str, prefix: &str) -> bool {
    let rest = match prefix {
        "" => Some(key),
        p => key.strip_prefix(p).and_then(|r| r.strip_prefix('/')),
    };
    match rest.and_then(|r| r.split_once('/')) {
        Some((run, name)) => {
            !run.is_empty()
                && !run.starts_with('.')
                && matches!(name, crate::sink::ARCHIVE_NAME | crate::sink::MANIFEST_NAME)
        }
        None => false,
    }
}

impl S3Store {
    fn claim_key(&self, run_id: &str) -> String {
        self.key(&format!("{CLAIMS_DIR}/{run_id}"))
    }

    /// Claims `run_id` for this process, exclusively; a run that loses the claim fails with
    /// [`SinkError::RunExists`] having written nothing of the run.
    pub(super) async fn claim_run(&self, run_id: &str) -> Result<(), SinkError> {
        let key = self.claim_key(run_id);
        let token = format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());
        let body = serde_json::json!({
            "run_id": run_id,
            "token": token,
            "claimed_at": crate::manifest::now_rfc3339(),
        })
        .to_string();
        if self.read_claim(&key).await?.is_some()
            || matches!(self.create(&key, &body, run_id).await?, Created::AlreadyThere)
        {
            return Err(self.claimed_elsewhere(&key, run_id));
        }
        if matches!(self.create(&key, &body, run_id).await?, Created::Yes) {
            warn!(
                "the store at {} ignores If-None-Match on PutObject; the run id's claim is confirmed by reading it back after {}s",
                self.options.endpoint.as_deref().unwrap_or("AWS S3"),
                CLAIM_SETTLE.as_secs()
            );
            tokio::time::sleep(CLAIM_SETTLE).await;
        }
        match self.read_claim(&key).await? {
            Some(stored) if stored.contains(&token) => {
                info!(claim = %format!("s3://{}/{key}", self.bucket), "claimed run id {run_id}");
                Ok(())
            }
            _ => Err(self.claimed_elsewhere(&key, run_id)),
        }
    }

    fn claimed_elsewhere(&self, key: &str, run_id: &str) -> SinkError {
        SinkError::RunExists {
            location: self.run_location(run_id),
            found: format!(
                "its claim s3://{}/{key}: another export has this run id (if that run is dead, delete the claim)",
                self.bucket
            ),
        }
    }

    /// PutObject with `If-None-Match: *`.
    async fn create(&self, key: &str, body: &str, run_id: &str) -> Result<Created, SinkError> {
        let body = Bytes::from(body.to_string());
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .if_none_match("*")
            .content_type("application/json")
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(b64_sha256(&body))
            .body(ByteStream::from(body));
        // Encryption and storage class as for the run's objects (a bucket policy may require them).
        let sent = with_run_options!(req, self, run_id).send().await;
        match sent {
            Ok(_) => Ok(Created::Yes),
            Err(e) if matches!(status_of(&e), Some(412 | 409)) => Ok(Created::AlreadyThere),
            Err(e) => Err(self.store_error("cannot claim the run id at", key, &e)),
        }
    }

    async fn read_claim(&self, key: &str) -> Result<Option<String>, SinkError> {
        let got = self.client.get_object().bucket(&self.bucket).key(key).send().await;
        match got {
            Ok(out) => {
                let bytes = out.body.collect().await.map_err(|e| SinkError::Store {
                    message: format!("cannot read the claim s3://{}/{key}: {e}", self.bucket),
                    retryable: true,
                })?;
                Ok(Some(String::from_utf8_lossy(&bytes.into_bytes()).into_owned()))
            }
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.store_error("cannot read the claim", key, &e)),
        }
    }

    /// Gives the claim back when the run wrote nothing (it failed before it started), so a
    /// retry with the same run id can have it.
    pub(super) async fn release_claim(&self, run_id: &str) {
        if self.wrote.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let key = self.claim_key(run_id);
        if let Err(e) = self.client.delete_object().bucket(&self.bucket).key(&key).send().await {
            warn!(
                "the run wrote nothing, but its claim s3://{}/{key} could not be deleted ({}); delete it to use run id {} again",
                self.bucket,
                describe(&e),
                run_id
            );
        }
    }

    /// Reports the multipart uploads under the destination's prefix that no run completed (a
    /// crashed run's archive, or one being written now) and aborts those older than
    /// `incomplete_upload_age`, unless told to keep them. Never fails the run.
    pub(super) async fn sweep_uploads(&self) {
        let prefix = match self.prefix.as_str() {
            "" => String::new(),
            p => format!("{p}/"),
        };
        let (mut key_marker, mut id_marker) = (None, None);
        loop {
            let listed = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .set_key_marker(key_marker)
                .set_upload_id_marker(id_marker)
                .send()
                .await;
            let out = match listed {
                Ok(out) => out,
                Err(e) => {
                    warn!(
                        "cannot list incomplete multipart uploads under s3://{}/{prefix} ({}); uploads crashed runs left are not looked for (grant s3:ListBucketMultipartUploads)",
                        self.bucket,
                        describe(&e)
                    );
                    return;
                }
            };
            for upload in out.uploads() {
                self.sweep_one(upload).await;
            }
            if out.is_truncated() != Some(true) {
                return;
            }
            key_marker = out.next_key_marker().map(str::to_string);
            id_marker = out.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() {
                return;
            }
        }
    }

    async fn sweep_one(&self, upload: &MultipartUpload) {
        let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) else {
            return;
        };
        if !is_run_object(key, &self.prefix) {
            return; // not flowvault's: a shared bucket's other uploads are none of its business
        }
        let age = upload
            .initiated()
            .and_then(|t| SystemTime::try_from(*t).ok())
            .and_then(|t| t.elapsed().ok());
        let started = age.map_or("at an unknown time".to_string(), |a| format!("{}s ago", a.as_secs()));
        let old = age.is_some_and(|a| a >= self.options.incomplete_upload_age);
        if !old || self.options.keep_incomplete_uploads {
            let why = if self.options.keep_incomplete_uploads {
                "kept (--keep-incomplete-uploads)".to_string()
            } else {
                format!(
                    "left alone until it is {}s old (a run may still be writing it)",
                    self.options.incomplete_upload_age.as_secs()
                )
            };
            warn!(
                "found an incomplete multipart upload of s3://{}/{key} started {started}, left by a run that crashed or is still running; {why}",
                self.bucket
            );
            return;
        }
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(id)
            .send()
            .await;
        match aborted {
            Ok(_) => warn!(
                "found an incomplete multipart upload of s3://{}/{key} started {started}, left by a run that crashed; aborted it",
                self.bucket
            ),
            Err(e) => warn!(
                "found an incomplete multipart upload of s3://{}/{key} started {started}, but could not abort it ({}); grant s3:AbortMultipartUpload or add a lifecycle rule",
                self.bucket,
                describe(&e)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_run_object;

    #[test]
    fn only_a_runs_archive_or_manifest_under_the_prefix_is_swept() {
        assert!(is_run_object("p/q/20261128T210812Z/flows.tar.gz", "p/q"));
        assert!(is_run_object("r1/manifest.json", ""));
        assert!(!is_run_object("p/q/r1/flows/bot/x.json", "p/q"));
        assert!(!is_run_object("other/r1/flows.tar.gz", "p/q"));
        assert!(!is_run_object("p/q/.flowvault-claims/flows.tar.gz", "p/q"));
        assert!(!is_run_object("p/qx/r1/flows.tar.gz", "p/q"));
    }
}
