//! `flowvault plan` (the settings of `export`): what a run will cost — flows per type, requests,
//! time at the configured rate — and whether the destination is usable. Writes nothing.

use std::io::Write;

use std::process::ExitCode;

use serde::Serialize;

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
    let kinds = if settings.kinds.kinds.is_empty() {
        Vec::new()
    } else {
        preflight::architect_census(&client, &settings.kinds, settings.page_size)
            .await
            .map_err(CommandError::fatal)?
    };
    let org = org.map(|o| o.describe()).unwrap_or_else(|| "unknown".into());
    let plan = Plan::new(settings, org, destination, census, kinds);
    let mut out = std::io::stdout().lock();
    if settings.reporting.json {
        serde_json::to_writer_pretty(&mut out, &plan).map_err(std::io::Error::other)?;
        writeln!(out)?;
    } else {
        plan.print(&mut out, settings)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What `plan` found and expects, as printed (text) or written (`--json`).
#[derive(Debug, Serialize)]
struct Plan {
    org: String,
    destination: String,
    census: preflight::OrgCensus,
    /// Per Architect kind asked for: what the org holds of it.
    architect: Vec<preflight::KindCensus>,
    estimate: preflight::Estimate,
    /// The configured rate, requests per second.
    rate_per_second: Option<f64>,
    written: bool,
}

impl Plan {
    fn new(
        settings: &ExportSettings,
        org: String,
        destination: String,
        census: preflight::OrgCensus,
        architect: Vec<preflight::KindCensus>,
    ) -> Plan {
        let rate = settings.client.rate_per_second;
        let estimate = preflight::estimate(
            &census,
            &architect,
            settings.content,
            settings.yaml.as_ref().map(|y| y.batch_size),
            rate,
        );
        Plan {
            org,
            destination,
            census,
            architect,
            estimate,
            rate_per_second: rate,
            written: false,
        }
    }

    /// The plan's lines.
    fn print(&self, out: &mut impl Write, settings: &ExportSettings) -> std::io::Result<()> {
        let (census, estimate) = (&self.census, &self.estimate);
        writeln!(out, "org:          {}", self.org)?;
        writeln!(out, "destination:  {}", self.destination)?;
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
        self.print_architect(out, settings.kinds.explicit)?;
        if self.architect.is_empty() {
            writeln!(out, "requests:     about {}", estimate.requests)?;
        } else {
            writeln!(
                out,
                "requests:     about {} (flows {}, Architect objects {})",
                estimate.requests,
                estimate.flow_requests,
                estimate.requests - estimate.flow_requests
            )?;
        }
        match estimate.seconds_at_rate {
            Some(s) => writeln!(
                out,
                "time:         about {} at {:.1} requests/s",
                human(s),
                self.rate_per_second.unwrap_or_default()
            )?,
            None => writeln!(
                out,
                "time:         no rate limit configured: bounded by the API's own limit and latency"
            )?,
        }
        if estimate.audio_downloads > 0 {
            writeln!(
                out,
                "audio:        {} downloads from presigned URLs beside the API requests: not API requests, so not rate limited (bounded in number at once, not in the time above)",
                estimate.audio_downloads
            )?;
        }
        if let Some((since, full_every)) = &settings.since {
            writeln!(
                out,
                "incremental:  --since {since}: these figures are a full run's; a run carrying unchanged flows over sends the listing pages plus about one request per changed flow{} (a full run at least every {}s, --full-every)",
                if self.architect.is_empty() {
                    ""
                } else {
                    ", and of the Architect objects each kind's listing plus the rows of tables whose listing changed"
                },
                full_every.as_secs()
            )?;
        }
        writeln!(out, "nothing was written")
    }

    /// One line per Architect kind: objects, requests, and what makes them up.
    fn print_architect(&self, out: &mut impl Write, named: bool) -> std::io::Result<()> {
        if self.architect.is_empty() {
            return Ok(());
        }
        writeln!(out, "architect:    objects  requests")?;
        for (k, cost) in self.architect.iter().zip(&self.estimate.architect) {
            if !k.readable {
                writeln!(
                    out,
                    "  {:<16} {:>7}  {:>8}  not readable, not exported: {}{}",
                    k.kind,
                    "-",
                    cost.requests,
                    k.note.as_deref().unwrap_or("the role cannot list it"),
                    if named {
                        " (named in --kinds: the run will be incomplete, exit 3)"
                    } else {
                        " (a warning; the run stays complete)"
                    }
                )?;
                continue;
            }
            let mut detail = vec![pages(cost.listing_pages, "listing page")];
            if k.kind == "datatables" {
                detail.push(format!("{} of rows ({} rows)", pages(cost.row_pages, "page"), k.rows));
            }
            if k.kind == "prompts" {
                detail.push(format!("+ {} audio files, not rate limited", k.audio_files));
            }
            writeln!(
                out,
                "  {:<16} {:>7}  {:>8}  {}",
                k.kind,
                k.objects,
                cost.requests,
                detail.join(", ")
            )?;
        }
        Ok(())
    }
}

fn pages(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn human(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}
