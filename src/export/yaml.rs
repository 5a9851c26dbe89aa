//! The YAML phase: Archy YAML of every exported flow's published version, through export jobs
//! in batches, each flow's YAML stored beside its JSON with its own manifest entry.
//!
//! Export jobs report throttling as "could not find the flow with id … exit code 107". A batch
//! that fails so is retried after growing waits (`retry_wait` × attempt); a batch of several
//! flows that keeps failing is split (the flow a message names first, else in halves) down to
//! single flows, which get five attempts before the flow is recorded as failed. A zip whose
//! entries cannot be matched one-to-one to the batch's flows is split the same way.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::naming::FlowPaths;
use super::rows::RowLog;
use super::{RunError, StopSignal};
use crate::genesys::export_jobs::{JobEnd, unpack};
use crate::genesys::{ApiError, GenesysClient};
use crate::manifest::{Content, Document, FlowRecord, Outcome};
use crate::sink::Sink;

/// How the YAML phase batches and retries.
#[derive(Debug, Clone)]
pub struct YamlOptions {
    /// Flows per export job.
    pub batch_size: usize,
    /// The first wait after a throttled job; the n-th retry waits n times this.
    pub retry_wait: Duration,
    /// Jobs in flight at once.
    pub jobs_in_flight: usize,
}

impl Default for YamlOptions {
    fn default() -> Self {
        YamlOptions {
            batch_size: 25,
            retry_wait: Duration::from_secs(15),
            jobs_in_flight: 4,
        }
    }
}

/// Attempts for a single flow (as CX as Code), and for a batch before it is split.
const SINGLE_ATTEMPTS: u32 = 5;
const BATCH_ATTEMPTS: u32 = 2;

/// One flow to export: its row, id, name, published version and YAML path.
#[derive(Debug, Clone)]
struct Item {
    row: usize,
    id: String,
    name: String,
    version: String,
    path: String,
}

type Outcomes = Vec<(usize, Result<Vec<u8>, String>)>;

/// Exports YAML for every exported, published flow in `rows` and stores it through `sink`.
/// Rows whose YAML could not be had become `failed` (their JSON documents stay). An `Err` is a
/// run-level failure (credentials, destination).
pub(super) async fn export_yaml(
    client: &GenesysClient,
    sink: &mut dyn Sink,
    rows: &mut RowLog,
    options: &YamlOptions,
    stop: &StopSignal,
) -> Result<(), RunError> {
    let items: Vec<Item> = rows
        .iter()
        // Carried rows may have their YAML already.
        .filter(|(_, r)| r.outcome == Outcome::Exported && r.document(Content::Yaml).is_none())
        .filter_map(|(i, r)| {
            let version = r.published_version.clone()?;
            let base = r.documents.first().map(|d| FlowPaths::from_document_path(&d.path))?;
            Some(Item {
                row: i,
                id: r.id.clone(),
                name: r.name.clone(),
                version,
                path: base.yaml(),
            })
        })
        .collect();
    info!(
        flows = items.len(),
        "exporting Archy YAML of {} published flows",
        items.len()
    );
    let batches: Vec<Vec<Item>> = items.chunks(options.batch_size.max(1)).map(<[Item]>::to_vec).collect();
    let results = futures::stream::iter(batches)
        .map(|batch| export_batch(client, batch, options))
        .buffered(options.jobs_in_flight.max(1))
        .take_until(stop.stopped());
    let mut results = std::pin::pin!(results);
    let by_row: std::collections::HashMap<usize, &Item> = items.iter().map(|i| (i.row, i)).collect();
    let mut done = vec![false; rows.len()];
    while let Some(outcomes) = results.next().await {
        for (row, outcome) in outcomes? {
            done[row] = true;
            if let (Some(item), Some(mut record)) = (by_row.get(&row), rows.get(row)) {
                let stored = store(sink, &mut record, outcome, item).await;
                rows.update(row, |r| *r = record);
                stored?;
            }
        }
    }
    for item in items.iter().filter(|i| !done[i.row]) {
        rows.update(item.row, |r| {
            let attempts = r.attempts;
            r.failed("the run stopped before its YAML was exported".into(), attempts);
        });
    }
    Ok(())
}

async fn store(
    sink: &mut dyn Sink,
    row: &mut FlowRecord,
    outcome: Result<Vec<u8>, String>,
    item: &Item,
) -> Result<(), RunError> {
    match outcome {
        Ok(yaml) => {
            let doc = Document {
                contents: vec![Content::Yaml],
                version: Some(item.version.clone()),
                path: item.path.clone(),
                bytes: yaml.len() as u64,
                sha256: hex::encode(Sha256::digest(&yaml)),
                configuration_sha256: None,
            };
            if let Err(source) = sink.put(&item.path, Bytes::from(yaml)).await {
                let e = RunError::Store {
                    location: sink.location(),
                    source,
                };
                row.failed(e.to_string(), row.attempts);
                return Err(e);
            }
            row.documents.push(doc);
        }
        Err(why) => {
            warn!("no YAML for flow {} ({}): {why}", row.id, row.name);
            row.failed(format!("its Archy YAML could not be exported: {why}"), row.attempts);
        }
    }
    Ok(())
}

