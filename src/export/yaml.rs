//! The YAML phase: Archy YAML of every exported flow's published version, through export jobs
//! in batches, each flow's YAML stored beside its JSON with its own manifest entry.
//!
//! Each job entry names its file by the flow id (`fileName`), so a zip's entries are matched to
//! flows exactly; names are only a fallback for a server that ignores `fileName`. Export jobs
//! report throttling as a failure whose message ends "Setting the Archy exit code to 107" (and
//! says it could not find the flow): each such answer halves the jobs in flight and the flows
//! per job for the rest of the phase (as CX as Code, down to one flow per job), and the batch is
//! retried after growing waits (`retry_wait` × attempt). A message saying a flow could not be
//! found is checked against the flow itself first: a flow that is really gone is not retried.
//! A batch that keeps failing is split (the flow a message names first, else in halves) down to
//! single flows, which get five attempts before the flow is recorded as failed. The pace the
//! phase started and ended at is recorded in the manifest's YAML section.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::naming::FlowPaths;
use super::rows::RowLog;
use super::{RunError, StopSignal};
use crate::genesys::export_jobs::{JobEnd, file_name_for, names_a_missing_flow, unpack};
use crate::genesys::{ApiError, GenesysClient};
use crate::manifest::{Content, Document, FlowRecord, Outcome, YamlJobs};
use crate::sink::Sink;

