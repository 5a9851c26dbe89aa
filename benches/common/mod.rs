//! What the benches share: the simulated org's OAuth client, flag parsing, and the release
//! binary pointed at a simulated org.

use std::process::Command;

use flowvault::sim::SimServer;

pub const CLIENT_ID: &str = "bench";
pub const CLIENT_SECRET: &str = "bench-secret";

/// The number after `name` among the bench's arguments.
pub fn arg(args: &[String], name: &str) -> Option<u64> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

/// The flowvault binary, configured to reach `sim`.
pub fn flowvault(sim: &SimServer) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowvault"));
    cmd.env("FLOWVAULT_API_URL", sim.url())
        .env("FLOWVAULT_ALLOW_INSECURE_HTTP", "true")
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", CLIENT_ID)
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", CLIENT_SECRET)
        .env("NO_COLOR", "1");
    cmd
}
