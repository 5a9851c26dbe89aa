//! `flowvault diff RUN_A RUN_B`: what changed between two runs (any location kinds), or with
//! `--flow ID` a structural diff of one flow's configuration. Exit 0, or 3 with `--exit-code`
//! when the runs differ; 1 when a run cannot be read; 2 usage.

use std::io::Write;

use super::exit;
use crate::archive::diff::{self, DiffReport, json_diff};
use crate::archive::{self, ReadError, RunHandle};
use crate::cli::DiffArgs;
use crate::manifest::{Content, Manifest};
use crate::settings::{process_env, read_options};

/// Compares the runs; the exit code.
pub async fn run(args: &DiffArgs) -> i32 {
    let options = match read_options(&args.store.flags, &process_env) {
        Ok(o) => o,
        Err(e) => return super::fail("diff", e, exit::USAGE),
    };
    let mut sides = Vec::new();
    for spec in [&args.run_a, &args.run_b] {
        let side = match archive::locate(spec, None, &options).await {
            Ok(run) => run.manifest().await.map(|m| (run, m)),
            Err(e) => Err(e),
        };
        match side {
            Ok(s) => sides.push(s),
            Err(e) => return super::fail("diff", e, exit::FATAL),
        }
    }
    let (b, a) = (sides.pop(), sides.pop());
    let (Some((run_a, a)), Some((run_b, b))) = (a, b) else {
        return exit::FATAL;
    };
    if let Some(id) = &args.flow {
        let content = if args.content == "published" {
            Content::Published
        } else {
            Content::Latest
        };
        return match flow_diff(id, content, (&run_a, &a), (&run_b, &b)).await {
            Ok(changes) => {
                let mut out = std::io::stdout().lock();
                let differs = !changes.is_empty();
                let printed = if args.json {
                    super::print_json(&changes)
                } else if changes.is_empty() {
                    writeln!(out, "flow {id}: the {} configurations are identical", content.as_str())
                } else {
                    changes.iter().try_for_each(|c| writeln!(out, "{c}"))
                };
                match printed {
                    Err(e) => super::fail("diff", e, exit::FATAL),
                    Ok(()) if differs && args.exit_code => exit::INCOMPLETE,
                    Ok(()) => exit::COMPLETE,
                }
            }
            Err(e) => super::fail("diff", e, exit::FATAL),
        };
    }
    let report = diff::diff(&a, &b);
    let mut out = std::io::stdout().lock();
    let printed = if args.json {
        super::print_json(&report)
    } else {
        print(&mut out, &report, &run_a.location, &run_b.location)
    };
    match printed {
        Err(e) => super::fail("diff", e, exit::FATAL),
        Ok(()) if args.exit_code && report.has_differences() => exit::INCOMPLETE,
        Ok(()) => exit::COMPLETE,
    }
}

/// The structural diff of one flow's configuration between the two runs.
async fn flow_diff(
    id: &str,
    content: Content,
    a: (&RunHandle, &Manifest),
    b: (&RunHandle, &Manifest),
) -> Result<Vec<diff::PathChange>, ReadError> {
    let mut configs = Vec::new();
    for (run, m) in [a, b] {
        let doc = diff::rows_by_id(m)
            .get(id)
            .and_then(|r| r.document(content))
            .map(|d| d.path.clone())
            .ok_or_else(|| ReadError::NoRun {
                location: run.location.clone(),
                why: format!("flow {id} has no {} document in this run", content.as_str()),
            })?;
        let bytes = run.document(&doc).await?.ok_or_else(|| ReadError::NoRun {
            location: run.location.clone(),
            why: format!("{doc} is missing (run `flowvault verify` on it)"),
        })?;
        let parsed: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ReadError::Archive(format!("{}/{doc} is not JSON: {e}", run.location)))?;
        configs.push(parsed.get("configuration").cloned().unwrap_or_default());
    }
    Ok(json_diff(&configs[0], &configs[1]))
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
    )
}
