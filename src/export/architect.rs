//! The Architect phase: after the flows, every selected kind is listed and each object stored
//! through the same sink and row log as the flows — its document, a data table's rows, a
//! prompt's audio per language. A kind the role cannot read is recorded as not checked (a
//! warning, or a failure when `--kinds` named it); one object's failure never stops the others.
//! With `--since`, an object whose listing is unchanged is carried from the previous run, and a
//! prompt's audio whenever its resource's listed fields are unchanged.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tracing::{Instrument, info, info_span, warn};

use super::base::{Base, Carry};
use super::naming::sanitize;
use super::rows::RowLog;
use super::{RunError, StopSignal};
use crate::architect::{ArchitectKind, KindSelection};
use crate::document;
use crate::genesys::GenesysClient;
use crate::genesys::architect::{self as api, ArchitectError, ListedObject, PromptResource};
use crate::manifest::{ArchitectSection, Content, Document, KindReport, ObjectRecord, Outcome, Source};
use crate::sink::Sink;

/// What the phase needs from the run's settings.
pub(super) struct PhaseOptions<'a> {
    /// The kinds asked for.
    pub selection: &'a KindSelection,
    /// The page size to start listings at.
    pub page_size: u64,
    /// Objects worked on at once (rows and audio in memory at once).
    pub concurrency: usize,
}

/// What the phase did per kind, before the rows settle (counts come from the rows at sealing).
#[derive(Debug, Default)]
pub(super) struct Phase {
    /// Per kind asked for, in restore order: checked, its note, API requests sent.
    kinds: Vec<(ArchitectKind, bool, Option<String>, u64)>,
    /// Why the run cannot be complete because of this phase (kinds named but unreadable, a
    /// listing that failed).
    pub incomplete: Vec<String>,
}

/// One document to store for an object, fetched now or carried.
struct Stored {
    doc: Document,
    body: Carry,
}

/// What handling one object came to.
struct Handled {
    index: usize,
    documents: Vec<Stored>,
    carried: bool,
    error: Option<String>,
    requests: u64,
}

/// Runs the phase: every selected kind in restore order, until done or `stop` fires.
pub(super) async fn export_objects(
    client: &GenesysClient,
    sink: &mut dyn Sink,
    rows: &mut RowLog,
    options: &PhaseOptions<'_>,
    base: Option<&Base>,
    stop: &StopSignal,
) -> Result<Phase, RunError> {
    let mut phase = Phase::default();
    let mut paths = ObjectNamer::default();
    for kind in options.selection.ordered() {
        if stop.cause().is_some() {
            phase
                .kinds
                .push((kind, false, Some("not read: the run stopped first".into()), 0));
            continue;
        }
        let span = info_span!("kind", kind = %kind);
        let listing = match api::list_kind(client, kind, options.page_size)
            .instrument(span.clone())
            .await
        {
            Ok(l) => l,
            Err(e) => {
                phase.unreadable(kind, options.selection, e)?;
                continue;
            }
        };
        let mut requests = listing.pages;
        let mut note = None;
        let objects: Vec<(usize, ListedObject, String)> = listing
            .objects
            .into_iter()
            .map(|o| {
                let index = rows.push_object(listed_row(&o));
                let path = paths.base_for(kind, &o.name, &o.id);
                (index, o, path)
            })
            .collect();
        info!(kind = %kind, listed = objects.len(), "listed {} {kind}", objects.len());
        let work = futures::stream::iter(objects)
            .map(|(index, object, path)| handle(client, base, index, object, path))
            .buffered(options.concurrency.max(1))
            .take_until(stop.stopped());
        let mut work = std::pin::pin!(work);
        let mut rows_denied = None;
        while let Some(handled) = work.next().instrument(span.clone()).await {
            requests += handled.requests;
            if let Some(e) = handled.error.as_deref()
                && e.starts_with(ROWS_DENIED)
            {
                rows_denied.get_or_insert_with(|| e.to_string());
            }
            record(sink, rows, handled, base).await?;
        }
        if let Some(denied) = rows_denied {
            warn!(kind = %kind, "{denied}");
            if options.selection.named(kind) {
                phase.incomplete.push(format!("datatables: {denied}"));
            }
            note = Some(denied);
        }
        phase.kinds.push((kind, note.is_none(), note, requests));
    }
    Ok(phase)
}

