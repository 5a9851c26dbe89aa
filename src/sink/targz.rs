//! The tar.gz format: one archive per run, streamed into any store's [`Upload`] (a local partial
//! file, an S3 multipart upload, memory), with the manifest as its last member.
//!
//! The encoder writes into an in-memory buffer that is drained into the upload after every entry,
//! so the archive streams out as flows arrive and memory holds about one flow at a time. Entries
//! carry fixed metadata (mtime 0, uid/gid 0, mode 0644) and gzip carries no name or time, so the
//! same flows in the same order always give the same bytes. A run that stops early is still
//! sealed: the archive holds what was put, and its manifest says the run is incomplete.

use std::io::{self, Write};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::{ARCHIVE_NAME, MANIFEST_NAME, RunStore, Sink, SinkError, Upload};

/// Streams tar entries through gzip into a buffer the caller drains.
pub struct TarGzEncoder {
    builder: tar::Builder<GzEncoder<Vec<u8>>>,
}

impl Default for TarGzEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl TarGzEncoder {
    /// A new, empty archive.
    pub fn new() -> Self {
        let gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(Vec::with_capacity(64 * 1024), Compression::default());
        let mut builder = tar::Builder::new(gz);
        builder.mode(tar::HeaderMode::Deterministic);
        TarGzEncoder { builder }
    }

    /// Appends one regular file entry named `path` holding `data`.
    pub fn append(&mut self, path: &str, data: &[u8]) -> io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        self.builder.append_data(&mut header, path, data)
    }

    /// The compressed bytes produced so far and not yet taken.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(self.builder.get_mut().get_mut())
    }

    /// Bytes waiting in the output buffer.
    pub fn pending_len(&mut self) -> usize {
        self.builder.get_mut().get_ref().len()
    }

    /// Writes the tar trailer, flushes gzip explicitly (dropping it would swallow errors) and
    /// returns the remaining compressed bytes.
    pub fn finish(self) -> io::Result<Vec<u8>> {
        let mut gz = self.builder.into_inner()?;
        gz.flush()?;
        gz.finish()
    }
}

/// `RUN/flows.tar.gz` over any store, and `RUN/manifest.json` beside it.
pub struct TarGzSink {
    store: Arc<dyn RunStore>,
    encoder: Option<TarGzEncoder>,
    upload: Option<Box<dyn Upload>>,
}

impl TarGzSink {
    /// An archive in `store`; the upload starts with the first document.
    pub fn new(store: Arc<dyn RunStore>) -> Self {
        TarGzSink {
            store,
            encoder: Some(TarGzEncoder::new()),
            upload: None,
        }
    }

    fn encode_error(&self, e: io::Error) -> SinkError {
        SinkError::Store {
            message: format!("cannot encode {}/{ARCHIVE_NAME}: {e}", self.store.location()),
            retryable: false,
        }
    }

    /// Encodes one member and hands the compressed bytes produced so far to the upload.
    async fn append(&mut self, name: &str, data: &[u8]) -> Result<(), SinkError> {
        let encoder = self.encoder.as_mut().ok_or(SinkError::Closed)?;
        let encoded = encoder.append(name, data).map(|()| encoder.take_output());
        let out = encoded.map_err(|e| self.encode_error(e))?;
        if self.upload.is_none() {
            self.upload = Some(self.store.create_upload(ARCHIVE_NAME, "application/gzip").await?);
        }
        match self.upload.as_mut() {
            Some(upload) => upload.write(out).await,
            None => Err(SinkError::Closed),
        }
    }
}

#[async_trait]
impl Sink for TarGzSink {
    fn location(&self) -> String {
        self.store.location()
    }

    async fn put(&mut self, name: &str, document: Bytes) -> Result<(), SinkError> {
        self.append(name, &document).await
    }

    async fn finish(&mut self, manifest: Bytes) -> Result<(), SinkError> {
        self.append(MANIFEST_NAME, &manifest).await?;
        let encoder = self.encoder.take().ok_or(SinkError::Closed)?;
        let tail = encoder.finish().map_err(|e| self.encode_error(e))?;
        let mut upload = self.upload.take().ok_or(SinkError::Closed)?;
        let sealed = async {
            upload.write(tail).await?;
            upload.complete().await
        }
        .await;
        if let Err(e) = sealed {
            upload.discard().await;
            return Err(e);
        }
        self.store.put(MANIFEST_NAME, manifest, "application/json").await
    }

    async fn abort(&mut self, manifest: Bytes) -> Result<(), SinkError> {
        self.encoder = None;
        if let Some(mut upload) = self.upload.take() {
            upload.discard().await;
        }
        self.store.put(MANIFEST_NAME, manifest, "application/json").await
    }

    fn set_org(&self, org_id: &str) {
        self.store.set_org(org_id);
    }

    fn keeps_documents_on_abort(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut enc = TarGzEncoder::new();
        let mut out = Vec::new();
        for (p, d) in entries {
            enc.append(p, d).unwrap();
            out.extend(enc.take_output());
        }
        out.extend(enc.finish().unwrap());
        out
    }

    #[test]
    fn the_same_entries_give_identical_bytes() {
        let e: &[(&str, &[u8])] = &[("flows/a.json", b"{}"), ("manifest.json", b"{\"x\":1}")];
        assert_eq!(archive(e), archive(e));
    }

    #[test]
    fn entries_read_back_in_order_including_long_names() {
        let long = format!("flows/bot/{}.json", "n".repeat(180));
        let bytes = archive(&[(long.as_str(), b"{\"a\":1}"), ("manifest.json", b"{}")]);
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let mut seen = Vec::new();
        for entry in ar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut body = String::new();
            entry.read_to_string(&mut body).unwrap();
            seen.push((entry.path().unwrap().to_string_lossy().into_owned(), body));
        }
        assert_eq!(
            seen,
            vec![(long, "{\"a\":1}".to_string()), ("manifest.json".into(), "{}".into())]
        );
    }
}
