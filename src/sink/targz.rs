//! The tar.gz format: one archive per run, streamed into any store's [`Upload`] (a local partial
//! file, an S3 multipart upload, memory), with the manifest as its last member.
//!
//! The encoder writes into an in-memory buffer that is drained into the upload after every entry,
//! so the archive streams out as flows arrive and memory holds about one flow at a time. Entries
//! carry fixed metadata (mtime 0, uid/gid 0, mode 0644) and gzip carries no name or time, so the
//! same flows in the same order always give the same bytes. A run that stops early is still
//! sealed: the archive holds what was put, and its manifest says the run is incomplete.

use std::io::{self, Write};

use async_trait::async_trait;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::{ARCHIVE_NAME, MANIFEST_NAME, RunDir, Sink, SinkError, Spooled, Upload};

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
        let mut header = member_header(data.len() as u64);
        self.builder.append_data(&mut header, path, data)
    }

    /// Starts a member of `size` bytes whose data follows in pieces ([`TarGzEncoder::member_data`],
    /// then [`TarGzEncoder::end_member`]): for data too large to hold at once. Written exactly as
    /// [`TarGzEncoder::append`] writes it; `path` must fit the header (100 bytes).
    pub fn begin_member(&mut self, path: &str, size: u64) -> io::Result<()> {
        let mut header = member_header(size);
        header.set_path(path)?;
        header.set_cksum();
        self.builder.get_mut().write_all(header.as_bytes())
    }

    /// A piece of the member begun last.
    pub fn member_data(&mut self, data: &[u8]) -> io::Result<()> {
        self.builder.get_mut().write_all(data)
    }

    /// Ends the member begun last (of `size` bytes), padding it to the tar block.
    pub fn end_member(&mut self, size: u64) -> io::Result<()> {
        let pad = (512 - (size % 512) as usize) % 512;
        self.builder.get_mut().write_all(&[0; 512][..pad])
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
fn member_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header
}

pub struct TarGzSink {
    run: RunDir,
    encoder: Option<TarGzEncoder>,
    upload: Option<Box<dyn Upload>>,
}

impl TarGzSink {
    /// An archive in `run`; the upload starts with the first document.
    pub fn new(run: RunDir) -> Self {
        TarGzSink {
            run,
            encoder: Some(TarGzEncoder::new()),
            upload: None,
        }
    }

    fn encode_error(&self, e: io::Error) -> SinkError {
        SinkError::Store {
            message: format!("cannot encode {}/{ARCHIVE_NAME}: {e}", self.run.location()),
            retryable: false,
        }
    }

    /// Encodes one member and hands the compressed bytes produced so far to the upload.
    async fn append(&mut self, name: &str, data: &[u8]) -> Result<(), SinkError> {
        let encoder = self.encoder.as_mut().ok_or(SinkError::Closed)?;
        let encoded = encoder.append(name, data).map(|()| encoder.take_output());
        let out = encoded.map_err(|e| self.encode_error(e))?;
        self.write(out).await
    }

    /// Appends a spooled document as a member, a piece at a time.
    async fn append_spooled(&mut self, name: &str, data: &Spooled) -> Result<(), SinkError> {
        let size = data.len();
        self.encode(|e| e.begin_member(name, size))?;
        for piece in data.pieces() {
            let piece = piece.map_err(|e| self.encode_error(e))?;
            let out = self.encode(|e| e.member_data(&piece))?;
            self.write(out).await?;
        }
        let out = self.encode(|e| e.end_member(size))?;
        self.write(out).await
    }

    /// Runs `step` on the encoder and returns the output it produced.
    fn encode(&mut self, step: impl FnOnce(&mut TarGzEncoder) -> io::Result<()>) -> Result<Vec<u8>, SinkError> {
        let encoder = self.encoder.as_mut().ok_or(SinkError::Closed)?;
        let encoded = step(encoder).map(|()| encoder.take_output());
        encoded.map_err(|e| self.encode_error(e))
    }

    /// Sends encoded bytes to the archive's upload, starting it on the first bytes.
    async fn write(&mut self, out: Vec<u8>) -> Result<(), SinkError> {
        if self.upload.is_none() {
            self.upload = Some(
                self.run
                    .store()
                    .create_upload(&self.run.name(ARCHIVE_NAME), "application/gzip")
                    .await?,
            );
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
        self.run.location()
    }

    async fn put(&mut self, name: &str, document: Bytes) -> Result<(), SinkError> {
        self.append(name, &document).await
    }

    async fn finish(&mut self, manifest: &Spooled) -> Result<(), SinkError> {
        self.append_spooled(MANIFEST_NAME, manifest).await?;
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
        let sidecar = manifest
            .store_as(&**self.run.store(), &self.run.name(MANIFEST_NAME))
            .await;
        if sidecar.is_err() {
            // The archive holds a manifest saying the run is whole; without its sidecar the run
            // is not, so the archive goes too rather than be read back as complete.
            if let Err(e) = self.run.store().remove(&self.run.name(ARCHIVE_NAME)).await {
                tracing::warn!("the manifest could not be written and the sealed archive could not be removed: {e}");
            }
        }
        sidecar
    }

    async fn abort(&mut self, manifest: &Spooled) -> Result<(), SinkError> {
        self.encoder = None;
        if let Some(mut upload) = self.upload.take() {
            upload.discard().await;
        }
        manifest
            .store_as(&**self.run.store(), &self.run.name(MANIFEST_NAME))
            .await
    }

    fn set_org(&self, org_id: &str) {
        self.run.store().set_org(org_id);
    }

    async fn release(&mut self) {
        self.run.release().await;
    }

    fn keeps_documents_on_abort(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_member_written_in_pieces_is_the_member_written_whole() {
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let mut whole = TarGzEncoder::new();
        whole.append("manifest.json", &data).unwrap();
        let mut pieces = TarGzEncoder::new();
        pieces.begin_member("manifest.json", data.len() as u64).unwrap();
        for piece in data.chunks(700) {
            pieces.member_data(piece).unwrap();
        }
        pieces.end_member(data.len() as u64).unwrap();
        let tar = |gz: Vec<u8>| {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut out).unwrap();
            out
        };
        // The same tar bytes (the deflate stream may differ with how its input was cut).
        assert_eq!(tar(whole.finish().unwrap()), tar(pieces.finish().unwrap()));
    }

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
