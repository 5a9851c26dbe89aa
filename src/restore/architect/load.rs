//! The archived objects a restore reads, verified: the run is verified with `verify`'s rules
//! first; a problem of an object's document refuses that object,
//! another problem of the run refuses the restore. Each document is read once more and checked
//! against the manifest's size and SHA-256 before it is used.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use serde_json::Value;

use super::ArchitectKind;
use crate::archive::verify::{self, path_outside_run};
use crate::archive::{RunHandle, each_member};
use crate::manifest::{Content, ObjectRecord, Outcome};
use crate::restore::RestoreError;

/// An archived object with its verified documents read.
#[derive(Debug, Clone)]
pub struct ArchivedObject {
    /// Its kind.
    pub kind: ArchitectKind,
    /// Its id in the archive.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The object as served (`object` of its document).
    pub object: Value,
    /// Its rows (data tables).
    pub rows: Option<Vec<Value>>,
    /// Its audio by language (prompts).
    pub audio: BTreeMap<String, Bytes>,
}

/// An object the restore cannot read: why.
#[derive(Debug, Clone)]
pub struct RefusedObject {
    /// Its kind.
    pub kind: ArchitectKind,
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Why.
    pub why: String,
}

/// The exported objects of `kinds` the manifest lists, read and verified.
pub async fn load_objects(
    run: &RunHandle,
    rows: &[ObjectRecord],
    kinds: &std::collections::BTreeSet<ArchitectKind>,
) -> Result<(Vec<ArchivedObject>, Vec<RefusedObject>), RestoreError> {
    let picked: Vec<(ArchitectKind, &ObjectRecord)> = rows
        .iter()
        .filter(|r| r.outcome == Outcome::Exported)
        .filter_map(|r| Some((ArchitectKind::from_name(&r.kind)?, r)))
        .filter(|(k, _)| kinds.contains(k))
        .collect();
    if picked.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let report = verify::verify(run, false).await?;
    let mut damaged: HashMap<(String, String), Vec<String>> = HashMap::new();
    let mut run_level = Vec::new();
    for p in &report.problems {
        match (&p.object_kind, &p.object_id) {
            (Some(kind), Some(id)) => damaged
                .entry((kind.clone(), id.clone()))
                .or_default()
                .push(p.to_string()),
            _ if p.is_run_level() => run_level.push(p.to_string()),
            _ => {}
        }
    }
    if !run_level.is_empty() {
        return Err(RestoreError::Unverified {
            location: run.location.clone(),
            problems: run_level,
        });
    }
    let wanted: HashSet<String> = picked
        .iter()
        .flat_map(|(_, r)| r.documents.iter().map(|d| d.path.clone()))
        .collect();
    let mut bodies = read_bodies(run, wanted).await?;
    let mut loaded = Vec::new();
    let mut refused = Vec::new();
    for (kind, row) in picked {
        let problems = damaged
            .get(&(row.kind.clone(), row.id.clone()))
            .cloned()
            .unwrap_or_default();
        let read = if problems.is_empty() {
            assemble(kind, row, &mut bodies)
        } else {
            Err(problems.join("; "))
        };
        match read {
            Ok(o) => loaded.push(o),
            Err(why) => refused.push(RefusedObject {
                kind,
                id: row.id.clone(),
                name: row.name.clone(),
                why,
            }),
        }
    }
    Ok((loaded, refused))
}

/// An object from its documents, each checked against its size and SHA-256.
fn assemble(
    kind: ArchitectKind,
    row: &ObjectRecord,
    bodies: &mut HashMap<String, Bytes>,
) -> Result<ArchivedObject, String> {
    let mut object = None;
    let mut rows = None;
    let mut audio = BTreeMap::new();
    for d in &row.documents {
        let body = bodies
            .remove(&d.path)
            .ok_or_else(|| format!("{}: vanished after it was verified", d.path))?;
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body));
        if sha != d.sha256 || body.len() as u64 != d.bytes {
            return Err(format!(
                "{}: changed after it was verified (SHA-256 {sha}, expected {})",
                d.path, d.sha256
            ));
        }
        if d.holds(Content::Audio) {
            let language = d.language.clone().unwrap_or_default();
            audio.insert(language, body);
        } else {
            let doc: Value = serde_json::from_slice(&body).map_err(|e| format!("{}: not JSON ({e})", d.path))?;
            if d.holds(Content::Rows) {
                rows = Some(super::rows_of(&doc).ok_or_else(|| format!("{}: holds no \"rows\"", d.path))?);
            } else {
                object = Some(
                    doc.get("object")
                        .cloned()
                        .ok_or_else(|| format!("{}: holds no \"object\"", d.path))?,
                );
            }
        }
    }
    Ok(ArchivedObject {
        kind,
        id: row.id.clone(),
        name: row.name.clone(),
        object: object.ok_or_else(|| "the archive holds no document of the object".to_string())?,
        rows,
        audio,
    })
}

/// The documents at `wanted`, read once more (one pass over an archive).
async fn read_bodies(
    run: &RunHandle,
    wanted: HashSet<String>,
) -> Result<HashMap<String, Bytes>, crate::archive::ReadError> {
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
            if path_outside_run(&path).is_some() {
                continue;
            }
            if let Some(b) = run.reader.read(&run.name(&path)).await? {
                bodies.insert(path, b);
            }
        }
    }
    Ok(bodies)
}