/// Starts a data table's row error when the role cannot read rows: the table is stored without
/// them, like a kind the role cannot read.
const ROWS_DENIED: &str = "rows not exported: missing permission";

impl Phase {
    /// A kind whose listing failed: not checked. A missing permission is a warning unless the kind
    /// was named; any other failure makes the run incomplete (or ends it, for credentials).
    fn unreadable(
        &mut self,
        kind: ArchitectKind,
        selection: &KindSelection,
        e: ArchitectError,
    ) -> Result<(), RunError> {
        if e.is_fatal_for_run() {
            return Err(match e {
                ArchitectError::List { source, .. } => RunError::Listing(source),
                ArchitectError::Api(api) => RunError::Credentials(api),
                other => RunError::Architect(other.to_string()),
            });
        }
        let note = match e.missing_permission() {
            Some(permission) => format!("not checked: missing permission {permission}"),
            None => format!("not checked: {e}"),
        };
        match (e.missing_permission(), selection.named(kind)) {
            (Some(_), false) => warn!(
                kind = %kind,
                "{kind} are not in this backup: the OAuth client's role cannot read them ({e})"
            ),
            _ => {
                warn!(kind = %kind, "{kind} are not in this backup: {e}");
                self.incomplete.push(format!("{kind}: {note}"));
            }
        }
        self.kinds.push((kind, false, Some(note), 1));
        Ok(())
    }

    /// The manifest's `architect` section, counted from the object rows as they were sealed.
    pub fn section(&self, objects: &[ObjectRecord]) -> ArchitectSection {
        let mut counts: BTreeMap<&str, KindReport> = BTreeMap::new();
        for o in objects {
            let r = counts.entry(o.kind.as_str()).or_default();
            r.listed += 1;
            match o.outcome {
                Outcome::Exported => {
                    r.exported += 1;
                    r.carried += u64::from(o.source == Some(Source::Carried));
                }
                Outcome::Failed | Outcome::Skipped => r.failed += 1,
                Outcome::NotFound => {}
            }
        }
        let kinds = self
            .kinds
            .iter()
            .map(|(kind, checked, note, requests)| {
                let counted = counts.remove(kind.as_str()).unwrap_or_default();
                KindReport {
                    kind: kind.as_str().to_string(),
                    checked: *checked,
                    note: note.clone(),
                    requests: *requests,
                    ..counted
                }
            })
            .collect();
        ArchitectSection { kinds }
    }
}

/// The row an object starts with: `skipped` until it is handled.
fn listed_row(o: &ListedObject) -> ObjectRecord {
    ObjectRecord {
        kind: o.kind.as_str().to_string(),
        id: o.id.clone(),
        name: o.name.clone(),
        division: o.division.clone(),
        outcome: Outcome::Skipped,
        documents: Vec::new(),
        listing_sha256: Some(o.listing_sha256()),
        source: None,
        carried_from: None,
        error: Some("the run stopped before this object was exported".into()),
    }
}

