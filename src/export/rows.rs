//! The run's manifest rows, kept on disk rather than in memory: a row is appended to an unnamed
//! temporary file (compact JSON) each time it changes, and only its id, type and place in the file
//! stay in memory. So a run's memory does not grow with the org (50,000 rows would otherwise be
//! tens of megabytes), and the manifest is written from the file at the end, row by row.
//!
//! The file is an optimisation, never a risk: when it cannot be created or written (no writable
//! `TMPDIR`, a full disk), rows are kept in memory instead, with one warning.

use std::fs::File;
use std::os::unix::fs::FileExt;

use std::collections::HashMap;

use tracing::warn;

use crate::genesys::FlowId;
use crate::manifest::{FlowRecord, ObjectRecord, Outcome, Totals};
use crate::sink::{Sink, SinkError, StoreFailure};

/// The rows of one run, in the order flows were taken from the listing.
pub(super) struct RowLog {
    file: Option<File>,
    /// False once a write failed: rows already in the file stay readable, new ones stay in memory.
    writable: bool,
    end: u64,
    slots: Vec<Slot>,
    types: Vec<Box<str>>,
    /// Rows the file could not take, by index.
    in_memory: HashMap<usize, FlowRecord>,
    /// The Architect objects' rows: an org has hundreds to a few thousand, kept in memory.
    objects: Vec<ObjectRecord>,
}

/// Where a row is (40 bytes a flow).
struct Slot {
    id: FlowId,
    offset: u64,
    /// The row's length in the file; 0: in `in_memory`.
    len: u32,
    type_ix: u16,
}

impl RowLog {
    /// Rows spilled to a temporary file in `std::env::temp_dir()` (`TMPDIR`).
    pub fn new() -> RowLog {
        let file = tempfile::tempfile()
            .map_err(|e| {
                warn!(
                    "cannot create a temporary file in {} ({e}); the manifest rows are kept in memory. Set TMPDIR to a writable directory to keep memory flat",
                    std::env::temp_dir().display()
                )
            })
            .ok();
        RowLog {
            writable: file.is_some(),
            file,
            end: 0,
            slots: Vec::new(),
            types: Vec::new(),
            in_memory: HashMap::new(),
            objects: Vec::new(),
        }
    }

    /// Rows kept in memory only (small runs, tests).
    #[cfg(test)]
    pub fn in_memory() -> RowLog {
        RowLog {
            file: None,
            writable: false,
            ..RowLog::new()
        }
    }

    /// Adds a row; returns its index.
    pub fn push(&mut self, row: FlowRecord) -> usize {
        let type_ix = match self.types.iter().position(|t| **t == *row.flow_type) {
            Some(i) => i,
            None => {
                self.types.push(row.flow_type.clone().into_boxed_str());
                self.types.len() - 1
            }
        } as u16;
        let index = self.slots.len();
        self.slots.push(Slot {
            id: FlowId::new(&row.id),
            offset: 0,
            len: 0,
            type_ix,
        });
        self.place(index, row);
        index
    }

    /// Adds an Architect object's row; returns its index among the objects.
    pub fn push_object(&mut self, row: ObjectRecord) -> usize {
        self.objects.push(row);
        self.objects.len() - 1
    }

    /// Changes the object row at `index`.
    pub fn update_object(&mut self, index: usize, change: impl FnOnce(&mut ObjectRecord)) {
        if let Some(row) = self.objects.get_mut(index) {
            change(row);
        }
    }

    /// The Architect objects' rows, sorted as the manifest has them: by kind, name, then id.
    pub fn objects_sorted(&self) -> Vec<ObjectRecord> {
        let mut objects = self.objects.clone();
        objects.sort_by(|a, b| (&a.kind, &a.name, &a.id).cmp(&(&b.kind, &b.name, &b.id)));
        objects
    }

    /// How many rows there are.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The row at `index`.
    pub fn get(&self, index: usize) -> Option<FlowRecord> {
        let slot = self.slots.get(index)?;
        Some(match self.in_memory.get(&index) {
            Some(row) => row.clone(),
            None => self.read(slot),
        })
    }

    /// Changes the row at `index`.
    pub fn update(&mut self, index: usize, change: impl FnOnce(&mut FlowRecord)) {
        let Some(mut row) = self.get(index) else { return };
        change(&mut row);
        self.place(index, row);
    }

    /// Every flow id, in listing order.
    pub fn ids(&self) -> impl Iterator<Item = &FlowId> {
        self.slots.iter().map(|s| &s.id)
    }

