//! `diff`: what changed between two runs, from their manifests: flows added, removed, renamed
//! (same id, new name), moved (type or division), changed (a configuration's hash differs), and
//! how many are unchanged; and, for one flow, a structural diff of its configuration.
//!
//! Exact: every document either run stored (published, latest, YAML; never-published flows'
//! latest too) is compared by its configuration's SHA-256. A v1 row has no such hash: it is
//! computed from the stored document ([`computed_hashes`]), never guessed from the document's
//! own hash, which changes with a lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{ReadError, RunHandle, each_member};

use serde::Serialize;
use serde_json::Value;

use crate::architect::ArchitectKind;
use crate::document::Document;
use crate::manifest::{Content, FlowRecord, Manifest, ObjectRecord, Outcome};

/// A flow on one side.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FlowRef {
    /// Flow id.
    pub id: String,
    /// Flow name.
    pub name: String,
    /// Flow type.
    #[serde(rename = "type")]
    pub flow_type: String,
}

/// A flow present in both runs that differs.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Changed {
    /// The flow as in run B.
    #[serde(flatten)]
    pub flow: FlowRef,
    /// Its name in run A, when it was renamed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
    /// Its type in run A, when it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub type_from: Option<String>,
    /// Its division in run A (name or id), when it moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub division_from: Option<String>,
    /// Its division in run B, when it moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub division_to: Option<String>,
    /// The contents whose configuration differs (`latest`, `published`, `yaml`).
    pub contents_changed: Vec<Content>,
    /// Saved and published version ids in run A.
    pub versions_a: Versions,
    /// Saved and published version ids in run B.
    pub versions_b: Versions,
}

/// A flow's version ids as listed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Versions {
    /// `savedVersion.id`.
    pub saved: Option<String>,
    /// `publishedVersion.id`.
    pub published: Option<String>,
}

/// What changed from run A to run B.
#[derive(Debug, Clone, Serialize, Default)]
pub struct DiffReport {
    /// In B, not in A.
    pub added: Vec<FlowRef>,
    /// In A, not in B.
    pub removed: Vec<FlowRef>,
    /// Same id, another name.
    pub renamed: Vec<Changed>,
    /// Same id, another type or division.
    pub moved: Vec<Changed>,
    /// Same id, name and place; a configuration differs.
    pub changed: Vec<Changed>,
    /// Flows identical in both.
    pub unchanged: u64,
    /// Flows that could not be compared (not exported in one run), with why.
    pub not_compared: Vec<String>,
    /// When the runs are of different orgs: which (said first; compared only when asked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_orgs: Option<String>,
    /// The Architect objects, when either run holds any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects: Option<ObjectsDiff>,
}

impl DiffReport {
    /// True when anything differs.
    pub fn has_differences(&self) -> bool {
        !(self.added.is_empty()
            && self.removed.is_empty()
            && self.renamed.is_empty()
            && self.moved.is_empty()
            && self.changed.is_empty()
            && self.objects.as_ref().is_none_or(|o| !o.has_differences()))
    }
}

fn present(m: &Manifest) -> BTreeMap<&str, &FlowRecord> {
    m.flows
        .iter()
        .filter(|r| !r.id.is_empty() && r.outcome != Outcome::NotFound)
        .map(|r| (r.id.as_str(), r))
        .collect()
}

fn flow_ref(r: &FlowRecord) -> FlowRef {
    FlowRef {
        id: r.id.clone(),
        name: r.name.clone(),
        flow_type: r.flow_type.clone(),
    }
}

fn division(r: &FlowRecord) -> Option<String> {
    r.division
        .as_ref()
        .and_then(|d| d.id.clone().or_else(|| d.name.clone()))
}

/// Whether run `m` asked for `c` (so a flow without that document has none).
fn asked(m: &Manifest, c: Content) -> bool {
    match c {
        Content::Latest => m.content != "published",
        Content::Published => m.content != "latest",
        Content::Yaml => m.yaml,
        Content::Object | Content::Rows | Content::Audio => !m.objects.is_empty(),
    }
}

