//! A run can be proven and compared: `verify` catches and names every kind of corruption, over
//! local disk and both S3 servers in both formats; `diff` reports exactly what changed in the org
//! between two runs, across location kinds; `runs` lists runs newest first with their status.

use crate::support;

use flowvault::sim::{ConfigSource, generate_org};
use support::targets::{EVERY_TARGET, Place, Target};
use support::*;

fn tar_gz(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (name, body) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, name, body.as_slice()).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// One way to damage a stored run, and what `verify` must say about it.
#[derive(Clone, Copy, Debug)]
enum Damage {
    FlipByte,
    Missing,
    Extra,
    EditedManifest,
    Truncated,
    SidecarDiffers,
}

/// Damages run `id`; returns a word the report must contain and the flow id it must name, if any.
async fn damage(place: &Place, id: &str, how: Damage) -> (String, Option<String>) {
    let manifest: flowvault::manifest::Manifest =
        serde_json::from_slice(&place.read(&format!("{id}/manifest.json")).await).unwrap();
    let row = manifest.flows.iter().find(|r| !r.documents.is_empty()).unwrap().clone();
    let doc = row.documents[0].path.clone();
    let flow = Some(row.id.clone());
    if place.format == "objects" {
        let name = format!("{id}/{doc}");
        return match how {
            Damage::FlipByte => {
                let mut body = place.read(&name).await;
                let i = body.len() / 2;
                body[i] ^= 0x20;
                place.write(&name, body).await;
                ("SHA-256 differs".into(), flow)
            }
            Damage::Missing => {
                place.remove(&name).await;
                ("missing".into(), flow)
            }
            Damage::Extra => {
                place
                    .write(&format!("{id}/flows/bot/stray--x.json"), b"{}".to_vec())
                    .await;
                ("no manifest row names it".into(), None)
            }
            _ => {
                let text = String::from_utf8(place.read(&format!("{id}/manifest.json")).await).unwrap();
                let edited = text.replacen(&row.documents[0].sha256, &"0".repeat(64), 1);
                place.write(&format!("{id}/manifest.json"), edited.into_bytes()).await;
                ("SHA-256 differs".into(), flow)
            }
        };
    }
    let archive_name = format!("{id}/flows.tar.gz");
    let archive = place.read(&archive_name).await;
    let mut members = read_tar_gz(&archive);
    let (word, flow) = match how {
        Damage::FlipByte => {
            let m = members.iter_mut().find(|(n, _)| *n == doc).unwrap();
            let i = m.1.len() / 2;
            m.1[i] ^= 0x20;
            ("SHA-256 differs", flow)
        }
        Damage::Missing => {
            members.retain(|(n, _)| *n != doc);
            ("missing", flow)
        }
        Damage::Extra => {
            members.insert(0, ("flows/bot/stray--x.json".into(), b"{}".to_vec()));
            ("no manifest row names it", None)
        }
        Damage::Truncated => {
            place
                .write(&archive_name, archive[..archive.len() * 2 / 3].to_vec())
                .await;
            return ("truncated or corrupt".into(), None);
        }
        Damage::EditedManifest => {
            let text = String::from_utf8(place.read(&format!("{id}/manifest.json")).await).unwrap();
            let edited = text.replacen(&row.documents[0].sha256, &"0".repeat(64), 1);
            place.write(&format!("{id}/manifest.json"), edited.into_bytes()).await;
            return ("SHA-256 differs".into(), flow);
        }
        Damage::SidecarDiffers => {
            let mut text = place.read(&format!("{id}/manifest.json")).await;
            text.extend_from_slice(b" \n");
            place.write(&format!("{id}/manifest.json"), text).await;
            return ("differs from the archive's last member".into(), None);
        }
    };
    place.write(&archive_name, tar_gz(&members)).await;
    (word.into(), flow)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_run_verifies_and_every_corruption_is_caught_and_named() {
    let sim = start_sim(org(8)).await;
    for target in EVERY_TARGET {
        let place = Place::new(target).await;
        let out = place.export(&sim, "fresh").await;
        assert_eq!(out.status.code(), Some(0), "{target:?}: {}", all_output(&out));
        let ok = place.flowvault(&["verify", &place.run("fresh")]).await;
        assert_eq!(ok.status.code(), Some(0), "{target:?}: {}", all_output(&ok));
        assert!(String::from_utf8_lossy(&ok.stdout).contains("verified:"), "{target:?}");

        let cases: &[Damage] = if place.format == "objects" {
            &[Damage::FlipByte, Damage::Missing, Damage::Extra, Damage::EditedManifest]
        } else {
            &[
                Damage::FlipByte,
                Damage::Missing,
                Damage::Extra,
                Damage::Truncated,
                Damage::EditedManifest,
                Damage::SidecarDiffers,
            ]
        };
        for (i, how) in cases.iter().enumerate() {
            let id = format!("bad{i}");
            assert_eq!(place.export(&sim, &id).await.status.code(), Some(0));
            let (word, flow) = damage(&place, &id, *how).await;
            let out = place.flowvault(&["verify", &place.run(&id)]).await;
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let case = format!("{target:?} {how:?}");
            assert_eq!(out.status.code(), Some(3), "{case}: {}", all_output(&out));
            let line = stdout
                .lines()
                .find(|l| l.starts_with("PROBLEM") && l.contains(&word))
                .unwrap_or_else(|| panic!("{case}: no problem line says `{word}`:\n{stdout}"));
            if let Some(id) = flow {
                assert!(line.contains(&id), "{case}: the line names the flow: {line}");
            }
            let json = place.flowvault(&["verify", &place.run(&id), "--json"]).await;
            let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
            assert!(!report["problems"].as_array().unwrap().is_empty(), "{case}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_s3_object_is_caught_by_the_quick_check_which_says_it_is_weaker() {
    let sim = start_sim(org(6)).await;
    let place = Place::new(Target::SeaweedObjects).await;
    assert_eq!(place.export(&sim, "q").await.status.code(), Some(0));
    let quick = place.flowvault(&["verify", &place.run("q"), "--quick"]).await;
    assert_eq!(quick.status.code(), Some(0), "{}", all_output(&quick));
    assert!(String::from_utf8_lossy(&quick.stdout).contains("weaker"));
    let manifest: flowvault::manifest::Manifest = serde_json::from_slice(&place.read("q/manifest.json").await).unwrap();
    let doc = &manifest.flows[2].documents[0].path;
    place.remove(&format!("q/{doc}")).await;
    let quick = place.flowvault(&["verify", &place.run("q"), "--quick"]).await;
    assert_eq!(quick.status.code(), Some(3), "{}", all_output(&quick));
    assert!(String::from_utf8_lossy(&quick.stdout).contains(&manifest.flows[2].id));
    let local = Place::new(Target::LocalObjects).await;
    let usage = local.flowvault(&["verify", &local.run("q"), "--quick"]).await;
    assert_eq!(usage.status.code(), Some(2), "--quick on a local run is a usage error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_cannot_be_read_exits_1_with_one_line() {
    let place = Place::new(Target::LocalTarGz).await;
    let out = place.flowvault(&["verify", &place.run("nope")]).await;
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no run at"), "{stderr}");

    let s3 = Place::new(Target::MotoTarGz).await;
    let out = s3.flowvault(&["verify", "s3://no-such-bucket/x/run"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-bucket"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_newest_first_with_their_status() {
    let mut config = org(5);
    config.forbidden.insert(config.flows[1].id().to_string());
    let sim = start_sim(config).await;
    let good = start_sim(org(5)).await;
    for target in [Target::LocalObjects, Target::MotoTarGz] {
        let place = Place::new(target).await;
        assert_eq!(place.export(&good, "r1").await.status.code(), Some(0));
        assert_eq!(place.export(&good, "r2").await.status.code(), Some(0));
        assert_eq!(
            place.export(&sim, "r3").await.status.code(),
            Some(3),
            "r3 is incomplete"
        );
        let out = place.flowvault(&["runs", &place.dest(), "--json"]).await;
        assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
        let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        let ids: Vec<&str> = runs.iter().map(|r| r["run_id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["r3", "r2", "r1"], "{target:?}");
        let complete: Vec<bool> = runs.iter().map(|r| r["complete"].as_bool().unwrap()).collect();
        assert_eq!(complete, [false, true, true]);
        assert_eq!(runs[0]["totals"]["failed"], 1);
        assert!(runs[0]["bytes"].as_u64().unwrap() > 0);
        let table = place.flowvault(&["runs", &place.dest()]).await;
        let text = String::from_utf8_lossy(&table.stdout);
        assert!(text.contains("INCOMPLETE") && text.contains("complete"), "{text}");

        let latest = place
            .flowvault(&["verify", &place.dest(), "--latest-complete", "--json"])
            .await;
        let report: serde_json::Value = serde_json::from_slice(&latest.stdout).unwrap();
        assert!(report["location"].as_str().unwrap().ends_with("/r2"), "{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_reports_exactly_what_changed_in_the_org_between_two_runs() {
    let sim = start_sim(org(8)).await;
    let flows = sim.flows();
    let (edited, deleted, renamed) = (
        flows[1].id().to_string(),
        flows[2].id().to_string(),
        flows[4].id().to_string(),
    );
    let a = Place::new(Target::LocalTarGz).await;
    let b = Place::new(Target::SeaweedObjects).await;
    assert_eq!(a.export(&sim, "a").await.status.code(), Some(0));

    // An edit saved in Architect but not published: a new saved version, the published one unchanged.
    sim.update_flow(&edited, |f| {
        *f = f.clone().with_draft(ConfigSource::Literal(
            r#"{"name":"edited","tasks":[{"id":"t0","actions":[]}],"version":2}"#.into(),
        ));
    });
    assert!(sim.delete_flow(&deleted));
    let created = generate_org(1, 77, false).remove(0);
    let created_id = created.id().to_string();
    sim.create_flow(created);
    sim.update_flow(&renamed, |f| f.meta["name"] = "Renamed flow".into());
    assert_eq!(b.export(&sim, "b").await.status.code(), Some(0));

    let out = b.flowvault(&["diff", &a.run("a"), &b.run("b"), "--json"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "without --exit-code a diff exits 0: {}",
        all_output(&out)
    );
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids = |k: &str| -> Vec<String> {
        d[k].as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids("added"), [created_id]);
    assert_eq!(ids("removed"), [deleted]);
    assert_eq!(ids("renamed"), std::slice::from_ref(&renamed));
    assert_eq!(d["renamed"][0]["renamed_from"], flows[4].meta["name"]);
    assert_eq!(ids("changed"), std::slice::from_ref(&edited));
    assert_eq!(d["changed"][0]["contents_changed"], serde_json::json!(["latest"]));
    assert_ne!(
        d["changed"][0]["versions_b"]["saved"],
        d["changed"][0]["versions_a"]["saved"]
    );
    assert_eq!(
        d["changed"][0]["versions_b"]["published"],
        d["changed"][0]["versions_a"]["published"]
    );
    assert!(ids("moved").is_empty());
    assert_eq!(d["unchanged"], 5);

    let code = b.flowvault(&["diff", &a.run("a"), &b.run("b"), "--exit-code"]).await;
    assert_eq!(code.status.code(), Some(3));
    let text = String::from_utf8_lossy(&code.stdout);
    assert!(
        text.contains("1 added, 1 removed, 1 renamed, 0 moved, 1 changed, 5 unchanged"),
        "{text}"
    );
    let same = b.flowvault(&["diff", &b.run("b"), &b.run("b"), "--exit-code"]).await;
    assert_eq!(same.status.code(), Some(0), "{}", all_output(&same));

    let one = b
        .flowvault(&["diff", &a.run("a"), &b.run("b"), "--flow", &edited])
        .await;
    assert_eq!(one.status.code(), Some(0), "{}", all_output(&one));
    let lines = String::from_utf8_lossy(&one.stdout).into_owned();
    assert!(
        lines
            .lines()
            .any(|l| l.starts_with("~ /name:") && l.contains("\"edited\"")),
        "{lines}"
    );
    assert!(
        lines.lines().all(|l| l.starts_with(['+', '-', '~'])),
        "paths, not a wall of text:\n{lines}"
    );
}
