//! `flowvault plan` (the settings of `export`): what a run will cost — flows per type, requests,
//! time at the configured rate — and whether the destination is usable. Writes nothing.

use std::io::Write;

use std::process::ExitCode;

use super::export::identify;
use super::{CommandError, Outcome};
use crate::preflight;
use crate::settings::ExportSettings;
use crate::sink;

/// Prints the plan.
pub async fn run(settings: &ExportSettings) -> Outcome {
    let destination = match sink::check(&settings.destination, &settings.run_id, &settings.store).await {
        Ok(location) => format!("{location} is usable ({})", settings.format),
        Err(e) => return Err(CommandError::fatal(format!("destination check failed: {e}"))),
    };
    let client = super::connect(settings.client.clone())
        .await
        .map_err(CommandError::fatal)?;
    let org = identify(&client, settings.expect_org.as_deref())
        .await
        .map_err(CommandError::fatal)?;
    let census = preflight::census(&client, &settings.types, settings.page_size)
        .await
        .map_err(CommandError::fatal)?;
    let org = org.map(|o| o.describe()).unwrap_or_else(|| "unknown".into());
    print(&mut std::io::stdout().lock(), settings, &org, &destination, &census)?;
    Ok(ExitCode::SUCCESS)
}

/// The plan's lines.
fn print(
    out: &mut impl Write,
    settings: &ExportSettings,
    org: &str,
    destination: &str,
    census: &preflight::OrgCensus,
) -> std::io::Result<()> {
    let rate = settings.client.rate_per_second;
    let estimate = preflight::estimate(
        census,
        settings.content,
        settings.yaml.as_ref().map(|y| y.batch_size),
        rate,
    );
    writeln!(out, "org:          {org}")?;
    writeln!(out, "destination:  {destination}")?;
    writeln!(
        out,
        "flows:        {} ({} with a draft newer than the published version, {} never published)",
        census.flows, census.drafts, census.never_published
    )?;
    for (t, n) in &census.per_type {
        writeln!(out, "  {t:<22} {n}")?;
    }
    writeln!(
        out,
        "content:      {}{}",
        settings.content.as_str(),
        if settings.yaml.is_some() { " + Archy YAML" } else { "" }
    )?;
    writeln!(out, "requests:     about {}", estimate.requests)?;
    match estimate.seconds_at_rate {
        Some(s) => writeln!(
            out,
            "time:         about {} at {:.1} requests/s",
            human(s),
            rate.unwrap_or_default()
        )?,
        None => writeln!(
            out,
            "time:         no rate limit configured: bounded by the API's own limit and latency"
        )?,
    }
    if let Some((since, full_every)) = &settings.since {
        writeln!(
            out,
            "incremental:  --since {since}: these figures are a full run's; a run carrying unchanged flows over sends the listing pages plus about one request per changed flow (a full run at least every {}s, --full-every)",
            full_every.as_secs()
        )?;
    }
    writeln!(out, "nothing was written")
}

fn human(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}
