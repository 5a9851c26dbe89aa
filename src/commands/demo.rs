//! `flowvault demo`: run a simulated org in-process and export it with the real code and the
//! real settings resolution, so a newcomer sees the whole job work without a Genesys account.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};

use crate::cli::DemoArgs;
use crate::export::{ExportReport, StopSignal};
use crate::settings::{self as s, ExportSettings, Flags};
use crate::sim::{SimConfig, SimRateLimit, SimServer, generate_org};

const DEMO_CLIENT_ID: &str = "flowvault-demo";
const DEMO_CLIENT_SECRET: &str = "flowvault-demo-secret";

/// The demo org: awkward names, one flaky flow, one flow deleted after listing, a rate limit.
pub fn demo_org(flows: usize) -> SimConfig {
    let org = generate_org(flows, 2026, true);
    let mut config = SimConfig::with_flows(org, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET);
    let ids: Vec<String> = config.flows.iter().map(|f| f.id().to_string()).collect();
    if let Some(id) = ids.get(12) {
        config.flaky = HashMap::from([(id.clone(), 2)]);
    }
    if let Some(id) = ids.get(20) {
        config.deleted_after_listing = HashSet::from([id.clone()]);
    }
    config.rate_limit = Some(SimRateLimit {
        requests: 40,
        window: std::time::Duration::from_secs(1),
    });
    config.max_page_size = 100;
    config
}

/// Runs the demo and returns the report.
pub async fn run(args: &DemoArgs, stop: StopSignal) -> anyhow::Result<ExportReport> {
    let server = SimServer::start(demo_org(args.flows), SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0)).await?;
    eprintln!(
        "flowvault demo: simulated org with {} flows at {}",
        args.flows,
        server.url()
    );
    let flags = Flags::from([
        (s::API_URL.id, server.url().to_string()),
        (s::TO.id, args.to.clone()),
        (s::FORMAT.id, args.format.clone()),
        (s::RATE_LIMIT.id, "40/s".to_string()),
        (s::CONCURRENCY.id, "16".to_string()),
        (s::MAX_BACKOFF.id, "2s".to_string()),
        (s::SHUTDOWN_GRACE.id, "5s".to_string()),
    ]);
    let env = |name: &str| match name {
        n if n == s::CLIENT_ID.env[0] => Some(DEMO_CLIENT_ID.to_string()),
        n if n == s::CLIENT_SECRET.env[0] => Some(DEMO_CLIENT_SECRET.to_string()),
        _ => None,
    };
    let settings = ExportSettings::resolve(&flags, &env)?;
    let report = super::export::run(&settings, stop, None).await?;
    server.shutdown().await;
    Ok(report)
}
