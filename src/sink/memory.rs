//! A run store in memory: for in-process tests of the pipeline and the formats, and for anything
//! that wants a run's bytes without touching a disk or a network.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use super::{RunStore, SinkError, Upload};

/// Objects by name, shared with whoever holds a clone.
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
        self.objects.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn insert(&self, name: &str, bytes: Bytes) -> Result<(), SinkError> {
        let mut objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        if self.fail_after.is_some_and(|n| objects.len() >= n) {
            return Err(SinkError::Store {
                message: format!("cannot write memory://{name}: the store is full"),
                retryable: false,
            });
        }
        objects.insert(name.to_string(), bytes);
        Ok(())
    }
}

#[async_trait]
impl RunStore for MemoryStore {
    fn location(&self) -> String {
        "memory://run".into()
    }

    async fn put(&self, name: &str, bytes: Bytes, _content_type: &str) -> Result<(), SinkError> {
        self.insert(name, bytes)
    }

    async fn remove(&self, name: &str) -> Result<(), SinkError> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
        Ok(())
    }

    async fn create_upload(&self, name: &str, _content_type: &str) -> Result<Box<dyn Upload>, SinkError> {
        Ok(Box::new(MemoryUpload {
            store: self.clone(),
            name: name.to_string(),
            buffer: Some(Vec::new()),
        }))
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
