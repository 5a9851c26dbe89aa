//! A store that refuses chosen writes: how tests make one document's write fail.

use async_trait::async_trait;
use bytes::Bytes;
use flowvault::sink::local::LocalStore;
use flowvault::sink::{CopySource, Entry, SinkError, Store, Upload};

/// A store over a local directory that refuses (or panics on) the documents `bad` picks.
pub struct Refusing {
    pub inner: LocalStore,
    pub bad: Box<dyn Fn(&str) -> bool + Send + Sync>,
    pub panic: bool,
}

#[async_trait]
impl Store for Refusing {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn writes_in_flight(&self) -> usize {
        self.inner.writes_in_flight()
    }

    async fn check_run(&self, run_id: &str) -> Result<(), SinkError> {
        self.inner.check_run(run_id).await
    }

    async fn claim(&self, run_id: &str) -> Result<(), SinkError> {
        self.inner.claim(run_id).await
    }

    async fn probe(&self) -> Result<Option<String>, SinkError> {
        self.inner.probe().await
    }

    async fn put(&self, name: &str, bytes: Bytes, content_type: &str) -> Result<(), SinkError> {
        if (self.bad)(name) {
            if self.panic {
                panic!("a write task panics on {name}");
            }
            return Err(SinkError::Store {
                message: format!("the store refused {name}"),
                retryable: false,
            });
        }
        self.inner.put(name, bytes, content_type).await
    }

    async fn create_upload(&self, name: &str, content_type: &str) -> Result<Box<dyn Upload>, SinkError> {
        self.inner.create_upload(name, content_type).await
    }

    async fn remove(&self, name: &str) -> Result<(), SinkError> {
        self.inner.remove(name).await
    }

    async fn copy(&self, name: &str, from: &CopySource, sha256: &str) -> Result<(), SinkError> {
        self.inner.copy(name, from, sha256).await
    }

    async fn run_ids(&self) -> Result<Vec<String>, SinkError> {
        self.inner.run_ids().await
    }

    async fn list(&self, dir: &str) -> Result<Vec<Entry>, SinkError> {
        self.inner.list(dir).await
    }

    async fn open(&self, name: &str) -> Result<Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>, SinkError> {
        self.inner.open(name).await
    }

    async fn read(&self, name: &str) -> Result<Option<Bytes>, SinkError> {
        self.inner.read(name).await
    }
}
