//! `flowvault plan` (the settings of `export`): what a run will cost — flows per type, requests,
//! time at the configured rate — and whether the destination is usable. Writes nothing.

use std::io::Write;
use std::sync::Arc;

use super::exit;
use super::export::identify;
use crate::genesys::GenesysClient;
use crate::preflight;
use crate::settings::ExportSettings;
use crate::sink;

/// Prints the plan; the exit code.
pub async fn run(settings: &ExportSettings) -> i32 {
    let destination = match sink::check(&settings.destination, &settings.run_id, &settings.s3).await {
        Ok(location) => format!("{location} is usable ({})", settings.format),
        Err(e) => return super::fail("plan", format!("destination check failed: {e}"), exit::FATAL),
    };
    let client = match GenesysClient::connect(settings.client.clone()) {
        Ok(c) => Arc::new(c),
        Err(e) => return super::fail("plan", e, exit::FATAL),
    };
    if let Err(e) = client.authenticate().await {
        return super::fail("plan", e, exit::FATAL);
    }
    let org = match identify(&client, settings.expect_org.as_deref()).await {
        Ok(o) => o,
        Err(e) => return super::fail("plan", e, exit::FATAL),
    };
    let census = match preflight::census(&client, &settings.types, settings.page_size).await {
        Ok(c) => c,
        Err(e) => return super::fail("plan", e, exit::FATAL),
    };
    let rate = settings.client.rate_per_second;
    let estimate = preflight::estimate(
        &census,
        settings.content,
        settings.yaml.as_ref().map(|y| y.batch_size),
        rate,
    );
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "org:          {}",
        org.map(|o| o.describe()).unwrap_or_else(|| "unknown".into())
    );
    let _ = writeln!(out, "destination:  {destination}");
    let _ = writeln!(
        out,
        "flows:        {} ({} with a draft newer than the published version, {} never published)",
        census.flows, census.drafts, census.never_published
    );
    for (t, n) in &census.per_type {
        let _ = writeln!(out, "  {t:<22} {n}");
    }
    let _ = writeln!(
        out,
        "content:      {}{}",
        settings.content.as_str(),
        if settings.yaml.is_some() { " + Archy YAML" } else { "" }
    );
    let _ = writeln!(out, "requests:     about {}", estimate.requests);
    match estimate.seconds_at_rate {
        Some(s) => {
            let _ = writeln!(
                out,
                "time:         about {} at {:.1} requests/s",
                human(s),
                rate.unwrap_or_default()
            );
        }
        None => {
            let _ = writeln!(
                out,
                "time:         no rate limit configured: bounded by the API's own limit and latency"
            );
        }
    }
    if let Some((since, full_every)) = &settings.since {
        let _ = writeln!(
            out,
            "incremental:  --since {since}: these figures are a full run's; a run carrying unchanged flows over sends the listing pages plus about one request per changed flow (a full run at least every {}s, --full-every)",
            full_every.as_secs()
        );
    }
    let _ = writeln!(out, "nothing was written");
    exit::COMPLETE
}

fn human(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}
