//! `flowvault demo`: run a simulated org in-process and export it with the real code, so a
//! newcomer sees the whole job work without a Genesys account.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use crate::cli::DemoArgs;
use crate::config::{ExportSettings, S3Settings};
use crate::export::{ExportReport, StopSignal};
use crate::genesys::retry::RetryConfig;
use crate::secret::Secret;
use crate::sim::{SimConfig, SimRateLimit, SimServer, generate_org};
use crate::sink::Destination;

/// The demo org: awkward names, one flaky flow, one flow deleted after listing, a rate limit.
pub fn demo_org(flows: usize) -> SimConfig {
    let org = generate_org(flows, 2026, true);
    let mut config = SimConfig::with_flows(org, "flowvault-demo", "flowvault-demo-secret");
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
    let url = url::Url::parse(server.url())?;
    eprintln!(
        "flowvault demo: simulated org with {} flows at {}",
        args.flows,
        server.url()
    );
    let settings = ExportSettings {
        client_id: "flowvault-demo".into(),
        client_secret: Secret::new("flowvault-demo-secret"),
        region: None,
        api_url: url.clone(),
        login_url: url,
        destination: Destination::Local(PathBuf::from(&args.to)),
        format: args.format,
        run_id: crate::manifest::default_run_id(),
        types: Vec::new(),
        concurrency: 16,
        rate_per_second: Some(40.0),
        page_size: 500,
        retry: RetryConfig {
            base_backoff: std::time::Duration::from_millis(200),
            ..RetryConfig::default()
        },
        shutdown_grace: std::time::Duration::from_secs(5),
        max_duration: None,
        s3: S3Settings::default(),
    };
    let report = super::export::run(&settings, stop).await?;
    server.shutdown().await;
    Ok(report)
}