    /// Every row with its index, in listing order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, FlowRecord)> + '_ {
        (0..self.slots.len()).filter_map(|i| self.get(i).map(|r| (i, r)))
    }

    /// Every row sorted by type, then id: the manifest's order.
    pub fn sorted(&self) -> impl Iterator<Item = FlowRecord> + '_ {
        let mut order: Vec<u32> = (0..self.slots.len() as u32).collect();
        order.sort_by(|a, b| {
            let (a, b) = (&self.slots[*a as usize], &self.slots[*b as usize]);
            (&self.types[a.type_ix as usize], &a.id).cmp(&(&self.types[b.type_ix as usize], &b.id))
        });
        order.into_iter().filter_map(|i| self.get(i as usize))
    }

    /// Counts per outcome (flows), and the bytes of the documents the rows name, objects'
    /// included (one pass over the file).
    pub fn tally(&self) -> (Totals, u64) {
        let mut t = Totals::default();
        let mut bytes = 0;
        for (_, row) in self.iter() {
            t.add(&row);
            bytes += row.documents.iter().map(|d| d.bytes).sum::<u64>();
        }
        bytes += self
            .objects
            .iter()
            .flat_map(|o| &o.documents)
            .map(|d| d.bytes)
            .sum::<u64>();
        (t, bytes)
    }

    /// Object rows that failed or were skipped.
    pub fn objects_not_exported(&self) -> usize {
        self.objects
            .iter()
            .filter(|o| matches!(o.outcome, Outcome::Failed | Outcome::Skipped))
            .count()
    }

    /// The destination lost everything: every object row that had documents says so.
    pub fn discard_objects(&mut self, why: &str) {
        for row in self.objects.iter_mut().filter(|o| !o.documents.is_empty()) {
            row.documents.clear();
            row.outcome = Outcome::Failed;
            row.error = Some(format!(
                "fetched, but the archive was discarded because the destination failed: {why}"
            ));
        }
    }

    /// Waits for the documents `sink` is still writing and marks the rows of those it could not
    /// store `failed` (the document dropped from the row, the others kept), before the manifest is
    /// sealed: whichever phase wrote them (documents, YAML, carried ones), panics included.
    pub async fn settle_writes(&mut self, sink: &mut dyn Sink) -> Result<(), SinkError> {
        let failures = sink.settle().await?;
        self.mark_store_failures(failures);
        Ok(())
    }

    /// Rows whose documents the destination could not take become `failed`, saying why.
    pub fn mark_store_failures(&mut self, failures: Vec<StoreFailure>) {
        for f in failures {
            let found = self
                .iter()
                .find(|(_, r)| r.documents.iter().any(|d| d.path == f.name))
                .map(|(i, _)| i);
            let Some(index) = found else {
                if self.mark_object_failure(&f) {
                    continue;
                }
                warn!(
                    "a document that could not be stored ({}) matches no row: {}",
                    f.name, f.error
                );
                continue;
            };
            self.update(index, |row| {
                row.documents.retain(|d| d.path != f.name);
                let attempts = row.attempts;
                row.failed(format!("could not store {}: {}", f.name, f.error), attempts);
            });
        }
    }

    /// The object row whose document `f` names becomes `failed` (that document dropped); false
    /// when no object row names it.
    fn mark_object_failure(&mut self, f: &StoreFailure) -> bool {
        let Some(row) = self
            .objects
            .iter_mut()
            .find(|o| o.documents.iter().any(|d| d.path == f.name))
        else {
            return false;
        };
        row.documents.retain(|d| d.path != f.name);
        row.outcome = Outcome::Failed;
        row.error = Some(format!("could not store {}: {}", f.name, f.error));
        true
    }

    /// Appends row `index` to the file, or keeps it in memory when the file cannot take it.
    fn place(&mut self, index: usize, row: FlowRecord) {
        let Some(file) = self.file.as_ref().filter(|_| self.writable) else {
            self.in_memory.insert(index, row);
            return;
        };
        let written = serde_json::to_vec(&row)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                let len = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
                file.write_all_at(&bytes, self.end).map(|()| len)
            });
        match written {
            Ok(len) => {
                if let Some(slot) = self.slots.get_mut(index) {
                    (slot.offset, slot.len) = (self.end, len);
                }
                self.end += u64::from(len);
                self.in_memory.remove(&index);
            }
            Err(e) => {
                warn!(
                    "cannot write manifest rows to the temporary file in TMPDIR {} ({e}); keeping them in memory from now on",
                    std::env::temp_dir().display()
                );
                self.writable = false;
                self.in_memory.insert(index, row);
            }
        }
    }

    /// Reads a row back; a row that cannot be read (the file was damaged under the run) becomes a
    /// `failed` row saying so, never a missing one.
    fn read(&self, slot: &Slot) -> FlowRecord {
        let mut bytes = vec![0; slot.len as usize];
        let read = match &self.file {
            Some(file) => file.read_exact_at(&mut bytes, slot.offset),
            None => Err(std::io::Error::other("the temporary file is gone")),
        };
        let parsed = read.and_then(|()| serde_json::from_slice::<FlowRecord>(&bytes).map_err(std::io::Error::other));
        parsed.unwrap_or_else(|e| {
            let mut row = FlowRecord::listed(
                slot.id.to_string(),
                String::new(),
                self.types[slot.type_ix as usize].to_string(),
                None,
                (None, None),
                String::new(),
            );
            row.failed(
                format!("its manifest row could not be read back from the temporary file: {e}"),
                None,
            );
            row
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Outcome;

    fn row(id: &str, flow_type: &str) -> FlowRecord {
        FlowRecord::listed(
            id.into(),
            format!("flow {id}"),
            flow_type.into(),
            None,
            (None, None),
            "not yet".into(),
        )
    }

    #[test]
    fn rows_read_back_as_written_and_changed_in_file_and_in_memory() {
        for mut log in [RowLog::new(), RowLog::in_memory()] {
            let a = log.push(row("b", "BOT"));
            let b = log.push(row("a", "WORKFLOW"));
            let c = log.push(row("a", "BOT"));
            log.update(b, |r| r.not_found());
            assert_eq!(log.get(a).unwrap(), row("b", "BOT"));
            assert_eq!(log.get(b).unwrap().outcome, Outcome::NotFound);
            assert_eq!(log.ids().map(|i| i.to_string()).collect::<Vec<_>>(), ["b", "a", "a"]);
            let sorted: Vec<_> = log.sorted().map(|r| (r.flow_type, r.id)).collect();
            assert_eq!(
                sorted,
                [
                    ("BOT".into(), "a".into()),
                    ("BOT".into(), "b".into()),
                    ("WORKFLOW".into(), "a".into())
                ]
            );
            let (t, _) = log.tally();
            assert_eq!((t.listed, t.not_found, t.skipped), (3, 1, 2));
            assert_eq!(log.get(c).unwrap().id, "a");
            assert!(log.get(3).is_none());
        }
    }
}