/// Gathers one object's documents: carried when unchanged since the previous run, else its
/// document from the listing, a table's rows and a prompt's audio fetched now.
async fn handle(
    client: &GenesysClient,
    base: Option<&Base>,
    index: usize,
    object: ListedObject,
    path: String,
) -> Handled {
    let fingerprint = object.listing_sha256();
    let what = format!("{} `{}` ({})", object.kind, object.name, object.id);
    let mut out = Handled {
        index,
        documents: Vec::new(),
        carried: false,
        error: None,
        requests: 0,
    };
    let previous = base.and_then(|b| b.object(object.kind.as_str(), &object.id).map(|r| (b, r)));
    if let Some((b, prev)) = previous
        && prev.listing_sha256.as_deref() == Some(fingerprint.as_str())
        && let Some(documents) = carry_all(b, &what, prev, &path).await
    {
        out.documents = documents;
        out.carried = true;
        return out;
    }
    let body = document::build_object(object.kind.as_str(), &object.stored_json());
    out.documents.push(stored(
        Content::Object,
        format!("{path}.json"),
        None,
        None,
        Bytes::from(body),
    ));
    match object.kind {
        ArchitectKind::DataTables => {
            match api::table_rows(client, &object.id, &object.name, api::ARCHITECT_PAGE_SIZE).await {
                Ok(table) => {
                    out.requests += table.pages;
                    let body = Bytes::from(table.document);
                    out.documents
                        .push(stored(Content::Rows, format!("{path}.rows.json"), None, None, body));
                }
                Err(e) => {
                    out.requests += 1;
                    out.error = Some(match e.missing_permission() {
                        Some(p) => format!("{ROWS_DENIED} {p}"),
                        None => e.to_string(),
                    });
                }
            }
        }
        ArchitectKind::Prompts => {
            for resource in object.resources() {
                match audio(client, previous, &what, &object, &resource, &path).await {
                    Ok((Some(doc), requests)) => {
                        out.requests += requests;
                        out.documents.push(doc);
                    }
                    Ok((None, requests)) => out.requests += requests,
                    Err(e) => {
                        out.error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
        }
        _ => {}
    }
    out
}

/// Every document of the previous row, verified (or checked for a copy), at this run's paths;
/// `None` when any of them cannot be carried or the paths differ.
async fn carry_all(b: &Base, what: &str, prev: &ObjectRecord, path: &str) -> Option<Vec<Stored>> {
    let mut out = Vec::with_capacity(prev.documents.len());
    for doc in &prev.documents {
        if !doc.path.starts_with(path) {
            return None; // named differently now (a clash resolved otherwise)
        }
        let body = b.carry_document(what, doc).await?;
        out.push(Stored { doc: doc.clone(), body });
    }
    Some(out)
}

/// One resource's audio: carried when the resource is listed as before, else downloaded now.
/// `None` for a resource without audio (text-to-speech only).
async fn audio(
    client: &GenesysClient,
    previous: Option<(&Base, &ObjectRecord)>,
    what: &str,
    object: &ListedObject,
    resource: &PromptResource,
    path: &str,
) -> Result<(Option<Stored>, u64), ArchitectError> {
    let name = format!("{path}.{}.wav", sanitize(&resource.language, 32, "und"));
    if let Some((b, prev)) = previous
        && let Some(doc) = prev.audio(&resource.language)
        && doc.version.as_deref() == Some(resource.fingerprint.as_str())
        && doc.path == name
        && let Some(body) = b.carry_document(what, doc).await
    {
        return Ok((Some(Stored { doc: doc.clone(), body }), 0));
    }
    if !resource.has_audio {
        return Ok((None, 0)); // text-to-speech only: nothing recorded to store
    }
    let got = api::prompt_audio(client, object, resource).await?;
    let doc = stored(
        Content::Audio,
        name,
        Some(resource.fingerprint.clone()),
        Some(resource.language.clone()),
        got.bytes,
    );
    Ok((Some(doc), got.requests))
}

fn stored(content: Content, path: String, version: Option<String>, language: Option<String>, body: Bytes) -> Stored {
    Stored {
        doc: Document {
            contents: vec![content],
            version,
            path,
            bytes: body.len() as u64,
            sha256: hex::encode(Sha256::digest(&body)),
            configuration_sha256: None,
            language,
        },
        body: Carry::Bytes(body),
    }
}

/// Writes one object's documents and settles its row. Only a destination failure ends the run.
async fn record(sink: &mut dyn Sink, rows: &mut RowLog, handled: Handled, base: Option<&Base>) -> Result<(), RunError> {
    let Handled {
        index,
        documents,
        carried,
        error,
        ..
    } = handled;
    let copies = documents.iter().filter(|s| matches!(s.body, Carry::Copy(_))).count() as u64;
    let reads = documents.len() as u64 - copies;
    let mut written = Vec::with_capacity(documents.len());
    for Stored { doc, body } in documents {
        let put = match body {
            Carry::Bytes(bytes) => sink.put(&doc.path, bytes).await,
            Carry::Copy(source) => sink.copy(&doc.path, source, doc.sha256.clone()).await,
        };
        if let Err(source) = put {
            let e = RunError::Store {
                location: sink.location(),
                source,
            };
            let msg = e.to_string();
            rows.update_object(index, |r| {
                r.documents = written;
                r.outcome = Outcome::Failed;
                r.error = Some(msg);
            });
            return Err(e);
        }
        written.push(doc);
    }
    if carried && let Some(b) = base {
        b.count_carried(copies, reads);
    }
    let from = base.map(|b| b.run_id.clone());
    rows.update_object(index, |r| {
        r.documents = written;
        match error {
            Some(e) if !e.starts_with(ROWS_DENIED) => {
                r.outcome = Outcome::Failed;
                r.error = Some(e);
            }
            note => {
                r.outcome = Outcome::Exported;
                r.error = note;
                r.source = Some(if carried { Source::Carried } else { Source::Fetched });
                r.carried_from = if carried { from } else { None };
            }
        }
    });
    Ok(())
}

/// Hands out distinct paths (without suffix) for the objects of one run:
/// `architect/<kind>/<safe-name>--<safe-id>`.
#[derive(Debug, Default)]
struct ObjectNamer {
    used: HashSet<String>,
}

impl ObjectNamer {
    fn base_for(&mut self, kind: ArchitectKind, name: &str, id: &str) -> String {
        let base = format!(
            "architect/{}/{}--{}",
            kind.as_str(),
            sanitize(name, 80, "unnamed"),
            sanitize(id, 64, "no-id")
        );
        let mut candidate = base.clone();
        let mut n = 2u32;
        while self.used.contains(&candidate) {
            candidate = format!("{base}-{n}");
            n += 1;
        }
        self.used.insert(candidate.clone());
        candidate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_named_by_kind_name_and_id_and_never_collide() {
        let mut namer = ObjectNamer::default();
        let a = namer.base_for(ArchitectKind::Prompts, "Welcome / main", "p1");
        assert_eq!(a, "architect/prompts/Welcome_main--p1");
        let b = namer.base_for(ArchitectKind::Prompts, "Welcome / main", "p1");
        assert_eq!(b, "architect/prompts/Welcome_main--p1-2");
        assert_eq!(
            namer.base_for(ArchitectKind::DataTables, "../x", "t1"),
            "architect/datatables/x--t1"
        );
    }

    #[test]
    fn the_section_counts_each_kind_from_its_rows_in_the_order_asked() {
        let row = |kind: &str, outcome, source| ObjectRecord {
            kind: kind.into(),
            id: "i".into(),
            name: "n".into(),
            division: None,
            outcome,
            documents: Vec::new(),
            listing_sha256: None,
            source,
            carried_from: None,
            error: None,
        };
        let phase = Phase {
            kinds: vec![
                (ArchitectKind::Schedules, true, None, 2),
                (
                    ArchitectKind::Ivrs,
                    false,
                    Some("not checked: missing permission x".into()),
                    1,
                ),
            ],
            incomplete: Vec::new(),
        };
        let section = phase.section(&[
            row("schedules", Outcome::Exported, Some(Source::Carried)),
            row("schedules", Outcome::Failed, None),
            row("schedules", Outcome::Exported, Some(Source::Fetched)),
        ]);
        let s = &section.kinds[0];
        assert_eq!(
            (s.kind.as_str(), s.listed, s.exported, s.failed, s.carried, s.requests),
            ("schedules", 3, 2, 1, 1, 2)
        );
        assert!(!section.kinds[1].checked && section.kinds[1].listed == 0);
    }
}
