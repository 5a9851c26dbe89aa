//! The read side of the destinations `export --to` writes: what `runs`, `verify` and `diff` read.
//! Names are relative to the destination root (`RUN/manifest.json`, `RUN/flows/...`), so one
//! reader serves every run in a destination.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::types::ChecksumMode;
use bytes::Bytes;
use tokio::io::AsyncRead;

use super::s3::{S3Options, access_error, build_client, describe, status_of};
use super::{Destination, SinkError};

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its name relative to the destination root.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Reads a destination.
#[async_trait]
pub trait StoreReader: Send + Sync {
    /// The destination, e.g. `/backups` or `s3://bucket/prefix`.
    fn location(&self) -> String;
    /// The names of the destination's top-level directories (run ids), sorted.
    async fn run_ids(&self) -> Result<Vec<String>, SinkError>;
    /// Every object under `dir/`, names relative to the root, sorted.
    async fn list(&self, dir: &str) -> Result<Vec<Entry>, SinkError>;
    /// One whole object (`Ok(None)` when it does not exist).
    async fn read(&self, name: &str) -> Result<Option<Bytes>, SinkError>;
    /// One object from byte `offset` to its end (`Ok(None)` when it does not exist): how `runs`
    /// reads a manifest's last bytes without its rows.
    async fn read_from(&self, name: &str, offset: u64) -> Result<Option<Bytes>, SinkError> {
        let whole = self.read(name).await?;
        Ok(whole.map(|b| b.slice((offset as usize).min(b.len())..)))
    }
    /// A stream of one object (`Ok(None)` when it does not exist).
    async fn open(&self, name: &str) -> Result<Option<Box<dyn AsyncRead + Send + Unpin>>, SinkError>;
    /// The SHA-256 the store itself recorded for an object (base64), when it keeps one.
    async fn stored_sha256(&self, name: &str) -> Result<Option<String>, SinkError>;
    /// Where `name` is for a store-side copy (S3), if the store can copy from here.
    fn copy_source(&self, _name: &str) -> Option<super::CopySource> {
        None
    }
}

/// A reader for `destination`; fails with a clear error when it does not exist or is denied.
pub async fn open_reader(destination: &Destination, options: &S3Options) -> Result<Arc<dyn StoreReader>, SinkError> {
    match destination {
        Destination::Local(root) => {
            match tokio::fs::metadata(root).await {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(SinkError::NotADirectory { path: root.clone() }),
                Err(source) => {
                    return Err(SinkError::Io {
                        action: "read the directory",
                        path: root.clone(),
                        source,
                    });
                }
            }
            Ok(Arc::new(LocalReader { root: root.clone() }))
        }
        Destination::S3 { bucket, prefix } => {
            let client = build_client(options).await;
            let endpoint = options.endpoint.clone().unwrap_or_else(|| "AWS S3".to_string());
            let reader = S3Reader {
                client,
                bucket: bucket.clone(),
                prefix: prefix.clone(),
                endpoint,
            };
            // One request up front, so a missing bucket or a denied prefix fails here, clearly.
            reader.list_page(&reader.key(""), Some("/"), None).await?;
            Ok(Arc::new(reader))
        }
    }
}

