//! `flowvault demo`: run a simulated org in-process and export it with the real code and the
//! real settings resolution, so a newcomer sees the whole job work without a Genesys account.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};

use super::{CommandError, Outcome};
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

/// Runs the demo: the export's summary, then what to try next.
pub async fn run(args: &DemoArgs, stop: StopSignal) -> Outcome {
    let report = export(args, stop).await?;
    let mut out = std::io::stdout().lock();
    let code = super::export::summary(&mut out, &report, false)?;
    writeln!(out, "{}", next_steps(&report.location, &args.to))?;
    Ok(super::status(code))
}

/// Runs the export of the demo org and returns the report.
async fn export(args: &DemoArgs, stop: StopSignal) -> Result<ExportReport, CommandError> {
    let server = SimServer::start(demo_org(args.flows), SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0))
        .await
        .map_err(CommandError::fatal)?;
    eprintln!(
        "flowvault demo: simulated org with {} flows at {}",
        args.flows,
        server.url()
    );
    let flags = Flags::from([
        (s::API_URL.id, server.url().to_string()),
        (s::TO.id, args.to.clone()),
        (s::FORMAT.id, args.format.to_string()),
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
    let settings = ExportSettings::resolve(&flags, &env).map_err(CommandError::fatal)?;
    let report = super::export::run(&settings, stop, None)
        .await
        .map_err(CommandError::fatal)?;
    server.shutdown().await;
    Ok(report)
}

/// The "next:" lines after a demo run, spelled the way the user started flowvault.
pub fn next_steps(location: &str, to: &str) -> String {
    let me = invocation(
        std::env::args_os().next().as_deref(),
        std::env::var_os("CARGO").is_some(),
    );
    format!(
        "next:     {me} verify {location}     # prove every byte against the manifest\n          \
         {me} runs {to}              # the runs there, newest first\n          \
         {me} diff {location} {to}/RUN   # after a second demo run"
    )
}

/// How to run flowvault again as it was run now: `cargo run --release --` under `cargo run`
/// (cargo sets `CARGO` for what it runs; the profile shows in the binary's path), the path
/// given when started by path (`./flowvault`), else `flowvault` (found on `PATH`).
fn invocation(argv0: Option<&std::ffi::OsStr>, under_cargo: bool) -> String {
    let Some(argv0) = argv0.map(std::path::Path::new) else {
        return "flowvault".into();
    };
    let in_target = |profile: &str| {
        let parts: Vec<_> = argv0
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        parts.windows(2).any(|w| w[0] == "target" && w[1] == profile)
    };
    if under_cargo && in_target("release") {
        return "cargo run --release --".into();
    }
    if under_cargo && in_target("debug") {
        return "cargo run --".into();
    }
    if argv0.components().count() > 1 {
        return argv0.display().to_string();
    }
    "flowvault".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn under_cargo_run_the_next_commands_are_cargo_run() {
        let release = invocation(Some(OsStr::new("target/release/flowvault")), true);
        assert_eq!(release, "cargo run --release --");
        let debug = invocation(Some(OsStr::new("/w/target/debug/flowvault")), true);
        assert_eq!(debug, "cargo run --");
        assert!(next_steps("d/r", "d").contains(" verify d/r"));
    }

    #[test]
    fn installed_or_started_by_path_the_next_commands_say_so() {
        assert_eq!(invocation(Some(OsStr::new("flowvault")), false), "flowvault");
        assert_eq!(invocation(Some(OsStr::new("./flowvault")), false), "./flowvault");
        assert_eq!(
            invocation(Some(OsStr::new("target/release/flowvault")), false),
            "target/release/flowvault"
        );
    }
}
