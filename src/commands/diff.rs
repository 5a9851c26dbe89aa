//! `flowvault diff RUN_A RUN_B`: what changed between two runs (any location kinds), or with
//! `--flow ID` a structural diff of one flow's configuration (both documents verified first).
//! Exit 0, or 3 with `--exit-code` when the runs differ; 1 when a run cannot be read or a
//! document does not match its manifest; 2 usage (also: runs of two orgs without
//! `--across-orgs`).

use std::io::Write;

use sha2::{Digest, Sha256};

use super::{CommandError, Outcome, exit};
use crate::archive::diff::{self, DiffReport, json_diff};
use crate::archive::{self, ReadError, RunHandle, verify};
use crate::cli::{DiffArgs, DiffContent};
use crate::document::Document;
use crate::manifest::{Content, Manifest};
use crate::settings::{process_env, read_options};

/// Compares the runs; the exit code says whether they differ (with `--exit-code`).
pub async fn run(args: &DiffArgs) -> Outcome {
    let options = read_options(&args.store.flags, &process_env).map_err(CommandError::usage)?;
    // Both locations are parsed before either store is touched: bad input is usage, first.
    for spec in [&args.run_a, &args.run_b] {
        archive::RunSpec::parse(spec, None).map_err(|e| CommandError::read(&e))?;
    }
    let mut sides = Vec::new();
    for spec in [&args.run_a, &args.run_b] {
        let run = archive::locate(spec, None, &options)
            .await
            .map_err(|e| CommandError::read(&e))?;
        let manifest = run.manifest().await.map_err(|e| CommandError::read(&e))?;
        sides.push((run, manifest));
    }
    let (Some((run_b, b)), Some((run_a, a))) = (sides.pop(), sides.pop()) else {
        return Err(CommandError::fatal("two runs are needed"));
    };
    if let Some(orgs) = diff::other_orgs(&a, &b) {
        if !args.across_orgs {
            return Err(CommandError::usage(format!(
                "the runs are of different orgs ({orgs}); nothing was compared: add --across-orgs to compare them anyway"
            )));
        }
        if !args.json {
            writeln!(
                std::io::stdout(),
                "orgs differ: {orgs}; compared anyway (--across-orgs)"
            )?;
        }
    }
    if let Some(id) = &args.flow {
        return one_flow(args, id, (&run_a, &a), (&run_b, &b)).await;
    }
    let hashes = match (
        diff::computed_hashes(&run_a, &a).await,
        diff::computed_hashes(&run_b, &b).await,
    ) {
        (Ok(ha), Ok(hb)) => (ha, hb),
        (Err(e), _) | (_, Err(e)) => return Err(CommandError::read(&e)),
    };
    let mut report = diff::diff_with(&a, &b, &hashes.0, &hashes.1);
    diff::row_details(&mut report, (&run_a, &a), (&run_b, &b))
        .await
        .map_err(|e| CommandError::read(&e))?;
    if args.json {
        super::print_json(&report)?;
    } else {
        print(&mut std::io::stdout().lock(), &report, &run_a.location, &run_b.location)?;
    }
    Ok(differs(args.exit_code && report.has_differences()))
}

/// Exit 3 when the runs differ and `--exit-code` asks to say so, else 0.
fn differs(say_so: bool) -> std::process::ExitCode {
    super::status(if say_so { exit::INCOMPLETE } else { exit::COMPLETE })
}

/// `--flow ID`: the structural diff of one flow's configuration.
async fn one_flow(args: &DiffArgs, id: &str, a: (&RunHandle, &Manifest), b: (&RunHandle, &Manifest)) -> Outcome {
    let content = match args.content {
        DiffContent::Published => Content::Published,
        DiffContent::Latest => Content::Latest,
    };
    let (changes, only) = flow_diff(id, content, a, b).await.map_err(|e| CommandError::read(&e))?;
    if args.json {
        super::print_json(&changes)?;
    } else {
        let mut out = std::io::stdout().lock();
        if let Some(line) = only {
            writeln!(out, "{line}")?;
        } else if changes.is_empty() {
            writeln!(out, "flow {id}: the {} configurations are identical", content.as_str())?;
        } else {
            changes.iter().try_for_each(|c| writeln!(out, "{c}"))?;
        }
    }
    Ok(differs(args.exit_code && !changes.is_empty()))
}