/// Configuration hashes computed from stored documents whose rows have none (v1), by path.
pub type ComputedHashes = HashMap<String, String>;

/// What identifies a content of a flow: its configuration's hash (the manifest's, or computed
/// from the document), the document's own for YAML; `Err` when it cannot be known.
fn content_hash<'a>(r: &'a FlowRecord, c: Content, computed: &'a ComputedHashes) -> Result<Option<&'a str>, ()> {
    let Some(d) = r.document(c) else {
        return Ok(None);
    };
    if c == Content::Yaml {
        return Ok(Some(d.sha256.as_str()));
    }
    match (&d.configuration_sha256, computed.get(&d.path)) {
        (Some(h), _) | (None, Some(h)) => Ok(Some(h.as_str())),
        (None, None) => Err(()),
    }
}

/// The contents of a flow that differ between its rows: every content either run holds for it,
/// where the other run holds it too or asked for it (a flow published since shows as a
/// published change; a content one run never asked for is not a change).
fn changed_contents(
    (ma, ra, ha): (&Manifest, &FlowRecord, &ComputedHashes),
    (mb, rb, hb): (&Manifest, &FlowRecord, &ComputedHashes),
) -> Result<Vec<Content>, Content> {
    let mut out = Vec::new();
    for c in [Content::Latest, Content::Published, Content::Yaml] {
        let covered = |m: &Manifest, r: &FlowRecord| asked(m, c) || r.document(c).is_some();
        if !(covered(ma, ra) && covered(mb, rb)) || (ra.document(c).is_none() && rb.document(c).is_none()) {
            continue;
        }
        let (Ok(x), Ok(y)) = (content_hash(ra, c, ha), content_hash(rb, c, hb)) else {
            return Err(c);
        };
        if x != y {
            out.push(c);
        }
    }
    Ok(out)
}

/// When `a` and `b` were read from different orgs: both, described.
pub fn other_orgs(a: &Manifest, b: &Manifest) -> Option<String> {
    match (&a.organization, &b.organization) {
        (Some(x), Some(y)) if x.id != y.id => Some(format!(
            "run A is of org {}, run B of org {}",
            x.describe(),
            y.describe()
        )),
        _ => None,
    }
}

/// Compares run A (older) with run B (newer) from their manifests alone.
pub fn diff(a: &Manifest, b: &Manifest) -> DiffReport {
    diff_with(a, b, &ComputedHashes::new(), &ComputedHashes::new())
}

/// Compares run A with run B, with the configuration hashes computed for their v1 rows.
pub fn diff_with(a: &Manifest, b: &Manifest, ha: &ComputedHashes, hb: &ComputedHashes) -> DiffReport {
    let (pa, pb) = (present(a), present(b));
    let mut report = DiffReport {
        other_orgs: other_orgs(a, b),
        ..DiffReport::default()
    };
    for (id, rb) in &pb {
        let Some(ra) = pa.get(id) else {
            report.added.push(flow_ref(rb));
            continue;
        };
        if ra.outcome != Outcome::Exported || rb.outcome != Outcome::Exported {
            report.not_compared.push(format!(
                "flow {id} ({:?}): {:?} in A, {:?} in B",
                rb.name, ra.outcome, rb.outcome
            ));
            continue;
        }
        let contents_changed = match changed_contents((a, ra, ha), (b, rb, hb)) {
            Ok(c) => c,
            Err(c) => {
                report.not_compared.push(format!(
                    "flow {id} ({:?}): its {} document could not be read to hash its configuration",
                    rb.name,
                    c.as_str()
                ));
                continue;
            }
        };
        classify(&mut report, ra, rb, contents_changed);
    }
    report.removed = pa
        .iter()
        .filter(|(id, _)| !pb.contains_key(*id))
        .map(|(_, r)| flow_ref(r))
        .collect();
    report.objects = diff_objects(a, b);
    report
}

