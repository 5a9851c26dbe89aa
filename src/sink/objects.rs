//! The objects format: one JSON document per flow under `RUN/flows/`, written concurrently (a
//! bounded number at a time) into any store, and the manifest last.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::warn;

use super::{CopySource, MANIFEST_NAME, RunDir, Sink, SinkError, Spooled, StoreFailure};

/// One write of the objects format.
enum Write {
    Put(Bytes),
    Copy(CopySource, String),
}

/// One object per flow over any store.
pub struct ObjectsSink {
    run: RunDir,
    permits: Arc<Semaphore>,
    writes: JoinSet<Result<(), SinkError>>,
    /// The document each write task stores, so a task that panics still names its document.
    names: HashMap<tokio::task::Id, String>,
    failures: Vec<StoreFailure>,
}

impl ObjectsSink {
    /// Writes into `run`, at most `in_flight` objects at once.
    pub fn new(run: RunDir, in_flight: usize) -> Self {
        ObjectsSink {
            run,
            permits: Arc::new(Semaphore::new(in_flight.max(1))),
            writes: JoinSet::new(),
            names: HashMap::new(),
            failures: Vec::new(),
        }
    }

    /// Starts one write once a slot is free (backpressure: memory stays at `in_flight` documents).
    async fn spawn(&mut self, name: &str, write: Write) -> Result<(), SinkError> {
        while let Some(done) = self.writes.try_join_next_with_id() {
            self.record(done);
        }
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| SinkError::Closed)?;
        let store = self.run.store().clone();
        let task_name = self.run.name(name);
        let task = self.writes.spawn(async move {
            let result = match write {
                Write::Put(document) => store.put(&task_name, document, "application/json").await,
                Write::Copy(from, sha256) => store.copy(&task_name, &from, &sha256).await,
            };
            drop(permit);
            result
        });
        self.names.insert(task.id(), name.to_string());
        Ok(())
    }

    fn record(&mut self, joined: Result<(tokio::task::Id, Result<(), SinkError>), tokio::task::JoinError>) {
        let (id, result) = match joined {
            Ok((id, result)) => (id, result),
            Err(e) => (
                e.id(),
                Err(SinkError::Store {
                    message: format!("its write task failed: {e}"),
                    retryable: false,
                }),
            ),
        };
        let name = self.names.remove(&id).unwrap_or_else(|| "(unknown)".into());
        if let Err(error) = result {
            warn!("writing {name} failed: {error}");
            self.failures.push(StoreFailure { name, error });
        }
    }
}

#[async_trait]
impl Sink for ObjectsSink {
    fn location(&self) -> String {
        self.run.location()
    }

    async fn put(&mut self, name: &str, document: Bytes) -> Result<(), SinkError> {
        self.spawn(name, Write::Put(document)).await
    }

    fn can_copy(&self) -> bool {
        self.run.store().can_copy()
    }

    async fn copy(&mut self, name: &str, from: CopySource, sha256: String) -> Result<(), SinkError> {
        self.spawn(name, Write::Copy(from, sha256)).await
    }

    async fn settle(&mut self) -> Result<Vec<StoreFailure>, SinkError> {
        while let Some(done) = self.writes.join_next_with_id().await {
            self.record(done);
        }
        Ok(std::mem::take(&mut self.failures))
    }

    async fn finish(&mut self, manifest: &Spooled) -> Result<(), SinkError> {
        let late = self.settle().await?;
        if let Some(f) = late.first() {
            return Err(SinkError::Store {
                message: format!("writing {} failed after the manifest was built: {}", f.name, f.error),
                retryable: false,
            });
        }
        manifest
            .store_as(&**self.run.store(), &self.run.name(MANIFEST_NAME))
            .await
    }

    async fn abort(&mut self, manifest: &Spooled) -> Result<(), SinkError> {
        let _ = self.settle().await;
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
        true
    }
}
