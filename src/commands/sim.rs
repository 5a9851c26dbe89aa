//! `flowvault sim`: serve a simulated org until stopped.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use super::{CommandError, Outcome};
use crate::cli::SimArgs;
use crate::settings::{ConfigError, parse_duration, parse_rate};
use serde_json::json;

use crate::sim::{
    ArchitectSizes, ConfigSource, Fault, ListingChange, ObjectKind, SimConfig, SimObjects, SimRateLimit, SimServer,
    generate_org,
};

/// Builds the org described by the flags.
pub fn sim_config(args: &SimArgs) -> Result<SimConfig, ConfigError> {
    let mut flows = generate_org(args.flows, args.seed, args.awkward_names);
    if let Some(actions) = args.big_flow_actions
        && let Some(flow) = flows.iter_mut().find(|f| f.flow_type() == "BOT")
        && let ConfigSource::Generated { seed, .. } = flow.config
    {
        // About 150 bytes per generated action.
        flow.config = ConfigSource::Generated {
            seed,
            target_bytes: actions.saturating_mul(150),
        };
    }
    let mut config = SimConfig::with_flows(flows, &args.client_id, &args.client_secret);
    config.operation_delay = parse_duration(&args.operation_delay, "--operation-delay")?;
    config.token_lifetime = parse_duration(&args.token_lifetime, "--token-lifetime")?.max(Duration::from_secs(1));
    config.latency = parse_duration(&args.latency, "--latency")?;
    config.max_page_size = args.max_page_size.max(1);
    config.oversize_page = args.oversize_page;
    config.retry_after_override = args.retry_after;
    config.omit_retry_after = args.no_retry_after;
    if let Some(rate) = &args.rate_limit {
        let per_second = parse_rate(rate, "--rate-limit")?;
        if let Some(r) = per_second {
            let (requests, window) = if r >= 1.0 {
                (r.round() as u32, Duration::from_secs(1))
            } else {
                ((r * 60.0).round().max(1.0) as u32, Duration::from_secs(60))
            };
            config.rate_limit = Some(SimRateLimit { requests, window });
        }
    }
    let every = |k: Option<usize>| -> Vec<String> {
        match k {
            Some(k) if k > 0 => config
                .flows
                .iter()
                .enumerate()
                .filter(|(i, _)| (i + 1) % k == 0)
                .map(|(_, f)| f.id().to_string())
                .collect(),
            _ => Vec::new(),
        }
    };
    let flaky: HashMap<String, u32> = every(args.flaky_every)
        .into_iter()
        .map(|id| (id, args.flaky_failures))
        .collect();
    let deleted: HashSet<String> = every(args.deleted_every).into_iter().collect();
    let forbidden: HashSet<String> = every(args.forbidden_every).into_iter().collect();
    for id in every(args.unavailable_every) {
        config
            .faults
            .insert(id, vec![Fault::Unavailable(args.unavailable_retry_after)]);
    }
    config.flaky = flaky;
    config.flaky_status = args.flaky_status;
    config.deleted_after_listing = deleted;
    config.deleted_after_fetch = every(args.deleted_after_fetch_every).into_iter().collect();
    config.forbidden = forbidden;
    apply_listing_knobs(&mut config, args);
    config.objects = sim_objects(args)?.with_flows(&config.flows);
    apply_write_knobs(&mut config, args)?;
    apply_architect_knobs(&mut config, args)?;
    Ok(config)
}

/// The knobs that make the write side as hard as Genesys.
fn apply_write_knobs(config: &mut SimConfig, args: &SimArgs) -> Result<(), ConfigError> {
    config.write_faults = args
        .write_faults
        .iter()
        .map(|f| f.parse().map_err(|e: String| ConfigError(format!("--write-fault {e}"))))
        .collect::<Result<_, _>>()?;
    config.refuse_save = args.refuse_save.clone();
    config.publish_without_version = args.publish_without_version;
    config.validate_after_operation = args.validate_after_operation;
    config.organization_status = args.organization_status;
    config.unlock_denied = args.deny_unlock;
    Ok(())
}

