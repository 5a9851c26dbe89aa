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
}