/// How the YAML phase batches and retries.
#[derive(Debug, Clone)]
pub struct YamlOptions {
    /// Flows per export job (at first: halved by each exit-code-107 answer).
    pub batch_size: usize,
    /// The first wait after a throttled job; the n-th retry waits n times this.
    pub retry_wait: Duration,
    /// Jobs in flight at once (at first: halved by each exit-code-107 answer).
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

/// A flow's YAML, or why there is none.
#[derive(Debug, PartialEq)]
enum YamlOutcome {
    Yaml(Vec<u8>),
    Failed(String),
    /// The flow was deleted before its YAML could be exported.
    Gone,
}

type Outcomes = Vec<(usize, YamlOutcome)>;

/// The phase's job sizes, lowered by the backend's exit-code-107 answers.
struct JobPace {
    record: Mutex<YamlJobs>,
}

impl JobPace {
    fn new(options: &YamlOptions) -> Self {
        let (batch, jobs) = (options.batch_size.max(1), options.jobs_in_flight.max(1));
        JobPace {
            record: Mutex::new(YamlJobs {
                batch_size: batch,
                jobs_in_flight: jobs,
                final_batch_size: batch,
                final_jobs_in_flight: jobs,
                ..YamlJobs::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, YamlJobs> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// (flows per job, jobs in flight) now.
    fn now(&self) -> (usize, usize) {
        let r = self.lock();
        (r.final_batch_size, r.final_jobs_in_flight)
    }

    fn job_sent(&self) {
        self.lock().jobs += 1;
    }

    /// An exit-code-107 answer: fewer, smaller jobs from now on.
    fn throttled(&self) {
        let mut r = self.lock();
        r.throttled += 1;
        let (batch, jobs) = ((r.final_batch_size / 2).max(1), (r.final_jobs_in_flight / 2).max(1));
        if (batch, jobs) != (r.final_batch_size, r.final_jobs_in_flight) {
            info!(
                "export jobs are being throttled (exit code 107): {jobs} jobs of at most {batch} flows at a time from now on"
            );
        }
        (r.final_batch_size, r.final_jobs_in_flight) = (batch, jobs);
    }
}

/// Exports YAML for every exported, published flow in `rows` and stores it through `sink`.
/// Rows whose YAML could not be had become `failed` (their JSON documents stay). An `Err` is a
/// run-level failure (credentials, destination); otherwise the pace the jobs ran at.
pub(super) async fn export_yaml(
    client: &GenesysClient,
    sink: &mut dyn Sink,
    rows: &mut RowLog,
    options: &YamlOptions,
    stop: &StopSignal,
) -> Result<YamlJobs, RunError> {
    let items = wanted_items(rows);
    info!(
        flows = items.len(),
        "exporting Archy YAML of {} published flows",
        items.len()
    );
    let pace = JobPace::new(options);
    let by_row: std::collections::HashMap<usize, &Item> = items.iter().map(|i| (i.row, i)).collect();
    let mut done = vec![false; rows.len()];
    let mut queue: VecDeque<Item> = items.iter().cloned().collect();
    let mut running = FuturesUnordered::new();
    // Results are stored in the order their batches were formed, so an unchanged org gives
    // identical archives whatever order the jobs end in.
    let (mut next_seq, mut formed, mut ready) = (0u64, 0u64, BTreeMap::new());
    loop {
        let (batch_size, jobs) = pace.now();
        while running.len() < jobs && !queue.is_empty() {
            let batch: Vec<Item> = queue.drain(..batch_size.min(queue.len())).collect();
            let seq = formed;
            formed += 1;
            let job = export_batch(client, batch, options, &pace);
            running.push(async move { (seq, job.await) });
        }
        let next = tokio::select! {
            n = running.next() => n,
            _ = stop.stopped() => None,
        };
        let Some((seq, outcomes)) = next else { break };
        ready.insert(seq, outcomes?);
        while let Some(outcomes) = ready.remove(&next_seq) {
            next_seq += 1;
            for (row, outcome) in outcomes {
                done[row] = true;
                if let (Some(item), Some(mut record)) = (by_row.get(&row), rows.get(row)) {
                    let stored = store(sink, &mut record, outcome, item).await;
                    rows.update(row, |r| *r = record);
                    stored?;
                }
            }
        }
    }
    for item in items.iter().filter(|i| !done[i.row]) {
        rows.update(item.row, |r| {
            let attempts = r.attempts;
            r.failed("the run stopped before its YAML was exported".into(), attempts);
        });
    }
    let record = pace.lock().clone();
    Ok(record)
}

/// The flows whose YAML is wanted: exported and published, without YAML carried already.
fn wanted_items(rows: &RowLog) -> Vec<Item> {
    rows.iter()
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
        .collect()
}

async fn store(sink: &mut dyn Sink, row: &mut FlowRecord, outcome: YamlOutcome, item: &Item) -> Result<(), RunError> {
    match outcome {
        YamlOutcome::Yaml(yaml) => {
            let doc = Document {
                contents: vec![Content::Yaml],
                version: Some(item.version.clone()),
                path: item.path.clone(),
                bytes: yaml.len() as u64,
                sha256: hex::encode(Sha256::digest(&yaml)),
                configuration_sha256: None,
                language: None,
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
        YamlOutcome::Gone => {
            info!(
                "flow {} ({}) was deleted before its Archy YAML was exported; its JSON documents are kept",
                row.id, row.name
            );
            row.error = Some("deleted before its Archy YAML was exported (HTTP 404/410)".into());
        }
        YamlOutcome::Failed(why) => {
            warn!("no YAML for flow {} ({}): {why}", row.id, row.name);
            row.failed(format!("its Archy YAML could not be exported: {why}"), row.attempts);
        }
    }
    Ok(())
}

/// How one attempt at a job ended, for the retry loop.
enum Attempt {
    Done(Outcomes),
    Retry,
    GiveUp(String),
}

/// Exports one batch, retrying and splitting as the module says.
fn export_batch<'a>(
    client: &'a GenesysClient,
    batch: Vec<Item>,
    options: &'a YamlOptions,
    pace: &'a JobPace,
) -> futures::future::BoxFuture<'a, Result<Outcomes, RunError>> {
    Box::pin(async move {
        let max_attempts = if batch.len() > 1 {
            BATCH_ATTEMPTS
        } else {
            SINGLE_ATTEMPTS
        };
        let mut attempt = 0;
        let why = loop {
            attempt += 1;
            match try_job(client, &batch, pace).await? {
                Attempt::Done(out) => return Ok(out),
                Attempt::Retry if attempt < max_attempts => {
                    // Smaller jobs now: the rest of this batch goes at the lowered size.
                    let (size, _) = pace.now();
                    if batch.len() > size {
                        return export_chunks(client, batch, options, pace, size).await;
                    }
                    let wait = options.retry_wait * attempt;
                    warn!(
                        flows = batch.len(),
                        attempt,
                        wait_s = wait.as_secs_f64(),
                        "export job throttled (exit code 107); retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
                Attempt::Retry => break "the export job was still throttled (exit code 107) after every retry".into(),
                Attempt::GiveUp(why) => break why,
            }
        };
        if batch.len() == 1 {
            return Ok(vec![(batch[0].row, YamlOutcome::Failed(why))]);
        }
        let (a, b) = split(batch, &why);
        let mut out = export_batch(client, a, options, pace).await?;
        out.extend(export_batch(client, b, options, pace).await?);
        Ok(out)
    })
}

/// Exports `batch` as jobs of at most `size` flows, one after the other.
async fn export_chunks(
    client: &GenesysClient,
    batch: Vec<Item>,
    options: &YamlOptions,
    pace: &JobPace,
    size: usize,
) -> Result<Outcomes, RunError> {
    let mut out = Vec::with_capacity(batch.len());
    for chunk in batch.chunks(size.max(1)) {
        out.extend(export_batch(client, chunk.to_vec(), options, pace).await?);
    }
    Ok(out)
}

/// Runs one job for `batch`. A failure naming a flow that is really gone settles that flow (no
/// retries are spent on it) and sends the rest again at once.
async fn try_job(client: &GenesysClient, batch: &[Item], pace: &JobPace) -> Result<Attempt, RunError> {
    let pairs: Vec<(String, String)> = batch.iter().map(|i| (i.id.clone(), i.version.clone())).collect();
    pace.job_sent();
    let (message, throttled) = match client.run_export_job(&pairs).await {
        Ok(JobEnd::Success(result)) => {
            return Ok(match assign(batch, &result) {
                Ok(files) => Attempt::Done(files),
                Err(why) => Attempt::GiveUp(why),
            });
        }
        Ok(JobEnd::Failure { message, throttled }) => (message, throttled),
        Err(e) if e.is_fatal_for_run() => return Err(RunError::Credentials(e)),
        Err(e @ ApiError::Forbidden { .. }) if batch.len() == 1 => {
            let why = format!("{e} (export jobs need architect:jobExport:create and architect:jobExport:view)");
            return Ok(Attempt::GiveUp(why));
        }
        Err(e) => return Ok(Attempt::GiveUp(e.to_string())),
    };
    if names_a_missing_flow(&message) {
        let named = batch.iter().position(|i| message.contains(&i.id));
        let suspects: Vec<&Item> = match named {
            Some(i) => vec![&batch[i]],
            None if batch.len() == 1 => vec![&batch[0]],
            None => Vec::new(),
        };
        for suspect in suspects {
            if let Ok(false) = client.flow_exists(&suspect.id).await {
                let mut out = vec![(suspect.row, YamlOutcome::Gone)];
                let rest: Vec<Item> = batch.iter().filter(|i| i.row != suspect.row).cloned().collect();
                if !rest.is_empty() {
                    out.extend(Box::pin(try_job_until_done(client, rest, pace)).await?);
                }
                return Ok(Attempt::Done(out));
            }
        }
    }
    if throttled {
        pace.throttled();
        return Ok(Attempt::Retry);
    }
    if names_a_missing_flow(&message) {
        // The flow exists: the message is throttling without the 107.
        return Ok(Attempt::Retry);
    }
    Ok(Attempt::GiveUp(message))
}

/// The rest of a batch after a gone flow was taken out: one more job, whatever it ends in.
async fn try_job_until_done(client: &GenesysClient, rest: Vec<Item>, pace: &JobPace) -> Result<Outcomes, RunError> {
    match try_job(client, &rest, pace).await? {
        Attempt::Done(out) => Ok(out),
        Attempt::Retry => Ok(rest
            .iter()
            .map(|i| {
                (
                    i.row,
                    YamlOutcome::Failed("the export job was throttled (exit code 107)".into()),
                )
            })
            .collect()),
        Attempt::GiveUp(why) => Ok(rest.iter().map(|i| (i.row, YamlOutcome::Failed(why.clone()))).collect()),
    }
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

/// Matches a job's files to its flows: by the `fileName` each entry was given (the flow id), else
/// by id in the file name, else by the flow's name starting the file name. Only a one-to-one
/// match is accepted.
fn assign(batch: &[Item], result: &[u8]) -> Result<Outcomes, String> {
    let files = unpack(result)?;
    if let ([item], [(_, yaml)]) = (batch, files.as_slice()) {
        return Ok(vec![(item.row, YamlOutcome::Yaml(yaml.clone()))]);
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
        match candidates(batch, &name).as_slice() {
            [i] if !taken[*i] => {
                taken[*i] = true;
                out.push((batch[*i].row, YamlOutcome::Yaml(yaml)));
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

/// The flows of `batch` a file of that name may belong to, best rule first.
fn candidates(batch: &[Item], name: &str) -> Vec<usize> {
    let base = name.rsplit('/').next().unwrap_or(name);
    let stem = base.split_once('.').map_or(base, |(s, _)| s);
    let by_file_name: Vec<usize> = (0..batch.len())
        .filter(|&i| file_name_for(&batch[i].id) == stem)
        .collect();
    if !by_file_name.is_empty() {
        return by_file_name;
    }
    let by_id: Vec<usize> = (0..batch.len()).filter(|&i| name.contains(&batch[i].id)).collect();
    if !by_id.is_empty() {
        return by_id;
    }
    let stem = normalize(base);
    (0..batch.len())
        .filter(|&i| !normalize(&batch[i].name).is_empty() && stem.starts_with(&normalize(&batch[i].name)))
        .collect()
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
        assert_eq!(
            out,
            vec![
                (1, YamlOutcome::Yaml(b"b".to_vec())),
                (0, YamlOutcome::Yaml(b"a".to_vec()))
            ]
        );
    }

    #[test]
    fn entries_named_by_file_name_are_matched_exactly_even_when_one_id_holds_another() {
        let batch = [item(0, "f1", "Same"), item(1, "f1-2", "Same")];
        let out = assign(&batch, &zip(&[("f1-2.yaml", "b"), ("f1.yaml", "a")])).unwrap();
        assert_eq!(
            out,
            vec![
                (1, YamlOutcome::Yaml(b"b".to_vec())),
                (0, YamlOutcome::Yaml(b"a".to_vec()))
            ]
        );
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