/// The org's non-flow objects: `--rebuilt-objects` under new ids, minus each `--drop-object`.
fn sim_objects(args: &SimArgs) -> Result<SimObjects, ConfigError> {
    let mut objects = match (args.rebuilt_objects, args.no_architect_objects) {
        (true, true) => SimObjects::rebuilt_without_architect(args.seed),
        (true, false) => SimObjects::rebuilt(args.seed),
        (false, true) => SimObjects::standard().non_architect(),
        (false, false) => SimObjects::sized(&architect_sizes(args)),
    };
    for spec in &args.drop_object {
        let (kind, name) = spec
            .split_once(':')
            .and_then(|(k, n)| Some((ObjectKind::from_manifest_key(k)?, n)))
            .ok_or_else(|| {
                ConfigError(format!(
                    "--drop-object `{spec}` is not KIND:NAME with KIND one of queue, dataAction, userPrompt, dataTable, user, flowOutcome, flowMilestone, schedule, scheduleGroup, emergencyGroup, ivr"
                ))
            })?;
        objects = objects.without(kind, name);
    }
    Ok(objects)
}

/// The Architect catalogue's sizes: the standard one, or `--bench-catalogue`, with single counts
/// overridden.
fn architect_sizes(args: &SimArgs) -> ArchitectSizes {
    let mut sizes = if args.bench_catalogue {
        ArchitectSizes::bench()
    } else {
        ArchitectSizes::standard()
    };
    let set = |field: &mut usize, v: Option<usize>| {
        if let Some(v) = v {
            *field = v;
        }
    };
    set(&mut sizes.prompts, args.prompts);
    set(&mut sizes.data_tables, args.data_tables);
    set(&mut sizes.schedules, args.schedules);
    set(&mut sizes.schedule_groups, args.schedule_groups);
    set(&mut sizes.emergency_groups, args.emergency_groups);
    set(&mut sizes.ivrs, args.ivrs);
    if args.languages_per_prompt.is_some() {
        sizes.languages_per_prompt = args.languages_per_prompt;
    }
    if args.table_rows.is_some() {
        sizes.rows = args.table_rows;
    }
    sizes
}

/// The knobs that make the Architect objects as hard as Genesys: expiring media URLs, missing
/// permissions, slow or failing transcodes, late outcomes, writes that answer 5xx.
fn apply_architect_knobs(config: &mut SimConfig, args: &SimArgs) -> Result<(), ConfigError> {
    config.media_url_ttl = Duration::from_secs(args.media_url_ttl);
    config.denied_permissions = args.deny_permission.iter().cloned().collect();
    config.transcode_polls = args.transcode_polls;
    config.transcode_fail = args.transcode_fail.iter().cloned().collect();
    config.outcome_visibility_delay = parse_duration(&args.outcome_delay, "--outcome-delay")?;
    config.object_write_faults = args
        .object_write_fault
        .iter()
        .map(|f| {
            f.parse()
                .map_err(|e: String| ConfigError(format!("--object-write-fault {e}")))
        })
        .collect::<Result<_, _>>()?;
    config.hidden_objects = args
        .hidden_object
        .iter()
        .map(|spec| {
            spec.split_once(':')
                .and_then(|(k, n)| Some((ObjectKind::from_manifest_key(k)?, n.to_string())))
                .ok_or_else(|| {
                    ConfigError(format!(
                        "--hidden-object `{spec}` is not KIND:NAME (KIND like scheduleGroup, userPrompt)"
                    ))
                })
        })
        .collect::<Result<_, _>>()?;
    Ok(())
}

/// The knobs that change the org or its listing while a client lists it, and the org's identity,
/// hidden divisions and export jobs.
fn apply_listing_knobs(config: &mut SimConfig, args: &SimArgs) {
    config.organization["thirdPartyOrgName"] = args.org_short_name.clone().into();
    config.hidden_flows = generate_org(args.hidden_flows, args.seed.wrapping_add(7), false);
    config.flow_search_denied = args.deny_flow_search;
    config.export_jobs_throttled = args.export_jobs_throttled;
    config.fail_checkin = args.fail_checkin.clone();
    config.fail_publish = args.fail_publish.clone();
    config.oversize_from_page = args.oversize_from_page.max(1);
    config.deleted_answers_gone = args.deleted_answers_gone;
    config.revoke_after_requests = args.revoke_after_requests;
    config.malformed_rows = (0..args.malformed_rows)
        .map(|i| {
            if i % 2 == 0 {
                json!(i)
            } else {
                json!({"name": format!("row without an id {i}")})
            }
        })
        .collect();
    if args.delete_while_listing > 0 || args.create_while_listing > 0 {
        config.listing_changes = vec![ListingChange {
            after_pages: 1,
            delete: config
                .flows
                .iter()
                .take(args.delete_while_listing)
                .map(|f| f.id().to_string())
                .collect(),
            create: generate_org(args.create_while_listing, args.seed.wrapping_add(1), false),
        }];
    }
}