/// Files a flow present in both runs as unchanged, renamed, moved or changed.
fn classify(report: &mut DiffReport, ra: &FlowRecord, rb: &FlowRecord, contents_changed: Vec<Content>) {
    let moved = ra.flow_type != rb.flow_type || division(ra) != division(rb);
    let renamed = ra.name != rb.name;
    if !moved && !renamed && contents_changed.is_empty() {
        report.unchanged += 1;
        return;
    }
    let entry = Changed {
        flow: flow_ref(rb),
        renamed_from: renamed.then(|| ra.name.clone()),
        type_from: (ra.flow_type != rb.flow_type).then(|| ra.flow_type.clone()),
        division_from: (division(ra) != division(rb)).then(|| division(ra)).flatten(),
        division_to: (division(ra) != division(rb)).then(|| division(rb)).flatten(),
        contents_changed,
        versions_a: Versions {
            saved: ra.saved_version.clone(),
            published: ra.published_version.clone(),
        },
        versions_b: Versions {
            saved: rb.saved_version.clone(),
            published: rb.published_version.clone(),
        },
    };
    // Each flow is listed once: a rename (whose configuration carries the new name) is a
    // rename, a move a move; `contents_changed` says whether the configuration changed too.
    if renamed {
        report.renamed.push(entry);
    } else if moved {
        report.moved.push(entry);
    } else {
        report.changed.push(entry);
    }
}

/// The SHA-256 of a stored `{"flow", "configuration"}` document's configuration, as embedded
/// (byte for byte what export hashes), when `body` is the document the manifest describes.
pub fn configuration_hash(body: &[u8], document_sha256: &str) -> Option<String> {
    if hex::encode(Sha256::digest(body)) != document_sha256 {
        return None;
    }
    Document::parse(body).ok().map(|doc| doc.configuration_sha256())
}

/// The configuration hashes of `m`'s documents that have none in the manifest (v1 rows), read
/// from the run (one pass over an archive); a document that is missing or does not match its
/// manifest gets none, so its flow is reported as not compared rather than guessed.
pub async fn computed_hashes(run: &RunHandle, m: &Manifest) -> Result<ComputedHashes, ReadError> {
    let wanted: HashMap<String, String> = m
        .documents()
        .filter(|(_, d)| d.configuration_sha256.is_none() && !d.holds(Content::Yaml))
        .filter(|(_, d)| super::verify::unsafe_path(&d.path).is_none())
        .map(|(_, d)| (d.path.clone(), d.sha256.clone()))
        .collect();
    if wanted.is_empty() {
        return Ok(ComputedHashes::new());
    }
    if !run.has_archive {
        let mut out = ComputedHashes::new();
        for (path, sha) in &wanted {
            if let Some(body) = run.reader.read(&run.name(path)).await?
                && let Some(h) = configuration_hash(&body, sha)
            {
                out.insert(path.clone(), h);
            }
        }
        return Ok(out);
    }
    let wanted = Arc::new(wanted);
    let names = Arc::clone(&wanted);
    let found = each_member(
        run,
        move |name| names.contains_key(name),
        move |name, body| {
            let sha = wanted.get(name)?;
            configuration_hash(body, sha).map(|h| (name.to_string(), h))
        },
    )
    .await?;
    Ok(found.into_iter().collect())
}

/// One difference between two JSON documents, at a JSON pointer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PathChange {
    /// Only in B.
    Added { path: String, value: Value },
    /// Only in A.
    Removed { path: String, value: Value },
    /// In both, different.
    Changed { path: String, from: Value, to: Value },
}

impl std::fmt::Display for PathChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = |v: &Value| {
            let s = v.to_string();
            if s.chars().count() > 120 {
                format!("{}…", s.chars().take(120).collect::<String>())
            } else {
                s
            }
        };
        match self {
            PathChange::Added { path, value } => write!(f, "+ {path}: {}", short(value)),
            PathChange::Removed { path, value } => write!(f, "- {path}: {}", short(value)),
            PathChange::Changed { path, from, to } => write!(f, "~ {path}: {} → {}", short(from), short(to)),
        }
    }
}

