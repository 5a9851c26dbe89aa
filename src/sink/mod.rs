//! Destinations behind one small trait. The pipeline hands each flow document to [`Sink::put`],
//! then [`Sink::finish`]es with the manifest (written last), or [`Sink::abort`]s. Nothing upstream
//! of this module knows whether bytes go to a directory, a tarball or a bucket.

pub mod local;
pub mod s3;
pub mod targz;

use std::path::PathBuf;

use async_trait::async_trait;
use bytes::Bytes;

pub use local::{LocalObjectsSink, LocalTarGzSink};
pub use targz::TarGzEncoder;

/// Name of the manifest inside a run (and the last member of a tarball).
pub const MANIFEST_NAME: &str = "manifest.json";
/// Name of the archive inside a run, for the tar-gz format.
pub const ARCHIVE_NAME: &str = "flows.tar.gz";

/// A destination for one run's flow documents and manifest.
#[async_trait]
pub trait Sink: Send {
    /// Where this run is being written, for messages and the manifest.
    fn location(&self) -> String;

    /// Stores one flow document under `name` (a safe relative path such as `flows/bot/x--id.json`).
    async fn put(&mut self, name: &str, document: Bytes) -> Result<(), SinkError>;

    /// Waits for documents still being written and returns those that could not be stored
    /// (name, reason), so their manifest rows can say so. An `Err` means the whole run's output
    /// is unusable.
    async fn settle(&mut self) -> Result<Vec<(String, String)>, SinkError> {
        Ok(Vec::new())
    }

    /// Completes the run: seals any archive, then writes the manifest last.
    async fn finish(&mut self, manifest: Bytes) -> Result<(), SinkError>;

    /// Gives up: discards any partial archive so nothing half-written looks whole, then writes the
    /// (incomplete) manifest where it still can.
    async fn abort(&mut self, manifest: Bytes) -> Result<(), SinkError>;

    /// Whether documents already `put` survive an abort (true for one-object-per-flow).
    fn keeps_documents_on_abort(&self) -> bool;
}

/// A failure to write to the destination.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A local file operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The destination is unusable as configured.
    #[error("{0}")]
    Destination(String),
    /// An object storage request failed.
    #[error("{0}")]
    ObjectStore(String),
}

/// Output layout of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// One gzipped tarball `RUN/flows.tar.gz` (the manifest is also its last member).
    #[default]
    TarGz,
    /// One JSON document per flow under `RUN/flows/`.
    Objects,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::TarGz => "tar-gz",
            Format::Objects => "objects",
        })
    }
}

/// Where runs are written: a local directory or an S3 bucket and prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A local directory.
    Local(PathBuf),
    /// `s3://bucket/prefix`.
    S3 { bucket: String, prefix: String },
}

/// A destination string that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid destination `{given}`: {why}")]
pub struct BadDestination {
    /// What was given.
    pub given: String,
    /// What is wrong and how to fix it.
    pub why: String,
}

impl Destination {
    /// Parses `--to`: `s3://bucket[/prefix]` or a local path.
    pub fn parse(input: &str) -> Result<Destination, BadDestination> {
        let bad = |why: &str| BadDestination {
            given: input.to_string(),
            why: why.to_string(),
        };
        if input.trim().is_empty() {
            return Err(bad("it is empty; give a directory or s3://bucket/prefix"));
        }
        let lower = input.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("s3://").map(|_| &input[5..]) {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            validate_bucket(bucket).map_err(|why| bad(&why))?;
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|seg| seg == ".." || seg == ".") {
                return Err(bad("the prefix must not contain `.` or `..` segments"));
            }
            if prefix.contains("//") {
                return Err(bad("the prefix must not contain empty segments (`//`)"));
            }
            return Ok(Destination::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        if let Some((scheme, _)) = input.split_once("://") {
            return Err(bad(&format!(
                "unsupported scheme `{scheme}://`; use a local path or s3://bucket/prefix"
            )));
        }
        Ok(Destination::Local(PathBuf::from(input)))
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Local(p) => write!(f, "{}", p.display()),
            Destination::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Destination::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// Checks an S3 bucket name against the general-purpose bucket naming rules.
pub fn validate_bucket(bucket: &str) -> Result<(), String> {
    if bucket.is_empty() {
        return Err("the bucket name is missing; write s3://BUCKET/PREFIX".into());
    }
    if !(3..=63).contains(&bucket.len()) {
        return Err(format!("bucket name `{bucket}` must be 3 to 63 characters long"));
    }
    if !bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        return Err(format!(
            "bucket name `{bucket}` may hold only lowercase letters, digits, `-` and `.`"
        ));
    }
    let first = bucket.chars().next().unwrap_or('-');
    let last = bucket.chars().last().unwrap_or('-');
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Err(format!(
            "bucket name `{bucket}` must start and end with a letter or digit"
        ));
    }
    if bucket.contains("..") {
        return Err(format!("bucket name `{bucket}` must not contain `..`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_local_and_s3_destinations() {
        assert_eq!(Destination::parse("./out").unwrap(), Destination::Local("./out".into()));
        assert_eq!(
            Destination::parse("s3://my-bucket/a/b/").unwrap(),
            Destination::S3 {
                bucket: "my-bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            Destination::parse("s3://my-bucket").unwrap(),
            Destination::S3 {
                bucket: "my-bucket".into(),
                prefix: "".into()
            }
        );
    }

    #[test]
    fn malformed_s3_urls_say_what_is_wrong() {
        for (input, needle) in [
            ("s3://", "bucket name is missing"),
            ("s3://Bad_Bucket", "lowercase"),
            ("s3://ab", "3 to 63"),
            ("s3://-bucket", "start and end"),
            ("s3://bucket/../x", "`..`"),
            ("gs://bucket", "unsupported scheme"),
            ("", "empty"),
        ] {
            let err = Destination::parse(input).unwrap_err().to_string();
            assert!(err.contains(needle), "{input}: {err}");
        }
    }
}
