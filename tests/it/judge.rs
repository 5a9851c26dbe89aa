//! The archive's judge: `verify` holds a manifest to itself as well as to the bytes, in bounded
//! memory; `diff` is exact; `runs` tells a whole manifest from a cut-off one and a run from a run
//! without its archive; and every command that takes a run or a destination answers bad input
//! the same way. Each case runs over local disk and S3, in both formats.

use crate::support;

use std::process::Output;

use flowvault::manifest::Manifest;
use serde_json::{Value, json};
use support::s3::{S3Server, free_port};
use support::targets::{ALL_TARGETS, Place, Target};
use support::*;

// ---- tampering with a stored run --------------------------------------------------------------

fn tar_member(builder: &mut tar::Builder<Vec<u8>>, name: &str, body: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, name, body).unwrap();
}

fn tar_gz(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, body) in members {
        tar_member(&mut builder, name, body);
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &builder.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

/// A manifest as pretty JSON, ending as flowvault writes it.
fn manifest_bytes(m: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(m).unwrap();
    out.push(b'\n');
    out
}

async fn manifest_of(place: &Place, id: &str) -> Value {
    serde_json::from_slice(&place.read(&format!("{id}/manifest.json")).await).unwrap()
}

/// Rewrites run `id`'s manifest (beside the run and, for tar-gz, as the archive's last member)
/// and its documents: `documents` gets the stored documents by path and may change them.
async fn rewrite(
    place: &Place,
    id: &str,
    edit: impl FnOnce(&mut Value),
    documents: impl FnOnce(&mut Vec<(String, Vec<u8>)>),
) {
    let mut manifest = manifest_of(place, id).await;
    edit(&mut manifest);
    let bytes = manifest_bytes(&manifest);
    if place.format == "tar-gz" {
        let archive = place.read(&format!("{id}/flows.tar.gz")).await;
        let mut members: Vec<_> = read_tar_gz(&archive)
            .into_iter()
            .filter(|(n, _)| n != "manifest.json")
            .collect();
        documents(&mut members);
        members.push(("manifest.json".into(), bytes.clone()));
        place.write(&format!("{id}/flows.tar.gz"), tar_gz(&members)).await;
    } else {
        let before = stored_documents(place, id).await;
        let mut after = before.clone();
        documents(&mut after);
        for (name, _) in &before {
            if !after.iter().any(|(n, _)| n == name) {
                place.remove(&format!("{id}/{name}")).await;
            }
        }
        for (name, body) in &after {
            if !before.contains(&(name.clone(), body.clone())) {
                place.write(&format!("{id}/{name}"), body.clone()).await;
            }
        }
    }
    place.write(&format!("{id}/manifest.json"), bytes).await;
}

/// The documents of an objects-format run, by path relative to the run.
async fn stored_documents(place: &Place, id: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for name in object_names(place, id).await {
        if name != "manifest.json" {
            let body = place.read(&format!("{id}/{name}")).await;
            out.push((name, body));
        }
    }
    out
}

/// The names stored under run `id`, relative to the run.
async fn object_names(place: &Place, id: &str) -> Vec<String> {
    match &place.s3 {
        Some(s3) => s3
            .keys(&format!("c/{id}/"))
            .await
            .into_iter()
            .map(|k| k.trim_start_matches(&format!("c/{id}/")).to_string())
            .collect(),
        None => read_tree(&place.dir.path().join(id)).into_keys().collect(),
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn problem_lines(out: &Output) -> Vec<String> {
    stdout(out)
        .lines()
        .filter(|l| l.starts_with("PROBLEM"))
        .map(str::to_string)
        .collect()
}

/// Exports `sim` to `place` as run `id`; the run must be complete.
async fn exported(place: &Place, sim: &flowvault::sim::SimServer, id: &str, extra: &[&str]) {
    let out = place.export_with(sim, id, extra).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
}

// ---- verify: the manifest against itself ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_a_dropped_row_that_the_totals_still_count() {
    let sim = start_sim(org(6)).await;
    for target in ALL_TARGETS {
        let place = Place::new(target).await;
        exported(&place, &sim, "r", &[]).await;
        let m = manifest_of(&place, "r").await;
        let dropped: Vec<String> = m["flows"][1]["documents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["path"].as_str().unwrap().to_string())
            .collect();
        rewrite(
            &place,
            "r",
            |m| {
                m["flows"].as_array_mut().unwrap().remove(1);
            },
            |docs| docs.retain(|(n, _)| !dropped.contains(n)),
        )
        .await;
        let out = place.flowvault(&["verify", &place.run("r")]).await;
        assert_eq!(out.status.code(), Some(3), "{target:?}: {}", all_output(&out));
        let problems = problem_lines(&out);
        assert!(
            problems.iter().any(|l| l.contains("totals do not count the rows")),
            "{target:?}: {problems:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_refuses_a_failed_row_under_complete_true() {
    let sim = start_sim(org(6)).await;
    for target in ALL_TARGETS {
        let place = Place::new(target).await;
        exported(&place, &sim, "r", &[]).await;
        let mut failed_id = String::new();
        rewrite(
            &place,
            "r",
            |m| {
                let row = &mut m["flows"][2];
                failed_id = row["id"].as_str().unwrap().to_string();
                row["outcome"] = json!("failed");
                row["error"] = json!("HTTP 500");
                // The totals agree with the rows: only `complete` lies.
                let t = &mut m["totals"];
                t["exported"] = json!(t["exported"].as_u64().unwrap() - 1);
                t["failed"] = json!(t["failed"].as_u64().unwrap() + 1);
                assert_eq!(m["complete"], json!(true));
            },
            |_| {},
        )
        .await;
        let out = place.flowvault(&["verify", &place.run("r")]).await;
        assert_eq!(out.status.code(), Some(3), "{target:?}: {}", all_output(&out));
        let problems = problem_lines(&out);
        assert!(
            problems
                .iter()
                .any(|l| l.contains(&failed_id) && l.contains("says complete, yet this flow is failed")),
            "{target:?}: {problems:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_says_an_incomplete_run_is_incomplete_beside_the_byte_verdict_with_exit_4() {
    let mut config = org(6);
    config.forbidden.insert(config.flows[1].id().to_string());
    config.forbidden.insert(config.flows[3].id().to_string());
    let sim = start_sim(config).await;
    for target in ALL_TARGETS {
        let place = Place::new(target).await;
        // Flows only: the count of documents verified below is the flows'.
        let out = place.export_with(&sim, "r", &["--kinds", "flows"]).await;
        assert_eq!(out.status.code(), Some(3), "{target:?}: {}", all_output(&out));
        let out = place.flowvault(&["verify", &place.run("r")]).await;
        assert_eq!(out.status.code(), Some(4), "{target:?}: {}", all_output(&out));
        let text = stdout(&out);
        let incomplete = text
            .lines()
            .find(|l| l.starts_with("incomplete: "))
            .unwrap_or_else(|| panic!("{target:?}: no incomplete line:\n{text}"));
        assert!(incomplete.contains("2 failed"), "{target:?}: {incomplete}");
        assert!(text.contains("verified: 4 documents"), "{target:?}: {text}");
        let json = place.flowvault(&["verify", &place.run("r"), "--json"]).await;
        let report: Value = serde_json::from_slice(&json.stdout).unwrap();
        assert!(report["incomplete"].is_string(), "{target:?}: {report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_a_row_path_outside_the_run_as_such() {
    let sim = start_sim(org(5)).await;
    for target in ALL_TARGETS {
        let place = Place::new(target).await;
        exported(&place, &sim, "r", &[]).await;
        let manifest = manifest_of(&place, "r").await;
        let flow = manifest["flows"][1]["id"].as_str().unwrap().to_string();
        let path = manifest["flows"][1]["documents"][0]["path"]
            .as_str()
            .unwrap()
            .to_string();
        // The same bytes, stored beside the run: a reader that followed `..` would find them.
        let body = match place.format {
            "tar-gz" => {
                read_tar_gz(&place.read("r/flows.tar.gz").await)
                    .into_iter()
                    .find(|(n, _)| *n == path)
                    .unwrap()
                    .1
            }
            _ => place.read(&format!("r/{path}")).await,
        };
        place.write("outside.json", body).await;
        rewrite(
            &place,
            "r",
            |m| m["flows"][1]["documents"][0]["path"] = json!("../outside.json"),
            |_| {},
        )
        .await;
        let out = place.flowvault(&["verify", &place.run("r")]).await;
        assert_eq!(out.status.code(), Some(3), "{target:?}: {}", all_output(&out));
        let problems = problem_lines(&out);
        assert!(
            problems
                .iter()
                .any(|l| l.contains(&flow) && l.contains("../outside.json") && l.contains("not inside the run")),
            "{target:?}: {problems:?}"
        );
    }
}

// ---- verify: bounded memory -------------------------------------------------------------------

/// A tar.gz of `before` (raw tar bytes), then a member `name` of `zeros` zero bytes, then
/// `after` (raw tar bytes, ending the archive). The zeros are deflated once per MiB and the
/// compressed MiB repeated, so a GiB costs a few megabytes and a second to build.
fn gzip_with_zeros(before: &[u8], name: &str, zeros: u64, after: &[u8]) -> Vec<u8> {
    use std::io::Write;
    const MIB: usize = 1 << 20;
    assert_eq!(zeros % MIB as u64, 0);
    let mut header = tar::Header::new_gnu();
    header.set_path(name).unwrap();
    header.set_size(zeros);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut prefix = before.to_vec();
    prefix.extend_from_slice(header.as_bytes());
    // Each piece ends on a byte boundary (sync flush), so raw deflate pieces concatenate.
    let piece = |data: &[u8], last: bool| {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        if last {
            e.finish().unwrap()
        } else {
            e.flush().unwrap();
            e.get_ref().clone()
        }
    };
    let zero_mib = vec![0u8; MIB];
    let zero_piece = piece(&zero_mib, false);
    let mut crc = flate2::Crc::new();
    crc.update(&prefix);
    let mut zero_crc = flate2::Crc::new();
    zero_crc.update(&zero_mib);
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend(piece(&prefix, false));
    for _ in 0..zeros / MIB as u64 {
        out.extend_from_slice(&zero_piece);
        crc.combine(&zero_crc);
    }
    out.extend(piece(after, true));
    crc.update(after);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&crc.amount().to_le_bytes());
    out
}

/// A process's peak resident memory so far, in bytes (`VmHWM`: the high-water mark of its own
/// address space since it exec'd, so nothing of the test process that spawned it counts).
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Runs the binary to its end and returns its exit code, its stdout and its peak resident
/// memory in bytes, read from the child's `/proc/PID/status` every few milliseconds while it
/// runs (a high-water mark, so a later read never sees less than an earlier peak).
fn run_measured(args: &[&str], env: &[(&'static str, String)]) -> (Option<i32>, String, u64) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_flowvault"));
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().to_string();
        if k.starts_with("FLOWVAULT_") || k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut child = cmd
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(out.reopen().unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut peak = 0;
    let status = loop {
        if let Some(now) = peak_rss(child.id()) {
            peak = peak.max(now);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert!(peak > 0, "the child's memory was read at least once");
    let text = std::fs::read_to_string(out.path()).unwrap();
    (status.code(), text, peak)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_of_a_gib_of_zeros_stays_under_64_mib_of_memory() {
    const GIB: u64 = 1 << 30;
    const LIMIT: u64 = 64 << 20;
    let sim = start_sim(org(4)).await;
    for target in [Target::LocalTarGz, Target::MotoTarGz, Target::LocalObjects] {
        let place = Place::new(target).await;
        exported(&place, &sim, "r", &[]).await;
        if place.format == "tar-gz" {
            let members = read_tar_gz(&place.read("r/flows.tar.gz").await);
            let (manifest, documents) = members.split_last().unwrap();
            let mut before = tar::Builder::new(Vec::new());
            for (name, body) in documents {
                tar_member(&mut before, name, body);
            }
            let before = before.get_ref().clone();
            let mut after = tar::Builder::new(Vec::new());
            tar_member(&mut after, &manifest.0, &manifest.1);
            let after = after.into_inner().unwrap();
            let archive = gzip_with_zeros(&before, "flows/bot/zeros.json", GIB, &after);
            assert!(archive.len() < 32 << 20, "{}", archive.len());
            place.write("r/flows.tar.gz", archive).await;
        } else {
            // A listed document and an unlisted object, each a GiB of zeros (sparse files).
            let m = manifest_of(&place, "r").await;
            let doc = m["flows"][0]["documents"][0]["path"].as_str().unwrap().to_string();
            for name in [format!("r/{doc}"), "r/flows/bot/zeros.json".to_string()] {
                let path = place.dir.path().join(name);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::File::create(&path).unwrap().set_len(GIB).unwrap();
            }
        }
        let run = place.run("r");
        let env = place.env();
        let (code, out, peak) = tokio::task::spawn_blocking(move || run_measured(&["verify", &run], &env))
            .await
            .unwrap();
        assert_eq!(code, Some(3), "{target:?}: {out}");
        assert!(
            out.lines()
                .any(|l| l.contains("flows/bot/zeros.json") && l.contains("no manifest row names it")),
            "{target:?}: {out}"
        );
        assert!(
            peak < LIMIT,
            "{target:?}: verify peaked at {} MiB of memory",
            peak >> 20
        );
    }
}

// ---- diff: exact ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_of_published_runs_sees_a_change_to_a_never_published_flow() {
    let sim = start_sim(org(8)).await;
    let never = sim.flows()[5].id().to_string();
    assert!(
        sim.flows()[5].published_version().is_none(),
        "flow 5 was never published"
    );
    for target in ALL_TARGETS {
        let place = Place::new(target).await;
        let a = format!("a-{target:?}");
        let b = format!("b-{target:?}");
        exported(&place, &sim, &a, &["--content", "published"]).await;
        sim.update_flow(&never, |f| {
            f.save_version(format!(r#"{{"name":"edit {target:?}","tasks":[]}}"#));
        });
        exported(&place, &sim, &b, &["--content", "published"]).await;
        let out = place
            .flowvault(&["diff", &place.run(&a), &place.run(&b), "--json", "--exit-code"])
            .await;
        assert_eq!(out.status.code(), Some(3), "{target:?}: {}", all_output(&out));
        let d: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(d["changed"].as_array().unwrap().len(), 1, "{target:?}: {d}");
        assert_eq!(d["changed"][0]["id"], json!(never), "{target:?}");
        assert_eq!(d["changed"][0]["contents_changed"], json!(["latest"]), "{target:?}");
        assert_eq!(d["unchanged"], json!(7), "{target:?}");
    }
}

/// Rewrites run `id`'s manifest beside the run as a v1 manifest (one document per row, on the
/// row; no configuration hashes, no org).
async fn make_v1(place: &Place, id: &str) {
    let mut m = manifest_of(place, id).await;
    let obj = m.as_object_mut().unwrap();
    obj.insert("schema".into(), json!("flowvault.manifest/v1"));
    for k in ["content", "yaml", "organization", "last_full_run"] {
        obj.remove(k);
    }
    for row in m["flows"].as_array_mut().unwrap() {
        let row = row.as_object_mut().unwrap();
        let docs = row.remove("documents").unwrap();
        assert_eq!(docs.as_array().unwrap().len(), 1);
        for k in ["path", "bytes", "sha256"] {
            row.insert(k.into(), docs[0][k].clone());
        }
        for k in ["source", "listing_sha256", "carried_from", "fetched_in"] {
            row.remove(k);
        }
    }
    Manifest::from_slice(&manifest_bytes(&m)).expect("a readable v1 manifest");
    place.write(&format!("{id}/manifest.json"), manifest_bytes(&m)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_of_a_v1_run_against_a_v2_run_where_only_locks_changed_finds_no_change() {
    let sim = start_sim(org(6)).await;
    let locked = sim.flows()[2].id().to_string();
    for target in ALL_TARGETS {
        let place = Place::new(target).await;
        exported(&place, &sim, "v1", &["--content", "latest"]).await;
        make_v1(&place, "v1").await;
        assert!(sim.lock_flow(&locked, &format!("editor-{target:?}")));
        exported(&place, &sim, "v2", &["--content", "latest"]).await;
        let out = place
            .flowvault(&["diff", &place.run("v1"), &place.run("v2"), "--json", "--exit-code"])
            .await;
        assert_eq!(out.status.code(), Some(0), "{target:?}: {}", all_output(&out));
        let d: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(d["changed"], json!([]), "{target:?}: a lock is not a change: {d}");
        assert_eq!(d["not_compared"], json!([]), "{target:?}: {d}");
        assert_eq!(d["unchanged"], json!(6), "{target:?}: {d}");
        sim.update_flow(&locked, |f| {
            f.meta.as_object_mut().unwrap().remove("lockedUser");
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_flow_refuses_a_document_that_does_not_match_its_manifest() {
    let sim = start_sim(org(5)).await;
    for target in ALL_TARGETS {
        let place = Place::new(target).await;
        exported(&place, &sim, "a", &[]).await;
        exported(&place, &sim, "b", &[]).await;
        let m = manifest_of(&place, "b").await;
        let flow = m["flows"][1]["id"].as_str().unwrap().to_string();
        let latest = m["flows"][1]["documents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["contents"].as_array().unwrap().contains(&json!("latest")))
            .unwrap();
        let path = latest["path"].as_str().unwrap().to_string();
        rewrite(
            &place,
            "b",
            |_| {},
            |docs| {
                let (_, body) = docs.iter_mut().find(|(n, _)| *n == path).unwrap();
                // Still JSON, one key of the configuration renamed: a change if it were believed.
                let text = String::from_utf8(body.clone()).unwrap();
                let at = text.rfind("\"id\"").unwrap();
                *body = format!("{}\"iD\"{}", &text[..at], &text[at + 4..]).into_bytes();
            },
        )
        .await;
        let out = place
            .flowvault(&["diff", &place.run("a"), &place.run("b"), "--flow", &flow])
            .await;
        assert_eq!(out.status.code(), Some(1), "{target:?}: {}", all_output(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{target:?}: {stderr}");
        assert!(stderr.contains("does not match its manifest"), "{target:?}: {stderr}");
        assert!(stdout(&out).is_empty(), "{target:?}: nothing compared");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_flow_of_a_flow_in_one_run_only_says_so_rather_than_no_run() {
    let sim = start_sim(org(4)).await;
    for target in [Target::LocalTarGz, Target::SeaweedObjects] {
        let place = Place::new(target).await;
        exported(&place, &sim, "a", &[]).await;
        let created = flowvault::sim::generate_org(1, 91, false).remove(0);
        let id = created.id().to_string();
        sim.create_flow(created);
        exported(&place, &sim, "b", &[]).await;
        assert!(sim.delete_flow(&id));
        let out = place
            .flowvault(&["diff", &place.run("a"), &place.run("b"), "--flow", &id, "--exit-code"])
            .await;
        assert_eq!(out.status.code(), Some(3), "{target:?}: {}", all_output(&out));
        let text = stdout(&out);
        assert!(
            text.contains(&format!("flow {id}: no latest document in run A")) && text.contains("added in run B"),
            "{target:?}: {text}"
        );
        assert!(!all_output(&out).contains("no run at"), "{target:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_of_two_orgs_says_so_first_and_compares_only_with_across_orgs() {
    let sim = start_sim(org(4)).await;
    let mut other = org(4);
    other.organization["id"] = json!("0be7a1e5-0000-4000-a000-00000000beef");
    other.organization["thirdPartyOrgName"] = json!("other-org");
    let other = start_sim(other).await;
    for target in ALL_TARGETS {
        let place = Place::new(target).await;
        exported(&place, &sim, "a", &[]).await;
        exported(&place, &other, "b", &[]).await;
        let out = place.flowvault(&["diff", &place.run("a"), &place.run("b")]).await;
        assert_eq!(out.status.code(), Some(2), "{target:?}: {}", all_output(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{target:?}: {stderr}");
        assert!(
            stderr.contains("different orgs") && stderr.contains("other-org") && stderr.contains("--across-orgs"),
            "{target:?}: {stderr}"
        );
        assert!(stdout(&out).is_empty(), "{target:?}: nothing compared");
        let out = place
            .flowvault(&["diff", &place.run("a"), &place.run("b"), "--across-orgs"])
            .await;
        assert_eq!(out.status.code(), Some(0), "{target:?}: {}", all_output(&out));
        let text = stdout(&out);
        assert!(text.starts_with("orgs differ:"), "{target:?}: said first:\n{text}");
        let json = place
            .flowvault(&["diff", &place.run("a"), &place.run("b"), "--across-orgs", "--json"])
            .await;
        let d: Value = serde_json::from_slice(&json.stdout).unwrap();
        assert!(
            d["other_orgs"].as_str().unwrap().contains("other-org"),
            "{target:?}: {d}"
        );
    }
}

// ---- runs: whole or not -----------------------------------------------------------------------

async fn runs_json(place: &Place) -> Vec<Value> {
    let out = place.flowvault(&["runs", &place.dest(), "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn latest_complete(place: &Place) -> String {
    let out = place
        .flowvault(&["verify", &place.dest(), "--latest-complete", "--json"])
        .await;
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", all_output(&out)));
    report["location"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_lists_a_cut_off_newest_manifest_as_unreadable_and_latest_complete_skips_it() {
    let sim = start_sim(org(8)).await;
    for target in ALL_TARGETS {
        let place = Place::new(target).await;
        exported(&place, &sim, "r1", &[]).await;
        exported(&place, &sim, "r2", &[]).await;
        let whole = place.read("r2/manifest.json").await;
        let rows = String::from_utf8_lossy(&whole).find("\"flows\": [").unwrap();
        let cut = rows + (whole.len() - rows) / 2;
        place.write("r2/manifest.json", whole[..cut].to_vec()).await;

        let runs = runs_json(&place).await;
        let r2 = runs.iter().find(|r| r["run_id"] == "r2").unwrap();
        assert_eq!(r2["complete"], Value::Null, "{target:?}: {r2}");
        assert!(r2["problem"].as_str().unwrap().contains("cut off"), "{target:?}: {r2}");
        let table = place.flowvault(&["runs", &place.dest()]).await;
        let line = stdout(&table)
            .lines()
            .find(|l| l.starts_with("r2 "))
            .unwrap()
            .to_string();
        assert!(line.contains("UNREADABLE"), "{target:?}: {line}");
        assert!(latest_complete(&place).await.ends_with("/r1"), "{target:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_lists_a_run_without_its_archive_as_not_complete_and_latest_complete_skips_it() {
    let sim = start_sim(org(5)).await;
    for target in ALL_TARGETS {
        let place = Place::new(target).await;
        exported(&place, &sim, "r1", &[]).await;
        exported(&place, &sim, "r2", &[]).await;
        for name in object_names(&place, "r2").await {
            if name != "manifest.json" {
                place.remove(&format!("r2/{name}")).await;
            }
        }
        let runs = runs_json(&place).await;
        let r2 = runs.iter().find(|r| r["run_id"] == "r2").unwrap();
        assert_eq!(r2["complete"], json!(false), "{target:?}: {r2}");
        assert!(r2["problem"].is_string(), "{target:?}: {r2}");
        assert!(latest_complete(&place).await.ends_with("/r1"), "{target:?}");
    }
}

// ---- one location parser, one error table -----------------------------------------------------

/// Every command that takes a run or a destination, with `loc` where the location goes.
fn commands(loc: &str, to: &str) -> Vec<(&'static str, Vec<String>)> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        ("runs", s(&["runs", loc])),
        ("verify", s(&["verify", loc])),
        ("diff", s(&["diff", loc, loc])),
        ("restore", s(&["restore", loc, "--all"])),
        ("export --since", s(&["export", "--to", to, "--since", loc])),
    ]
}

/// The environment every case gets: Genesys settings (so `restore` and `export` get as far as
/// the location), no AWS credentials or profile anywhere, no instance metadata.
fn base_env(home: &std::path::Path, api: &str) -> Vec<(&'static str, String)> {
    vec![
        ("GENESYSCLOUD_OAUTHCLIENT_ID", CLIENT_ID.into()),
        ("GENESYSCLOUD_OAUTHCLIENT_SECRET", CLIENT_SECRET.into()),
        ("FLOWVAULT_API_URL", api.into()),
        ("FLOWVAULT_RATE_LIMIT", "off".into()),
        ("HOME", home.display().to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("FLOWVAULT_S3_FORCE_PATH_STYLE", "true".into()),
    ]
}

async fn run_env(args: &[String], env: &[(&'static str, String)]) -> Output {
    run(flowvault().args(args).envs(env.iter().map(|(k, v)| (*k, v.as_str())))).await
}

/// One line on stderr, no SDK account in it.
fn assert_one_line(case: &str, out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{case}: one line:\n{stderr}");
    for dump in ["DispatchFailure", "ConnectorError", "source:", "SdkError", "Error {"] {
        assert!(!stderr.contains(dump), "{case}: SDK text in:\n{stderr}");
    }
    assert!(stderr.len() < 400, "{case}: {} bytes:\n{stderr}", stderr.len());
    lines[0].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_answers_a_malformed_or_bare_s3_url_with_exit_2_and_the_same_line() {
    let home = tempfile::tempdir().unwrap();
    let to = tempfile::tempdir().unwrap();
    let env = base_env(home.path(), &format!("http://127.0.0.1:{}", free_port()));
    for (url, needle) in [
        ("s3://Bad_Bucket/backups/r1", "lowercase"),
        ("s3://", "bucket name is missing"),
    ] {
        let mut messages = Vec::new();
        for (name, args) in commands(url, &to.path().display().to_string()) {
            let case = format!("{name} {url}");
            let out = run_env(&args, &env).await;
            assert_eq!(out.status.code(), Some(2), "{case}: {}", all_output(&out));
            let line = assert_one_line(&case, &out);
            assert!(line.contains(needle), "{case}: {line}");
            assert!(!line.contains("no run at"), "{case}: {line}");
            // The same message, whatever the command: from the location parser.
            let at = line
                .find("invalid destination")
                .unwrap_or_else(|| panic!("{case}: {line}"));
            messages.push(line[at..].to_string());
        }
        messages.dedup();
        assert_eq!(messages.len(), 1, "{url}: {messages:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_without_aws_credentials_exits_1_with_the_cause_in_one_line() {
    let s3 = S3Server::moto().await;
    let sim = start_sim(org(2)).await;
    let home = tempfile::tempdir().unwrap();
    let to = tempfile::tempdir().unwrap();
    let mut env = base_env(home.path(), sim.url());
    env.push(("AWS_ENDPOINT_URL", s3.endpoint.clone()));
    let run_url = "s3://flowvault-test/backups/r1";
    for (name, args) in commands(run_url, &to.path().display().to_string()) {
        let out = run_env(&args, &env).await;
        if name == "export --since" {
            // A previous run that cannot be read makes a full run, and says why, in one line.
            assert_eq!(out.status.code(), Some(0), "{name}: {}", all_output(&out));
            let text = all_output(&out);
            let line = text
                .lines()
                .find(|l| l.contains("previous run cannot be used"))
                .unwrap_or_else(|| panic!("{name}: {text}"));
            assert!(line.contains("no AWS credentials"), "{name}: {line}");
            assert!(
                !text.contains("DispatchFailure") && !text.contains("ConnectorError"),
                "{text}"
            );
            continue;
        }
        assert_eq!(out.status.code(), Some(1), "{name}: {}", all_output(&out));
        let line = assert_one_line(name, &out);
        assert!(line.contains("no AWS credentials"), "{name}: {line}");
    }
    // The SDK's own account is there for whoever asks for it.
    let mut debug = commands(run_url, "-").remove(1).1;
    debug.extend(["--log-level".to_string(), "debug".to_string()]);
    let out = run_env(&debug, &env).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("S3 request failed"),
        "{}",
        all_output(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_command_at_an_unreachable_endpoint_exits_1_with_the_cause_in_one_line() {
    let home = tempfile::tempdir().unwrap();
    let mut env = base_env(home.path(), &format!("http://127.0.0.1:{}", free_port()));
    env.push(("AWS_ACCESS_KEY_ID", "AKIAFLOWVAULTTEST".into()));
    env.push(("AWS_SECRET_ACCESS_KEY", "not-used-Quokka".into()));
    env.push(("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", free_port())));
    env.push(("AWS_MAX_ATTEMPTS", "1".into()));
    for (name, args) in commands("s3://flowvault-test/backups/r1", "-")
        .into_iter()
        .filter(|(n, _)| *n != "export --since")
    {
        let out = run_env(&args, &env).await;
        assert_eq!(out.status.code(), Some(1), "{name}: {}", all_output(&out));
        let line = assert_one_line(name, &out);
        assert!(line.contains("could not reach the S3 endpoint"), "{name}: {line}");
    }
}
