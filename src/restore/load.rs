//! Verified loading: restore reads only what `verify` accepts. The run is verified first with the
//! one implementation of the rules (`archive::verify`); a problem of the run as a whole (a path
//! outside the run, an unsafe or extra member, a sidecar manifest that differs from the archive's
//! own, a truncated archive) refuses the whole restore before any document is read, and a problem
//! of one flow's document refuses that flow alone.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use super::{ContentChoice, RestoreError, RestoreOptions};
use crate::archive::verify::{self, Problem};
use crate::archive::{ReadError, RunHandle, each_member};
use crate::manifest::{Content, Document, FlowRecord, Manifest, Outcome};

/// A selected flow with its verified document (and, for `--content both`, its verified draft).
pub(crate) struct Loaded<'a> {
    pub row: &'a FlowRecord,
    pub content: Content,
    pub doc: &'a Document,
    pub body: Bytes,
    pub draft: Option<Bytes>,
}

/// A selected flow whose document does not verify: nothing of it is read.
pub(crate) struct Refused<'a> {
    pub row: &'a FlowRecord,
    pub content: Content,
    pub doc: &'a Document,
    pub why: String,
}

/// The selected flows, loaded or refused.
pub(crate) struct Selected<'a> {
    pub loaded: Vec<Loaded<'a>>,
    pub refused: Vec<Refused<'a>>,
}

struct Chosen<'a> {
    row: &'a FlowRecord,
    content: Content,
    doc: &'a Document,
    draft: Option<&'a Document>,
}

/// The document a row restores for `choice`, and for `Both` the draft beside it.
fn chosen<'a>(row: &'a FlowRecord, choice: ContentChoice) -> Option<Chosen<'a>> {
    let latest = row.document(Content::Latest);
    let (content, doc) = match choice {
        ContentChoice::Latest => (Content::Latest, latest?),
        _ => match row.document(Content::Published) {
            Some(d) => (Content::Published, d),
            None => (Content::Latest, latest?),
        },
    };
    let draft = match choice {
        ContentChoice::Both => latest.filter(|l| l.path != doc.path),
        _ => None,
    };
    Some(Chosen {
        row,
        content,
        doc,
        draft,
    })
}

/// Selects, verifies and reads the chosen flows' documents.
pub(crate) async fn load<'a>(
    run: &RunHandle,
    manifest: &'a Manifest,
    options: &RestoreOptions,
) -> Result<Selected<'a>, RestoreError> {
    let exported = |r: &&FlowRecord| r.outcome == Outcome::Exported;
    let missing: Vec<String> = options
        .selection
        .ids
        .iter()
        .filter(|id| !manifest.flows.iter().filter(exported).any(|r| &r.id == *id))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(RestoreError::NoSuchFlow(missing));
    }
    let picked: Vec<Chosen> = manifest
        .flows
        .iter()
        .filter(exported)
        .filter(|r| options.selection.selects(r))
        .filter_map(|r| chosen(r, options.content))
        .collect();
    if picked.is_empty() {
        return Err(RestoreError::NothingSelected);
    }
    let report = verify::verify(run, false).await?;
    let (run_level, flow_level): (Vec<&Problem>, Vec<&Problem>) =
        report.problems.iter().partition(|p| p.is_run_level());
    if !run_level.is_empty() {
        return Err(RestoreError::Unverified {
            location: run.location.clone(),
            problems: run_level.iter().map(|p| p.to_string()).collect(),
        });
    }
    let mut damaged: HashMap<&str, Vec<String>> = HashMap::new();
    for p in flow_level {
        if let Some(id) = &p.flow_id {
            damaged.entry(id.as_str()).or_default().push(p.to_string());
        }
    }
    let (good, bad): (Vec<Chosen>, Vec<Chosen>) = picked
        .into_iter()
        .partition(|c| !damaged.contains_key(c.row.id.as_str()));
    let mut refused: Vec<Refused> = bad
        .into_iter()
        .map(|c| Refused {
            row: c.row,
            content: c.content,
            doc: c.doc,
            why: damaged.get(c.row.id.as_str()).map(|w| w.join("; ")).unwrap_or_default(),
        })
        .collect();
    let mut bodies = read_bodies(run, &good).await?;
    let mut loaded = Vec::with_capacity(good.len());
    for c in good {
        let body = take_verified(&mut bodies, c.doc);
        let draft = c.draft.map(|d| take_verified(&mut bodies, d));
        match (body, draft.transpose()) {
            (Ok(body), Ok(draft)) => loaded.push(Loaded {
                row: c.row,
                content: c.content,
                doc: c.doc,
                body,
                draft,
            }),
            (Err(why), _) | (_, Err(why)) => refused.push(Refused {
                row: c.row,
                content: c.content,
                doc: c.doc,
                why,
            }),
        }
    }
    Ok(Selected { loaded, refused })
}

/// The documents of `chosen`, read once more (one pass over an archive).
async fn read_bodies(run: &RunHandle, chosen: &[Chosen<'_>]) -> Result<HashMap<String, Bytes>, ReadError> {
    let wanted: HashSet<String> = chosen
        .iter()
        .flat_map(|c| std::iter::once(c.doc).chain(c.draft))
        .map(|d| d.path.clone())
        .collect();
    let mut bodies = HashMap::new();
    if run.has_archive {
        let members = each_member(
            run,
            move |name| wanted.contains(name),
            |name, body| Some((name.to_string(), Bytes::copy_from_slice(body))),
        )
        .await?;
        bodies.extend(members);
    } else {
        for path in wanted {
            // verify refused the run if any path left it; check again before touching the store.
            if verify::path_outside_run(&path).is_some() {
                continue;
            }
            if let Some(b) = run.reader.read(&run.name(&path)).await? {
                bodies.insert(path, b);
            }
        }
    }
    Ok(bodies)
}

/// The body of `doc`, checked once more against its size and SHA-256 (it was read again).
fn take_verified(bodies: &mut HashMap<String, Bytes>, doc: &Document) -> Result<Bytes, String> {
    let body = bodies
        .get(&doc.path)
        .cloned()
        .ok_or_else(|| format!("{}: vanished after it was verified", doc.path))?;
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body));
    if sha != doc.sha256 || body.len() as u64 != doc.bytes {
        return Err(format!(
            "{}: changed after it was verified (SHA-256 {sha}, expected {})",
            doc.path, doc.sha256
        ));
    }
    Ok(body)
}