/// The structural difference of two JSON values: paths added, removed and changed (objects by
/// key, arrays by index), deepest first where both sides have structure.
pub fn json_diff(a: &Value, b: &Value) -> Vec<PathChange> {
    let mut out = Vec::new();
    walk("", a, b, &mut out);
    out
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<PathChange>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = format!("{path}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => walk(&p, va, vb, out),
                    (Some(va), None) => out.push(PathChange::Removed {
                        path: p,
                        value: va.clone(),
                    }),
                    (None, Some(vb)) => out.push(PathChange::Added {
                        path: p,
                        value: vb.clone(),
                    }),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                let p = format!("{path}/{i}");
                match (x.get(i), y.get(i)) {
                    (Some(va), Some(vb)) => walk(&p, va, vb, out),
                    (Some(va), None) => out.push(PathChange::Removed {
                        path: p,
                        value: va.clone(),
                    }),
                    (None, Some(vb)) => out.push(PathChange::Added {
                        path: p,
                        value: vb.clone(),
                    }),
                    (None, None) => {}
                }
            }
        }
        _ if a != b => out.push(PathChange::Changed {
            path: if path.is_empty() { "/".into() } else { path.to_string() },
            from: a.clone(),
            to: b.clone(),
        }),
        _ => {}
    }
}

/// An Architect object on one side.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ObjectRef {
    /// Its kind (`prompts`, `datatables`, `schedules`…).
    pub kind: String,
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// An Architect object in both runs that differs, and how.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ObjectChange {
    /// The object as in run B.
    #[serde(flatten)]
    pub object: ObjectRef,
    /// Its name in run A, when it was renamed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
    /// Its own fields differ (as listed, presigned URLs aside): an edited schedule, a new schema.
    pub object_changed: bool,
    /// A data table whose rows differ.
    pub rows_changed: bool,
    /// Which rows, by key (when both rows documents could be read: see [`row_details`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<RowChanges>,
    /// Prompt languages whose audio differs (re-recorded).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audio_changed: Vec<String>,
    /// Prompt languages with audio only in run B.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audio_added: Vec<String>,
    /// Prompt languages with audio only in run A.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audio_removed: Vec<String>,
}

/// What changed among the Architect objects, compared by kind and id, their documents by hash.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ObjectsDiff {
    /// In B, not in A.
    pub added: Vec<ObjectRef>,
    /// In A, not in B.
    pub removed: Vec<ObjectRef>,
    /// In both, different (renamed, edited, rows or audio changed).
    pub changed: Vec<ObjectChange>,
    /// Objects identical in both.
    pub unchanged: u64,
    /// Objects that could not be compared (not exported in one run), with why.
    pub not_compared: Vec<String>,
}

impl ObjectsDiff {
    /// True when anything differs.
    pub fn has_differences(&self) -> bool {
        !(self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty())
    }
}

fn object_ref(r: &ObjectRecord) -> ObjectRef {
    ObjectRef {
        kind: r.kind.clone(),
        id: r.id.clone(),
        name: r.name.clone(),
    }
}

/// A run's objects present in the org when it ran, by kind and id.
fn present_objects(m: &Manifest) -> BTreeMap<(&str, &str), &ObjectRecord> {
    m.objects
        .iter()
        .filter(|r| !r.id.is_empty() && r.outcome != Outcome::NotFound)
        .map(|r| ((r.kind.as_str(), r.id.as_str()), r))
        .collect()
}

/// Whether run `m` read objects of `kind`: its `architect` section says so (checked), or, without
/// one, it holds objects of that kind.
fn covered(m: &Manifest, kind: &str) -> bool {
    match &m.architect {
        Some(section) => section.kinds.iter().any(|k| k.kind == kind && k.checked),
        None => m.objects.iter().any(|o| o.kind == kind),
    }
}