/// One side's configuration of flow `id`: `None` when the run has no such flow (or no such
/// document); the document is verified against its manifest row (size, SHA-256) first.
async fn configuration(
    id: &str,
    content: Content,
    run: &RunHandle,
    m: &Manifest,
) -> Result<Option<serde_json::Value>, ReadError> {
    let Some(doc) = diff::rows_by_id(m).get(id).and_then(|r| r.document(content)).cloned() else {
        return Ok(None);
    };
    if let Some(why) = verify::unsafe_path(&doc.path) {
        return Err(ReadError::Archive(format!(
            "{}: flow {id}'s path {}: {why}",
            run.location, doc.path
        )));
    }
    let bytes = run.document(&doc.path).await?.ok_or_else(|| {
        ReadError::Archive(format!(
            "{}: flow {id}'s document {} is missing (run `flowvault verify {}`)",
            run.location, doc.path, run.location
        ))
    })?;
    let sha = hex::encode(Sha256::digest(&bytes));
    if bytes.len() as u64 != doc.bytes || sha != doc.sha256 {
        return Err(ReadError::Archive(format!(
            "{}: flow {id}'s document {} does not match its manifest (expected {} bytes, SHA-256 {}; found {} bytes, {sha}); nothing compared: run `flowvault verify {}`",
            run.location,
            doc.path,
            doc.bytes,
            doc.sha256,
            bytes.len(),
            run.location
        )));
    }
    let unreadable = |e: &dyn std::fmt::Display| ReadError::Archive(format!("{}/{}: {e}", run.location, doc.path));
    let stored = Document::parse(&bytes).map_err(|e| unreadable(&e))?;
    let configuration = serde_json::from_slice(stored.configuration_bytes()).map_err(|e| unreadable(&e))?;
    Ok(Some(configuration))
}

/// The structural diff of one flow's configuration between the two runs, and, when the flow is
/// in one run only, the line that says so. Both documents are verified before anything is shown.
async fn flow_diff(
    id: &str,
    content: Content,
    a: (&RunHandle, &Manifest),
    b: (&RunHandle, &Manifest),
) -> Result<(Vec<diff::PathChange>, Option<String>), ReadError> {
    let before = configuration(id, content, a.0, a.1).await?;
    let after = configuration(id, content, b.0, b.1).await?;
    let what = content.as_str();
    match (before, after) {
        (Some(x), Some(y)) => Ok((json_diff(&x, &y), None)),
        (None, None) => Err(ReadError::Archive(format!(
            "flow {id} has no {what} document in either run ({} or {})",
            a.0.location, b.0.location
        ))),
        (None, Some(y)) => Ok((
            vec![diff::PathChange::Added {
                path: String::new(),
                value: y,
            }],
            Some(format!(
                "flow {id}: no {what} document in run A ({}); added in run B",
                a.0.location
            )),
        )),
        (Some(x), None) => Ok((
            vec![diff::PathChange::Removed {
                path: String::new(),
                value: x,
            }],
            Some(format!(
                "flow {id}: no {what} document in run B ({}); removed since run A",
                b.0.location
            )),
        )),
    }
}

