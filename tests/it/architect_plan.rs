//! `flowvault plan` counts what an export of the Architect objects will cost, per kind, against
//! the simulated org over HTTP; its figures are checked against what an export then sends.

use flowvault::manifest::{Content, Manifest};
use serde_json::Value;

use crate::support::targets::{Place, Target};
use crate::support::{CLIENT_ID, CLIENT_SECRET, all_output, flowvault, org, run, start_sim};

async fn plan(sim: &flowvault::sim::SimServer, place: &Place, extra: &[&str]) -> std::process::Output {
    run(flowvault()
        .args(["plan", "--to", &place.dest(), "--rate-limit", "10/s"])
        .args(extra)
        .env("FLOWVAULT_API_URL", sim.url())
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", CLIENT_ID)
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", CLIENT_SECRET))
    .await
}

fn kind<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["estimate"]["architect"]
        .as_array()
        .expect("estimate.architect")
        .iter()
        .find(|k| k["kind"] == name)
        .unwrap_or_else(|| panic!("no {name} in {plan:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_counts_each_kinds_requests_as_the_export_then_sends_them() {
    let sim = start_sim(org(12)).await;
    let place = Place::new(Target::LocalObjects).await;
    let out = plan(&sim, &place, &["--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan --json prints one object");
    assert_eq!(plan["written"], false);

    let out = place.export(&sim, "r").await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let m = Manifest::from_slice(&place.read("r/manifest.json").await).unwrap();
    let section = m.architect.as_ref().expect("the architect section");
    assert_eq!(section.kinds.len(), 8);
    for report in &section.kinds {
        let planned = kind(&plan, &report.kind);
        assert_eq!(
            planned["requests"], report.requests,
            "{}: planned {planned}, the export sent {}",
            report.kind, report.requests
        );
        let listed = m.objects.iter().filter(|o| o.kind == report.kind).count();
        let census = plan["architect"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kind"] == report.kind.as_str())
            .unwrap();
        assert_eq!(census["objects"], listed as u64, "{}", report.kind);
    }
    let audio = m
        .objects
        .iter()
        .flat_map(|o| &o.documents)
        .filter(|d| d.holds(Content::Audio))
        .count() as u64;
    assert!(audio > 0);
    assert_eq!(plan["estimate"]["audio_downloads"], audio);
    let architect_requests: u64 = section.kinds.iter().map(|k| k.requests).sum();
    assert_eq!(
        plan["estimate"]["requests"].as_u64().unwrap() - plan["estimate"]["flow_requests"].as_u64().unwrap(),
        architect_requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_text_gives_requests_per_kind_and_says_audio_is_not_rate_limited() {
    let sim = start_sim(org(5)).await;
    let place = Place::new(Target::LocalTarGz).await;
    let out = plan(&sim, &place, &[]).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert!(text.contains("architect:    objects  requests"), "{text}");
    let tables = text
        .lines()
        .find(|l| l.trim_start().starts_with("datatables"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        tables.contains("pages of rows (") && tables.contains(" rows)"),
        "{tables}"
    );
    assert!(text.contains("Architect objects"), "{text}");
    let audio = text
        .lines()
        .find(|l| l.starts_with("audio:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(audio.contains("not rate limited"), "{audio}");
    assert!(text.contains("at 10.0 requests/s"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_the_role_cannot_read_is_named_with_its_permission_and_flows_only_plans_none() {
    let mut config = org(5);
    config.denied_permissions.insert("routing:callRoute:view".into());
    let sim = start_sim(config).await;
    let place = Place::new(Target::LocalObjects).await;
    let out = plan(&sim, &place, &[]).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let ivrs = text
        .lines()
        .find(|l| l.trim_start().starts_with("ivrs"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        ivrs.contains("not readable") && ivrs.contains("routing:callRoute:view"),
        "{ivrs}"
    );

    let out = plan(&sim, &place, &["--kinds", "flows", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["architect"], serde_json::json!([]));
    assert_eq!(plan["estimate"]["requests"], plan["estimate"]["flow_requests"]);
}