/// Serves until the process is stopped.
pub async fn run(args: &SimArgs) -> Outcome {
    let config = sim_config(args).map_err(CommandError::fatal)?;
    let ip: std::net::IpAddr = args
        .bind
        .parse()
        .map_err(|_| CommandError::fatal(format!("--bind `{}` is not an IP address", args.bind)))?;
    let n = config.flows.len();
    let architect: Vec<String> = ObjectKind::ARCHITECT
        .iter()
        .filter_map(|k| {
            Some(format!(
                "{} {}",
                config.objects.of_kind(*k).count(),
                k.architect_name()?
            ))
        })
        .collect();
    let client_id = config.client_id.clone();
    let server = SimServer::start(config, SocketAddr::new(ip, args.port))
        .await
        .map_err(|e| CommandError::fatal(format!("cannot listen on {}:{}: {e}", args.bind, args.port)))?;
    let mut out = std::io::stdout();
    writeln!(out, "flowvault sim listening on {}", server.url())?;
    writeln!(
        out,
        "  {n} flows; client id `{client_id}`; token endpoint {}/oauth/token",
        server.url()
    )?;
    writeln!(out, "  Architect objects: {}", architect.join(", "))?;
    writeln!(
        out,
        "  export it with: FLOWVAULT_API_URL={} GENESYSCLOUD_OAUTHCLIENT_ID=... GENESYSCLOUD_OAUTHCLIENT_SECRET=... flowvault export",
        server.url()
    )?;
    out.flush()?;
    wait_for_signal().await;
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM or SIGINT.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn config(flags: &[&str]) -> Result<SimConfig, ConfigError> {
        let args = ["flowvault", "sim", "--flows", "21"].iter().chain(flags);
        match Cli::parse_from(args).command {
            Command::Sim(args) => sim_config(&args),
            _ => unreachable!("sim parses as sim"),
        }
    }

    #[test]
    fn the_bench_catalogue_flag_sizes_the_architect_objects() {
        let c = config(&["--bench-catalogue", "--ivrs", "12"]).unwrap();
        assert_eq!(c.objects.of_kind(ObjectKind::UserPrompt).count(), 300);
        assert_eq!(c.objects.audio.len(), 900);
        assert_eq!(c.objects.rows.values().map(Vec::len).sum::<usize>(), 20_000);
        assert_eq!(c.objects.of_kind(ObjectKind::Ivr).count(), 12);
    }

    #[test]
    fn the_architect_knobs_reach_the_org() {
        let c = config(&[
            "--media-url-ttl",
            "5",
            "--deny-permission",
            "routing:callRoute:view",
            "--transcode-polls",
            "4",
            "--transcode-fail",
            "Welcome",
            "--outcome-delay",
            "2s",
            "--object-write-fault",
            "prompts:503",
            "--hidden-object",
            "scheduleGroup:Support Hours",
        ])
        .unwrap();
        assert_eq!(c.media_url_ttl, Duration::from_secs(5));
        assert!(c.denied_permissions.contains("routing:callRoute:view"));
        assert_eq!(
            (c.transcode_polls, c.outcome_visibility_delay),
            (4, Duration::from_secs(2))
        );
        assert!(c.transcode_fail.contains("Welcome"));
        assert_eq!(c.object_write_faults[0].kind, ObjectKind::UserPrompt);
        assert_eq!(c.object_write_faults[0].status, 503);
        assert_eq!(
            c.hidden_objects,
            vec![(ObjectKind::ScheduleGroup, "Support Hours".to_string())]
        );
    }

    #[test]
    fn an_org_without_architect_objects_keeps_the_rest() {
        let c = config(&["--rebuilt-objects", "--no-architect-objects"]).unwrap();
        assert!(c.objects.objects.iter().all(|o| !o.kind.is_architect()));
        assert!(c.objects.of_kind(ObjectKind::Queue).count() > 0);
    }

    #[test]
    fn an_unknown_object_write_fault_kind_is_a_one_line_error() {
        let e = config(&["--object-write-fault", "flows:500"]).unwrap_err();
        assert!(
            e.to_string().contains("--object-write-fault") && !e.to_string().contains('\n'),
            "{e}"
        );
    }
}