/// A local directory.
struct LocalReader {
    root: PathBuf,
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> SinkError {
    SinkError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

#[async_trait]
impl StoreReader for LocalReader {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn run_ids(&self) -> Result<Vec<String>, SinkError> {
        let mut dir = tokio::fs::read_dir(&self.root)
            .await
            .map_err(|e| io_error("read the directory", &self.root, e))?;
        let mut ids = Vec::new();
        while let Some(entry) = dir
            .next_entry()
            .await
            .map_err(|e| io_error("read the directory", &self.root, e))?
        {
            if entry.file_type().await.is_ok_and(|t| t.is_dir()) {
                ids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }

    async fn list(&self, dir: &str) -> Result<Vec<Entry>, SinkError> {
        let root = self.root.clone();
        let start = self.root.join(dir);
        tokio::task::spawn_blocking(move || walk(&root, &start))
            .await
            .map_err(|e| SinkError::Store {
                message: e.to_string(),
                retryable: false,
            })?
    }

    async fn read(&self, name: &str) -> Result<Option<Bytes>, SinkError> {
        let path = self.root.join(name);
        match tokio::fs::read(&path).await {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("read", &path, e)),
        }
    }

    async fn read_from(&self, name: &str, offset: u64) -> Result<Option<Bytes>, SinkError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let path = self.root.join(name);
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("open", &path, e)),
        };
        let mut out = Vec::new();
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| io_error("read", &path, e))?;
        file.read_to_end(&mut out)
            .await
            .map_err(|e| io_error("read", &path, e))?;
        Ok(Some(Bytes::from(out)))
    }

    async fn open(&self, name: &str) -> Result<Option<Box<dyn AsyncRead + Send + Unpin>>, SinkError> {
        let path = self.root.join(name);
        match tokio::fs::File::open(&path).await {
            Ok(f) => Ok(Some(Box::new(f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("open", &path, e)),
        }
    }

    async fn stored_sha256(&self, _name: &str) -> Result<Option<String>, SinkError> {
        Ok(None)
    }
}

/// Every regular file under `start`, named relative to `root` with `/` separators.
fn walk(root: &Path, start: &Path) -> Result<Vec<Entry>, SinkError> {
    let mut out = Vec::new();
    let mut stack = vec![start.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error("read the directory", &dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_error("read the directory", &dir, e))?;
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).map_err(|e| io_error("inspect", &path, e))?;
            if meta.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                let name = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push(Entry { name, size: meta.len() });
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A bucket and prefix.
struct S3Reader {
    client: Client,
    bucket: String,
    prefix: String,
    endpoint: String,
}

/// One page of a listing: objects and common prefixes, and the token for the next page.
type Page = (Vec<Entry>, Vec<String>, Option<String>);

impl S3Reader {
    fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

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

    fn request_error<E, R>(&self, what: &str, name: &str, e: &aws_sdk_s3::error::SdkError<E, R>) -> SinkError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + super::s3::HasStatus,
    {
        if status_of(e) == Some(403) {
            return access_error(e, &self.bucket, &self.key(name), &self.endpoint);
        }
        SinkError::Store {
            message: format!("{what} s3://{}/{}: {}", self.bucket, self.key(name), describe(e)),
            retryable: true,
        }
    }
}

#[async_trait]
impl StoreReader for S3Reader {
    fn location(&self) -> String {
        Destination::S3 {
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
        }
        .to_string()
    }

    async fn run_ids(&self) -> Result<Vec<String>, SinkError> {
        let (_, mut dirs) = self.list_all(&self.key(""), Some("/")).await?;
        // Run ids never start with `.`: `.flowvault-claims/` holds claims, not a run.
        dirs.retain(|d| !d.starts_with('.'));
        dirs.sort();
        Ok(dirs)
    }

    async fn list(&self, dir: &str) -> Result<Vec<Entry>, SinkError> {
        let (mut entries, _) = self
            .list_all(&self.key(&format!("{}/", dir.trim_end_matches('/'))), None)
            .await?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    async fn read(&self, name: &str) -> Result<Option<Bytes>, SinkError> {
        let Some(mut stream) = self.open(name).await? else {
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

    async fn open(&self, name: &str) -> Result<Option<Box<dyn AsyncRead + Send + Unpin>>, SinkError> {
        let got = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(name))
            .send()
            .await;
        match got {
            Ok(out) => Ok(Some(Box::new(out.body.into_async_read()))),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) || status_of(&e) == Some(404) => {
                Ok(None)
            }
            Err(e) => Err(self.request_error("get", name, &e)),
        }
    }

    async fn read_from(&self, name: &str, offset: u64) -> Result<Option<Bytes>, SinkError> {
        if offset == 0 {
            return self.read(name).await;
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
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) || status_of(&e) == Some(404) => {
                return Ok(None);
            }
            Err(e) => return Err(self.request_error("get", name, &e)),
        };
        let body = out.body.collect().await.map_err(|e| SinkError::Store {
            message: format!("read s3://{}/{}: {e}", self.bucket, self.key(name)),
            retryable: true,
        })?;
        Ok(Some(body.into_bytes()))
    }

    fn copy_source(&self, name: &str) -> Option<super::CopySource> {
        Some(super::CopySource {
            bucket: self.bucket.clone(),
            key: self.key(name),
        })
    }

    async fn stored_sha256(&self, name: &str) -> Result<Option<String>, SinkError> {
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