/// Whether the object itself differs: by its listing fingerprint (presigned URLs left out), or,
/// when a row has none, by its object document's hash.
fn object_differs(a: &ObjectRecord, b: &ObjectRecord) -> bool {
    match (&a.listing_sha256, &b.listing_sha256) {
        (Some(x), Some(y)) => x != y,
        _ => a.document(Content::Object).map(|d| &d.sha256) != b.document(Content::Object).map(|d| &d.sha256),
    }
}

/// The audio of a prompt by language: its hash.
fn audio(r: &ObjectRecord) -> BTreeMap<&str, &str> {
    r.documents
        .iter()
        .filter(|d| d.holds(Content::Audio))
        .filter_map(|d| Some((d.language.as_deref()?, d.sha256.as_str())))
        .collect()
}

/// How object `a` became `b`; `None` when nothing differs.
fn object_change(a: &ObjectRecord, b: &ObjectRecord) -> Option<ObjectChange> {
    let rows_hash = |r: &ObjectRecord| r.document(Content::Rows).map(|d| d.sha256.clone());
    let (audio_a, audio_b) = (audio(a), audio(b));
    let languages = |f: &dyn Fn(&str) -> bool, of: &BTreeMap<&str, &str>| {
        of.keys().filter(|l| f(l)).map(|l| l.to_string()).collect::<Vec<_>>()
    };
    let change = ObjectChange {
        object: object_ref(b),
        renamed_from: (a.name != b.name).then(|| a.name.clone()),
        object_changed: object_differs(a, b),
        rows_changed: rows_hash(a) != rows_hash(b),
        rows: None,
        audio_changed: languages(&|l| audio_b.get(l).is_some_and(|h| audio_a.get(l) != Some(h)), &audio_a),
        audio_added: languages(&|l| !audio_a.contains_key(l), &audio_b),
        audio_removed: languages(&|l| !audio_b.contains_key(l), &audio_a),
    };
    let same = change.renamed_from.is_none()
        && !change.object_changed
        && !change.rows_changed
        && change.audio_changed.is_empty()
        && change.audio_added.is_empty()
        && change.audio_removed.is_empty();
    (!same).then_some(change)
}

/// Compares the Architect objects of run A with run B from their manifests (`None` when neither
/// run holds any): by kind and id; each object's own fields by listing fingerprint, a table's
/// rows and a prompt's audio (per language) by their documents' SHA-256.
pub fn diff_objects(a: &Manifest, b: &Manifest) -> Option<ObjectsDiff> {
    if a.objects.is_empty() && b.objects.is_empty() && a.architect.is_none() && b.architect.is_none() {
        return None;
    }
    let (mut pa, mut pb) = (present_objects(a), present_objects(b));
    let mut out = ObjectsDiff::default();
    // A kind one run did not read (not asked for, or the role could not) is not compared: its
    // objects are neither added nor removed.
    for kind in ArchitectKind::ALL.map(ArchitectKind::as_str) {
        let (ca, cb) = (covered(a, kind), covered(b, kind));
        if ca == cb {
            continue;
        }
        let (side, other) = if ca { ("A", "B") } else { ("B", "A") };
        out.not_compared
            .push(format!("{kind}: read in run {side} only, not in run {other}"));
        pa.retain(|(k, _), _| *k != kind);
        pb.retain(|(k, _), _| *k != kind);
    }
    for (key, rb) in &pb {
        let Some(ra) = pa.get(key) else {
            out.added.push(object_ref(rb));
            continue;
        };
        if ra.outcome != Outcome::Exported || rb.outcome != Outcome::Exported {
            out.not_compared.push(format!(
                "{} {} ({:?}): {:?} in A, {:?} in B",
                rb.kind, rb.id, rb.name, ra.outcome, rb.outcome
            ));
            continue;
        }
        match object_change(ra, rb) {
            Some(change) => out.changed.push(change),
            None => out.unchanged += 1,
        }
    }
    out.removed = pa
        .iter()
        .filter(|(key, _)| !pb.contains_key(*key))
        .map(|(_, r)| object_ref(r))
        .collect();
    Some(out)
}

