//! The read side of an S3 store: run ids (common prefixes), listings, whole, ranged and
//! streamed reads, and the SHA-256 S3 recorded for an object.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::ChecksumMode;
use bytes::Bytes;
use tokio::io::AsyncRead;

use super::{HasStatus, S3Store, access_error, describe, status_of};
use crate::sink::{Entry, SinkError};

/// One page of a listing: objects and common prefixes, and the token for the next page.
type Page = (Vec<Entry>, Vec<String>, Option<String>);

/// Whether a GetObject failed because the object does not exist.
fn is_missing<R: HasStatus>(e: &SdkError<aws_sdk_s3::operation::get_object::GetObjectError, R>) -> bool {
    e.as_service_error().is_some_and(|s| s.is_no_such_key()) || status_of(e) == Some(404)
}

impl S3Store {
    /// Which endpoint this is, for store-side copies: CopyObject works within one endpoint.
    pub(super) fn origin(&self) -> String {
        format!("s3:{}", self.endpoint)
    }

    /// `key` relative to the prefix.
    fn name_of<'a>(&self, key: &'a str) -> &'a str {
        if self.prefix.is_empty() {
            key
        } else {
            key.strip_prefix(&format!("{}/", self.prefix)).unwrap_or(key)
        }
    }

    async fn list_page(&self, prefix: &str, delimiter: Option<&str>, token: Option<String>) -> Result<Page, SinkError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_delimiter(delimiter.map(str::to_string))
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| access_error(&e, &self.bucket, prefix, &self.endpoint))?;
        let entries = out
            .contents()
            .iter()
            .filter_map(|o| {
                Some(Entry {
                    name: self.name_of(o.key()?).to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                })
            })
            .collect();
        let dirs = out
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix().map(|p| self.name_of(p).trim_end_matches('/').to_string()))
            .collect();
        Ok((entries, dirs, out.next_continuation_token().map(str::to_string)))
    }

    async fn list_all(&self, prefix: &str, delimiter: Option<&str>) -> Result<(Vec<Entry>, Vec<String>), SinkError> {
        let (mut entries, mut dirs, mut token) = (Vec::new(), Vec::new(), None);
        loop {
            let (e, d, next) = self.list_page(prefix, delimiter, token).await?;
            entries.extend(e);
            dirs.extend(d);
            match next {
                Some(t) => token = Some(t),
                None => return Ok((entries, dirs)),
            }
        }
    }

    fn request_error<E, R>(&self, what: &str, name: &str, e: &SdkError<E, R>) -> SinkError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + HasStatus,
    {
        if status_of(e) == Some(403) {
            return access_error(e, &self.bucket, &self.key(name), &self.endpoint);
        }
        SinkError::Store {
            message: format!("{what} s3://{}/{}: {}", self.bucket, self.key(name), describe(e)),
            retryable: true,
        }
    }

    /// The prefix's top-level "directories" that can be runs (claims are not).
    pub(super) async fn read_run_ids(&self) -> Result<Vec<String>, SinkError> {
        let root = match self.prefix.as_str() {
            "" => String::new(),
            prefix => format!("{prefix}/"),
        };
        let (_, mut dirs) = self.list_all(&root, Some("/")).await?;
        // Run ids never start with `.`: `.flowvault-claims/` holds claims, not a run.
        dirs.retain(|d| !d.starts_with('.'));
        dirs.sort();
        Ok(dirs)
    }

    /// Every object under `dir/`.
    pub(super) async fn read_list(&self, dir: &str) -> Result<Vec<Entry>, SinkError> {
        let (mut entries, _) = self
            .list_all(&self.key(&format!("{}/", dir.trim_end_matches('/'))), None)
            .await?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// A stream of one object.
    pub(super) async fn read_stream(&self, name: &str) -> Result<Option<Box<dyn AsyncRead + Send + Unpin>>, SinkError> {
        let got = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(name))
            .send()
            .await;
        match got {
            Ok(out) => Ok(Some(Box::new(out.body.into_async_read()))),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(self.request_error("get", name, &e)),
        }
    }

    /// One whole object.
    pub(super) async fn read_whole(&self, name: &str) -> Result<Option<Bytes>, SinkError> {
        let Some(mut stream) = self.read_stream(name).await? else {
            return Ok(None);
        };
        let mut out = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut out)
            .await
            .map_err(|e| SinkError::Store {
                message: format!("read s3://{}/{}: {e}", self.bucket, self.key(name)),
                retryable: true,
            })?;
        Ok(Some(Bytes::from(out)))
    }

    /// One object from byte `offset` on, with a ranged GetObject.
    pub(super) async fn read_range(&self, name: &str, offset: u64) -> Result<Option<Bytes>, SinkError> {
        if offset == 0 {
            return self.read_whole(name).await;
        }
        let got = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(name))
            .range(format!("bytes={offset}-"))
            .send()
            .await;
        let out = match got {
            Ok(out) => out,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(self.request_error("get", name, &e)),
        };
        let body = out.body.collect().await.map_err(|e| SinkError::Store {
            message: format!("read s3://{}/{}: {e}", self.bucket, self.key(name)),
            retryable: true,
        })?;
        Ok(Some(body.into_bytes()))
    }

    /// The SHA-256 S3 recorded for an object (base64), when it has one.
    pub(super) async fn read_sha256(&self, name: &str) -> Result<Option<String>, SinkError> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(name))
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        match head {
            Ok(out) => Ok(out.checksum_sha256().map(str::to_string)),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.request_error("head", name, &e)),
        }
    }
}