fn print(out: &mut impl Write, r: &DiffReport, a: &str, b: &str) -> std::io::Result<()> {
    writeln!(out, "--- {a}\n+++ {b}")?;
    for f in &r.added {
        writeln!(out, "added    {} {} {:?}", f.id, f.flow_type, f.name)?;
    }
    for f in &r.removed {
        writeln!(out, "removed  {} {} {:?}", f.id, f.flow_type, f.name)?;
    }
    let contents = |c: &diff::Changed| {
        if c.contents_changed.is_empty() {
            String::new()
        } else {
            let what: Vec<&str> = c.contents_changed.iter().map(|c| c.as_str()).collect();
            format!(
                "; {} changed (saved {} → {}, published {} → {})",
                what.join("+"),
                c.versions_a.saved.as_deref().unwrap_or("-"),
                c.versions_b.saved.as_deref().unwrap_or("-"),
                c.versions_a.published.as_deref().unwrap_or("-"),
                c.versions_b.published.as_deref().unwrap_or("-")
            )
        }
    };
    for c in &r.renamed {
        let from = c.renamed_from.as_deref().unwrap_or_default();
        writeln!(
            out,
            "renamed  {} {} {from:?} → {:?}{}",
            c.flow.id,
            c.flow.flow_type,
            c.flow.name,
            contents(c)
        )?;
    }
    for c in &r.moved {
        let place = match (&c.type_from, &c.division_from, &c.division_to) {
            (Some(t), _, _) => format!("type {t} → {}", c.flow.flow_type),
            (None, from, to) => format!(
                "division {} → {}",
                from.as_deref().unwrap_or("-"),
                to.as_deref().unwrap_or("-")
            ),
        };
        writeln!(out, "moved    {} {:?} {place}{}", c.flow.id, c.flow.name, contents(c))?;
    }
    for c in &r.changed {
        writeln!(
            out,
            "changed  {} {} {:?}{}",
            c.flow.id,
            c.flow.flow_type,
            c.flow.name,
            contents(c)
        )?;
    }
    for n in &r.not_compared {
        writeln!(out, "not compared: {n}")?;
    }
    writeln!(
        out,
        "{} added, {} removed, {} renamed, {} moved, {} changed, {} unchanged",
        r.added.len(),
        r.removed.len(),
        r.renamed.len(),
        r.moved.len(),
        r.changed.len(),
        r.unchanged
    )?;
    match &r.objects {
        Some(objects) => print_objects(out, objects),
        None => Ok(()),
    }
}

/// The Architect objects' lines: one per object added, removed or changed, saying what changed.
fn print_objects(out: &mut impl Write, o: &diff::ObjectsDiff) -> std::io::Result<()> {
    for x in &o.added {
        writeln!(out, "added    {} {} {:?}", x.kind, x.id, x.name)?;
    }
    for x in &o.removed {
        writeln!(out, "removed  {} {} {:?}", x.kind, x.id, x.name)?;
    }
    for c in &o.changed {
        writeln!(
            out,
            "changed  {} {} {:?}: {}",
            c.object.kind,
            c.object.id,
            c.object.name,
            object_change(c).join("; ")
        )?;
    }
    for n in &o.not_compared {
        writeln!(out, "not compared: {n}")?;
    }
    writeln!(
        out,
        "objects: {} added, {} removed, {} changed, {} unchanged",
        o.added.len(),
        o.removed.len(),
        o.changed.len(),
        o.unchanged
    )
}

/// What changed in one object, in words.
fn object_change(c: &diff::ObjectChange) -> Vec<String> {
    let mut what = Vec::new();
    if let Some(from) = &c.renamed_from {
        what.push(format!("renamed from {from:?}"));
    }
    if c.object_changed {
        what.push("edited".into());
    }
    match (&c.rows, c.rows_changed) {
        (Some(rows), true) if rows.is_empty() => what.push("rows document differs (the same rows by key)".into()),
        (Some(rows), _) => {
            let keys = |label: &str, keys: &[String]| {
                const SHOWN: usize = 10;
                let mut shown: Vec<String> = keys.iter().take(SHOWN).map(|k| format!("{k:?}")).collect();
                if keys.len() > SHOWN {
                    shown.push(format!("… {} more", keys.len() - SHOWN));
                }
                (!keys.is_empty()).then(|| format!("rows {label} {}", shown.join(", ")))
            };
            what.extend(
                [
                    keys("added", &rows.added),
                    keys("removed", &rows.removed),
                    keys("changed", &rows.changed),
                ]
                .into_iter()
                .flatten(),
            );
        }
        (None, true) => what.push("rows changed".into()),
        (None, false) => {}
    }
    for (label, langs) in [
        ("re-recorded", &c.audio_changed),
        ("added", &c.audio_added),
        ("removed", &c.audio_removed),
    ] {
        if !langs.is_empty() {
            what.push(format!("audio {label}: {}", langs.join(", ")));
        }
    }
    what
}