/// Names the rows that differ in each data table `report` says changed its rows: both rows
/// documents are read (one pass over each archive) and checked against their manifest's
/// SHA-256 first; a table whose documents cannot be read keeps only `rows_changed`.
pub async fn row_details(
    report: &mut DiffReport,
    (run_a, a): (&RunHandle, &Manifest),
    (run_b, b): (&RunHandle, &Manifest),
) -> Result<(), ReadError> {
    let Some(objects) = report.objects.as_mut() else {
        return Ok(());
    };
    let tables: Vec<usize> = (0..objects.changed.len())
        .filter(|i| objects.changed[*i].rows_changed)
        .collect();
    if tables.is_empty() {
        return Ok(());
    }
    let rows_doc = |m: &Manifest, id: &str| {
        m.objects
            .iter()
            .find(|r| r.kind == ArchitectKind::DataTables.as_str() && r.id == id)
            .and_then(|r| r.document(Content::Rows))
            .map(|d| (d.path.clone(), d.sha256.clone()))
    };
    let wanted = |m: &Manifest| -> HashMap<String, String> {
        tables
            .iter()
            .filter_map(|i| rows_doc(m, &objects.changed[*i].object.id))
            .collect()
    };
    let (wanted_a, wanted_b) = (wanted(a), wanted(b));
    let (read_a, read_b) = (
        verified_members(run_a, wanted_a).await?,
        verified_members(run_b, wanted_b).await?,
    );
    for i in tables {
        let change = &mut objects.changed[i];
        let side = |m: &Manifest, read: &HashMap<String, Vec<u8>>| {
            rows_doc(m, &change.object.id).and_then(|(path, _)| read.get(&path).cloned())
        };
        if let (Some(x), Some(y)) = (side(a, &read_a), side(b, &read_b)) {
            change.rows = row_changes(&x, &y).ok();
        }
    }
    Ok(())
}

/// The members of `run` named in `wanted` (path → SHA-256) whose bytes have that hash.
async fn verified_members(
    run: &RunHandle,
    wanted: HashMap<String, String>,
) -> Result<HashMap<String, Vec<u8>>, ReadError> {
    let wanted: HashMap<String, String> = wanted
        .into_iter()
        .filter(|(path, _)| super::verify::unsafe_path(path).is_none())
        .collect();
    let matches = |body: &[u8], sha: &str| hex::encode(Sha256::digest(body)) == sha;
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    if !run.has_archive {
        let mut out = HashMap::new();
        for (path, sha) in &wanted {
            if let Some(body) = run.reader.read(&run.name(path)).await?
                && matches(&body, sha)
            {
                out.insert(path.clone(), body.to_vec());
            }
        }
        return Ok(out);
    }
    let wanted = Arc::new(wanted);
    let names = Arc::clone(&wanted);
    let found = each_member(
        run,
        move |name| names.contains_key(name),
        move |name, body| {
            let sha = wanted.get(name)?;
            matches(body, sha).then(|| (name.to_string(), body.to_vec()))
        },
    )
    .await?;
    Ok(found.into_iter().collect())
}

/// A data table's rows that differ between two runs, by key.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RowChanges {
    /// Keys only in run B.
    pub added: Vec<String>,
    /// Keys only in run A.
    pub removed: Vec<String>,
    /// Keys in both whose row differs.
    pub changed: Vec<String>,
}