/// Exports one batch, retrying and splitting as the module says.
fn export_batch<'a>(
    client: &'a GenesysClient,
    batch: Vec<Item>,
    options: &'a YamlOptions,
) -> futures::future::BoxFuture<'a, Result<Outcomes, RunError>> {
    Box::pin(async move {
        let pairs: Vec<(String, String)> = batch.iter().map(|i| (i.id.clone(), i.version.clone())).collect();
        let max_attempts = if batch.len() > 1 {
            BATCH_ATTEMPTS
        } else {
            SINGLE_ATTEMPTS
        };
        let mut attempt = 0;
        let why = loop {
            attempt += 1;
            match client.run_export_job(&pairs).await {
                Ok(JobEnd::Success(result)) => match assign(&batch, &result) {
                    Ok(files) => return Ok(files),
                    Err(why) => break why,
                },
                Ok(JobEnd::Failure { message, throttled }) if throttled && attempt < max_attempts => {
                    let wait = options.retry_wait * attempt;
                    warn!(
                        flows = batch.len(),
                        attempt,
                        wait_s = wait.as_secs_f64(),
                        "export job failed with what is likely throttling ({message}); retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
                Ok(JobEnd::Failure { message, .. }) => break message,
                Err(e) if e.is_fatal_for_run() => return Err(RunError::Credentials(e)),
                Err(e @ ApiError::Forbidden { .. }) if batch.len() == 1 => {
                    break format!("{e} (export jobs need architect:jobExport:create and architect:jobExport:view)");
                }
                Err(e) => break e.to_string(),
            }
        };
        if batch.len() == 1 {
            return Ok(vec![(batch[0].row, Err(why))]);
        }
        let (a, b) = split(batch, &why);
        let mut out = export_batch(client, a, options).await?;
        out.extend(export_batch(client, b, options).await?);
        Ok(out)
    })
}

/// The flow a failure message names goes alone; otherwise the batch is halved.
fn split(mut batch: Vec<Item>, why: &str) -> (Vec<Item>, Vec<Item>) {
    if let Some(pos) = batch.iter().position(|i| why.contains(&i.id)) {
        let named = batch.remove(pos);
        return (vec![named], batch);
    }
    let rest = batch.split_off(batch.len() / 2);
    (batch, rest)
}

/// Matches a job's files to its flows: by id in the file name, else by the flow's name starting
/// the file name. Only a one-to-one match is accepted.
fn assign(batch: &[Item], result: &[u8]) -> Result<Outcomes, String> {
    let files = unpack(result)?;
    if let ([item], [(_, yaml)]) = (batch, files.as_slice()) {
        return Ok(vec![(item.row, Ok(yaml.clone()))]);
    }
    if files.len() != batch.len() {
        return Err(format!(
            "the export held {} files for {} flows",
            files.len(),
            batch.len()
        ));
    }
    let mut taken = vec![false; batch.len()];
    let mut out = Vec::with_capacity(batch.len());
    for (name, yaml) in files {
        let stem = normalize(name.rsplit('/').next().unwrap_or(&name));
        let by_id: Vec<usize> = (0..batch.len()).filter(|&i| name.contains(&batch[i].id)).collect();
        let candidates = if by_id.is_empty() {
            (0..batch.len())
                .filter(|&i| !normalize(&batch[i].name).is_empty() && stem.starts_with(&normalize(&batch[i].name)))
                .collect()
        } else {
            by_id
        };
        match candidates.as_slice() {
            [i] if !taken[*i] => {
                taken[*i] = true;
                out.push((batch[*i].row, Ok(yaml)));
            }
            _ => {
                return Err(format!(
                    "the export file `{name}` cannot be matched to one flow of the batch"
                ));
            }
        }
    }
    Ok(out)
}

fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(row: usize, id: &str, name: &str) -> Item {
        Item {
            row,
            id: id.into(),
            name: name.into(),
            version: "1.0".into(),
            path: format!("{id}.yaml"),
        }
    }

    fn zip(files: &[(&str, &str)]) -> Vec<u8> {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (n, body) in files {
            w.start_file(*n, zip::write::SimpleFileOptions::default()).unwrap();
            w.write_all(body.as_bytes()).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn zip_entries_are_matched_by_id_or_by_name() {
        let batch = [item(0, "id-a", "Main IVR"), item(1, "id-b", "After Hours")];
        let out = assign(&batch, &zip(&[("After Hours_v1-0.yaml", "b"), ("x/id-a.yaml", "a")])).unwrap();
        assert_eq!(out, vec![(1, Ok(b"b".to_vec())), (0, Ok(b"a".to_vec()))]);
    }

    #[test]
    fn an_ambiguous_zip_is_refused_so_the_batch_is_split() {
        let batch = [item(0, "id-a", "Main"), item(1, "id-b", "Main IVR")];
        assert!(assign(&batch, &zip(&[("Main IVR_v1-0.yaml", "x"), ("Main_v1-0.yaml", "y")])).is_err());
        let twins = [item(0, "id-a", "Same"), item(1, "id-b", "Same")];
        assert!(assign(&twins, &zip(&[("Same_v1-0.yaml", "x"), ("Same_v1-0 (1).yaml", "y")])).is_err());
    }

    #[test]
    fn a_failure_naming_a_flow_sends_that_flow_alone() {
        let batch = vec![item(0, "id-a", "A"), item(1, "id-b", "B"), item(2, "id-c", "C")];
        let (alone, rest) = split(batch.clone(), "Could not find the flow with id id-b. Exit code 107.");
        assert_eq!(alone.iter().map(|i| i.row).collect::<Vec<_>>(), vec![1]);
        assert_eq!(rest.len(), 2);
        let (a, b) = split(batch, "unknown");
        assert_eq!((a.len(), b.len()), (1, 2));
    }
}
