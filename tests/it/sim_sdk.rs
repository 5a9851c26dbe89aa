//! The simulated org is faithful enough for the official Genesys Cloud Python SDK.

use crate::support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_lists_and_fetches_every_flow() {
    let python = support::python_tool("genesys-sdk", "purecloudplatformclientv2==269.0.0", "python");
    let sim = start_sim(org(60)).await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/sdk_check.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .args([sim.url(), CLIENT_ID, CLIENT_SECRET, "60"])
        .output()
        .await
        .expect("run the SDK check");
    assert!(
        out.status.success(),
        "the SDK failed against the simulated org:\n{}",
        all_output(&out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("sdk ok: 60 flows"));
    assert!(
        sim.stats().write_requests.load(std::sync::atomic::Ordering::Relaxed) >= 4,
        "the write side was driven"
    );
    let stats = sim.stats().to_json();
    for kind in [
        "prompts",
        "datatables",
        "datatables.rows",
        "schedules",
        "schedulegroups",
        "emergencygroups",
        "ivrs",
        "outcomes",
        "milestones",
    ] {
        assert!(sim.stats().architect_requests(kind) > 0, "the SDK read {kind}: {stats}");
    }
    assert_eq!(stats["audio_downloads"], 1, "one audio file downloaded without auth");
    assert_eq!(
        stats["audio_uploads"], 1,
        "one audio file uploaded through the presigned URL"
    );
    let objects = sim.objects();
    assert!(
        objects
            .named(flowvault::sim::ObjectKind::Schedule, "SDK Schedule")
            .is_some()
    );
    let prompt = objects
        .named(flowvault::sim::ObjectKind::UserPrompt, "SDK_Prompt")
        .unwrap();
    assert_eq!(prompt.body["resources"][0]["uploadStatus"], "transcoded");
}
