//! A store in memory: for in-process tests of the pipeline and the formats, and for anything
//! that wants a run's bytes without touching a disk or a network. It copies within itself.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::io::AsyncRead;

use super::{CopySource, Entry, SinkError, Store, Upload};

/// Objects by name (relative to the root, `RUN/...`), shared with whoever holds a clone.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    objects: Arc<Mutex<BTreeMap<String, Bytes>>>,
    /// Writes after this many objects fail, to test a store dying mid-run.
    fail_after: Option<usize>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// A store that refuses every write once it holds `n` objects.
    pub fn failing_after(n: usize) -> Self {
        MemoryStore {
            fail_after: Some(n),
            ..MemoryStore::default()
        }
    }

    /// A copy of every object written so far.
    pub fn objects(&self) -> BTreeMap<String, Bytes> {
        self.held().clone()
    }

    fn held(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Bytes>> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&self, name: &str, bytes: Bytes) -> Result<(), SinkError> {
        let mut objects = self.held();
        if self.fail_after.is_some_and(|n| objects.len() >= n) {
            return Err(SinkError::Store {
                message: format!("cannot write memory://{name}: the store is full"),
                retryable: false,
            });
        }
        objects.insert(name.to_string(), bytes);
        Ok(())
    }

    /// Which store this is, for copies: only objects of this very store can be copied into it.
    fn origin(&self) -> String {
        format!("memory:{:p}", Arc::as_ptr(&self.objects))
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn location(&self) -> String {
        "memory://".into()
    }

    fn writes_in_flight(&self) -> usize {
        4
    }

    async fn check_run(&self, run_id: &str) -> Result<(), SinkError> {
        let prefix = format!("{run_id}/");
        match self.held().keys().find(|k| k.starts_with(&prefix)) {
            Some(found) => Err(SinkError::RunExists {
                location: format!("memory://{run_id}"),
                found: found.clone(),
            }),
            None => Ok(()),
        }
    }

    async fn claim(&self, run_id: &str) -> Result<(), SinkError> {
        self.check_run(run_id).await
    }

    async fn probe(&self) -> Result<Option<String>, SinkError> {
        Ok(None)
    }

    async fn put(&self, name: &str, bytes: Bytes, _content_type: &str) -> Result<(), SinkError> {
        self.insert(name, bytes)
    }

    async fn remove(&self, name: &str) -> Result<(), SinkError> {
        self.held().remove(name);
        Ok(())
    }

    async fn create_upload(&self, name: &str, _content_type: &str) -> Result<Box<dyn Upload>, SinkError> {
        Ok(Box::new(MemoryUpload {
            store: self.clone(),
            name: name.to_string(),
            buffer: Some(Vec::new()),
        }))
    }

    fn copy_source(&self, name: &str) -> Option<CopySource> {
        Some(CopySource {
            origin: self.origin(),
            key: name.to_string(),
            location: format!("memory://{name}"),
        })
    }

    fn can_copy(&self) -> bool {
        true
    }

    async fn copy(&self, name: &str, from: &CopySource, sha256: &str) -> Result<(), SinkError> {
        if from.origin != self.origin() {
            return Err(from.cannot_copy_into(&self.location(), name));
        }
        let Some(bytes) = self.held().get(&from.key).cloned() else {
            return Err(SinkError::Store {
                message: format!("cannot copy {from} to memory://{name}: it does not exist"),
                retryable: false,
            });
        };
        let copied = hex::encode(Sha256::digest(&bytes));
        if copied != sha256 {
            return Err(SinkError::Store {
                message: format!("the copy of {from} has SHA-256 {copied} where the manifest says {sha256}"),
                retryable: false,
            });
        }
        self.insert(name, bytes)
    }

    async fn run_ids(&self) -> Result<Vec<String>, SinkError> {
        let mut ids: Vec<String> = self
            .held()
            .keys()
            .filter_map(|k| k.split_once('/').map(|(run, _)| run.to_string()))
            .filter(|run| !run.starts_with('.'))
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    async fn list(&self, dir: &str) -> Result<Vec<Entry>, SinkError> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        Ok(self
            .held()
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| Entry {
                name: k.clone(),
                size: v.len() as u64,
            })
            .collect())
    }

    async fn open(&self, name: &str) -> Result<Option<Box<dyn AsyncRead + Send + Unpin>>, SinkError> {
        let bytes = self.held().get(name).cloned();
        Ok(bytes.map(|b| Box::new(std::io::Cursor::new(b)) as Box<dyn AsyncRead + Send + Unpin>))
    }

    async fn read(&self, name: &str) -> Result<Option<Bytes>, SinkError> {
        Ok(self.held().get(name).cloned())
    }
}

struct MemoryUpload {
    store: MemoryStore,
    name: String,
    buffer: Option<Vec<u8>>,
}

#[async_trait]
impl Upload for MemoryUpload {
    async fn write(&mut self, bytes: Vec<u8>) -> Result<(), SinkError> {
        self.buffer.as_mut().ok_or(SinkError::Closed)?.extend(bytes);
        Ok(())
    }

    async fn complete(&mut self) -> Result<(), SinkError> {
        let bytes = self.buffer.take().ok_or(SinkError::Closed)?;
        self.store.insert(&self.name, Bytes::from(bytes))
    }

    async fn discard(&mut self) {
        self.buffer = None;
    }
}