impl RowChanges {
    /// True when no row differs.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The rows of a stored rows document (`{"kind", "table", "rows": [...]}`) by their `key`.
fn rows_by_key(body: &[u8]) -> Result<BTreeMap<String, Value>, String> {
    #[derive(serde::Deserialize)]
    struct RowsDocument {
        rows: Vec<Value>,
    }
    let doc: RowsDocument = serde_json::from_slice(body).map_err(|e| format!("not a data table rows document: {e}"))?;
    let mut out = BTreeMap::new();
    for row in doc.rows {
        let key = match row.get("key") {
            Some(Value::String(k)) => k.clone(),
            Some(other) => other.to_string(),
            None => return Err("a row has no `key`".into()),
        };
        out.insert(key, row);
    }
    Ok(out)
}

/// Which rows were added, removed or changed from rows document `a` to `b`, by key.
pub fn row_changes(a: &[u8], b: &[u8]) -> Result<RowChanges, String> {
    let (ra, rb) = (rows_by_key(a)?, rows_by_key(b)?);
    let mut out = RowChanges::default();
    for (key, row) in &rb {
        match ra.get(key) {
            None => out.added.push(key.clone()),
            Some(before) if before != row => out.changed.push(key.clone()),
            Some(_) => {}
        }
    }
    out.removed = ra.keys().filter(|k| !rb.contains_key(*k)).cloned().collect();
    Ok(out)
}

/// Rows of a manifest by id (for `--flow`).
pub fn rows_by_id(m: &Manifest) -> HashMap<&str, &FlowRecord> {
    m.flows.iter().map(|r| (r.id.as_str(), r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A manifest of `objects` (JSON rows) and no flows.
    fn with_objects(objects: Value) -> Manifest {
        let m = json!({"schema":"flowvault.manifest/v2","run_id":"r","tool":{"name":"flowvault","version":"0"},
            "started_at":"a","finished_at":"b","region":null,"api_url":"https://api.x/","format":"objects",
            "destination":"/b","archive":null,"complete":true,"incomplete_reason":null,
            "listing":{"api_total":0,"listed":0,"pages":1,"type_filter":[],"discrepancy":null},
            "totals":{"listed":0,"exported":0,"not_found":0,"failed":0,"skipped":0},
            "architect":{"kinds":[]},"objects":objects,"flows":[]});
        Manifest::from_slice(m.to_string().as_bytes()).unwrap()
    }

    fn doc(contents: &str, sha: &str, language: Option<&str>) -> Value {
        json!({"contents":[contents],"path":format!("architect/{sha}"),"bytes":1,"sha256":sha,"language":language})
    }

    fn object(kind: &str, id: &str, listing: &str, docs: Vec<Value>) -> Value {
        json!({"kind":kind,"id":id,"name":format!("{kind} {id}"),"outcome":"exported","listing_sha256":listing,"documents":docs})
    }

    fn run(schedule: &str, rows: &str, audio: &str, object_doc: &str) -> Manifest {
        with_objects(json!([
            object(
                "schedules",
                "s1",
                schedule,
                vec![doc("object", &format!("s-{schedule}"), None)]
            ),
            object(
                "datatables",
                "t1",
                "t",
                vec![doc("object", "t", None), doc("rows", rows, None)]
            ),
            object(
                "prompts",
                "p1",
                "p",
                vec![
                    doc("object", object_doc, None),
                    doc("audio", audio, Some("en-us")),
                    doc("audio", "es", Some("es-us"))
                ]
            ),
            object("outcomes", "o1", "o", vec![doc("object", "o", None)]),
        ]))
    }

    #[test]
    fn an_edited_schedule_an_added_row_and_a_re_recorded_prompt_are_each_named() {
        let a = run("l1", "rows1", "wav1", "p");
        let b = run("l2", "rows2", "wav2", "p");
        let d = diff_objects(&a, &b).unwrap();
        let named: Vec<_> = d
            .changed
            .iter()
            .map(|c| {
                (
                    c.object.kind.as_str(),
                    c.object_changed,
                    c.rows_changed,
                    c.audio_changed.clone(),
                )
            })
            .collect();
        assert_eq!(
            named,
            [
                ("datatables", false, true, vec![]),
                ("prompts", false, false, vec!["en-us".to_string()]),
                ("schedules", true, false, vec![]),
            ]
        );
        assert_eq!(d.unchanged, 1, "the outcome");
        let report = diff(&a, &b);
        assert!(report.has_differences(), "object changes are differences");
    }

    #[test]
    fn an_object_whose_listing_is_the_same_is_unchanged_even_when_its_presigned_urls_differ() {
        let d = diff_objects(&run("l", "r", "w", "doc-1"), &run("l", "r", "w", "doc-2")).unwrap();
        assert!(!d.has_differences(), "{:?}", d.changed);
        assert_eq!(d.unchanged, 4);
        assert!(!diff(&run("l", "r", "w", "doc-1"), &run("l", "r", "w", "doc-2")).has_differences());
    }

    #[test]
    fn objects_are_matched_by_kind_and_id() {
        let a = with_objects(json!([
            object("schedules", "x", "l", vec![]),
            object("ivrs", "gone", "l", vec![])
        ]));
        let b = with_objects(json!([
            object("schedulegroups", "x", "l", vec![]),
            object("ivrs", "new", "l", vec![])
        ]));
        let d = diff_objects(&a, &b).unwrap();
        let ids = |v: &[ObjectRef]| v.iter().map(|o| format!("{} {}", o.kind, o.id)).collect::<Vec<_>>();
        assert_eq!(ids(&d.added), ["ivrs new", "schedulegroups x"]);
        assert_eq!(ids(&d.removed), ["ivrs gone", "schedules x"]);
    }

    #[test]
    fn a_kind_one_run_did_not_read_is_not_compared_rather_than_added_or_removed() {
        let mut a = with_objects(json!([
            object("ivrs", "i1", "l", vec![]),
            object("schedules", "s1", "l", vec![])
        ]));
        let mut b = with_objects(json!([object("schedules", "s1", "l", vec![])]));
        let report = |kind: &str, checked: bool| crate::manifest::KindReport {
            kind: kind.into(),
            checked,
            ..Default::default()
        };
        a.architect.as_mut().unwrap().kinds = vec![report("schedules", true), report("ivrs", true)];
        b.architect.as_mut().unwrap().kinds = vec![report("schedules", true), report("ivrs", false)];
        let d = diff_objects(&a, &b).unwrap();
        assert!(d.removed.is_empty(), "{:?}", d.removed);
        assert_eq!(d.not_compared, ["ivrs: read in run A only, not in run B"]);
        assert_eq!(d.unchanged, 1);
    }

    #[test]
    fn runs_without_objects_report_none() {
        let mut m = with_objects(json!([]));
        m.architect = None;
        assert!(diff_objects(&m, &m).is_none());
        assert!(diff(&m, &m).objects.is_none());
    }

    #[test]
    fn rows_are_compared_by_key_not_by_position() {
        let a = br#"{"kind":"datatables","table":{"id":"t","name":"Hours"},"rows":[{"key":"a","open":1},{"key":"b","open":2},{"key":"c","open":3}]}"#;
        let b = br#"{"kind":"datatables","table":{"id":"t","name":"Hours"},"rows":[{"key":"b","open":2},{"key":"a","open":9},{"key":"d","open":4}]}"#;
        let r = row_changes(a, b).unwrap();
        assert_eq!(r.added, ["d"]);
        assert_eq!(r.removed, ["c"]);
        assert_eq!(r.changed, ["a"]);
        assert!(row_changes(a, a).unwrap().is_empty());
        assert!(row_changes(a, br#"{"rows":[{"open":1}]}"#).is_err());
    }

    #[test]
    fn a_structural_diff_names_paths_not_lines() {
        let a = json!({"name": "x", "tasks": [{"id": 1}, {"id": 2}], "gone": true});
        let b = json!({"name": "y", "tasks": [{"id": 1}, {"id": 3}, {"id": 4}], "new": {"k": 1}});
        let d = json_diff(&a, &b);
        let lines: Vec<String> = d.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            lines,
            vec![
                "- /gone: true",
                "~ /name: \"x\" → \"y\"",
                "+ /new: {\"k\":1}",
                "~ /tasks/1/id: 2 → 3",
                "+ /tasks/2: {\"id\":4}",
            ]
        );
        assert!(json_diff(&a, &a).is_empty());
    }
}
