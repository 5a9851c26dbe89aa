//! A whole restore: the Architect objects `--kinds` names and the flows, planned together (one
//! id map) and applied in dependency order — schedules, schedule groups, prompts, data tables,
//! outcomes, milestones, emergency groups without IVRs, then the flows, then IVRs and the
//! emergency groups' IVRs. When flows are not restored but objects they use are re-created, the
//! flows that name them are re-pointed: the org's own configuration is saved again with the new
//! ids (and published again where it was published), nothing else of it changes.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;

use super::architect::{self, IdMap, plan::Listings};
use super::{Action, FlowOutcome, FlowRestore, RestoreError, RestoreOptions, RestoreReport, Selection};
use crate::archive::RunHandle;
use crate::export::StopSignal;
use crate::genesys::{ApiError, GenesysClient, Organization};
use crate::manifest::Manifest;

/// Plans the restore of the selected kinds; writes nothing.
pub async fn plan_all(
    client: &GenesysClient,
    run: &RunHandle,
    manifest: &Manifest,
    options: &RestoreOptions,
) -> Result<RestoreReport, RestoreError> {
    let kinds = &options.architect.kinds;
    if kinds.is_empty() {
        return super::plan(client, run, manifest, options).await;
    }
    let (target, unknown) = match client.organization().await {
        Ok(o) => (Some(o), None),
        Err(e) if e.is_fatal_for_run() => return Err(e.into()),
        Err(e) => (None, Some(e.to_string())),
    };
    let archive_org = manifest.organization.as_ref().map(Organization::from);
    let other_org = super::plan::org_guard(archive_org.as_ref(), target.as_ref(), unknown, options)?;
    let (archived, refused) = architect::load::load_objects(run, &manifest.objects, kinds).await?;
    if !options.flows && archived.is_empty() && refused.is_empty() {
        let named: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        return Err(RestoreError::NoObjects(named.join(",")));
    }
    let mut listings = Listings::default();
    let (mut objects, mut map) = architect::plan_objects(client, archived, refused, &mut listings, other_org).await?;
    let mut report = if options.flows {
        super::plan::plan_with(client, run, manifest, options, &map).await?
    } else {
        repoint_flows(client, run, manifest, options, &map, other_org).await?
    };
    report.archive_org = archive_org;
    report.target_org = target;
    architect::resolve_flow_refs(client, &mut objects, &mut map, &report.flows, other_org).await?;
    architect::plan::plan_repoints(client, &mut objects, &map, &mut listings).await?;
    architect::plan::decide(&mut objects, &map, &listings, &options.architect);
    let position = |k: architect::ArchitectKind| architect::ArchitectKind::ALL.iter().position(|x| *x == k);
    objects.sort_by_key(|o| position(o.kind));
    report.objects = objects;
    report.id_map = map;
    Ok(report)
}

/// A report with no flow.
fn empty_report(run: &RunHandle, map: &IdMap) -> RestoreReport {
    RestoreReport {
        run: run.location.clone(),
        archive_org: None,
        target_org: None,
        applied: false,
        published: false,
        interrupted: None,
        flows: Vec::new(),
        expected: None,
        objects: Vec::new(),
        id_map: map.clone(),
        flows_repointed_only: true,
    }
}

/// The archived flows that name an object this restore re-creates (or finds under another id),
/// planned as re-points of the org's own configuration.
async fn repoint_flows(
    client: &GenesysClient,
    run: &RunHandle,
    manifest: &Manifest,
    options: &RestoreOptions,
    map: &IdMap,
    other_org: bool,
) -> Result<RestoreReport, RestoreError> {
    let changed = architect::changed_ids(map);
    if changed.is_empty() {
        return Ok(empty_report(run, map));
    }
    let all = RestoreOptions {
        selection: Selection {
            all: true,
            ..Selection::default()
        },
        ..options.clone()
    };
    let ids = match super::load::load(run, manifest, &all).await {
        Ok(selected) => naming(&selected.loaded, &changed),
        Err(RestoreError::NothingSelected) => Vec::new(),
        Err(e) => return Err(e),
    };
    if ids.is_empty() {
        return Ok(empty_report(run, map));
    }
    let only = RestoreOptions {
        selection: Selection {
            ids,
            ..Selection::default()
        },
        ..options.clone()
    };
    let mut report = super::plan::plan_with(client, run, manifest, &only, map).await?;
    report.flows_repointed_only = true;
    for f in report.flows.iter_mut() {
        org_configuration(client, f, &changed).await?;
    }
    super::remap::plan_references_with(client, &mut report.flows, other_org, map).await?;
    Ok(report)
}

/// Ids of the loaded flows whose configuration's manifest names one of `changed`.
fn naming(loaded: &[super::load::Loaded<'_>], changed: &BTreeSet<String>) -> Vec<String> {
    loaded
        .iter()
        .filter(|l| {
            super::split_document(&l.body)
                .is_some_and(|(c, _)| super::remap::references(&c).iter().any(|r| changed.contains(&r.id)))
        })
        .map(|l| l.row.id.clone())
        .collect()
}

/// Replaces a re-point flow's configuration by the org's own (published where it is published,
/// else the latest), so only the ids change.
async fn org_configuration(
    client: &GenesysClient,
    f: &mut FlowRestore,
    changed: &BTreeSet<String>,
) -> Result<(), RestoreError> {
    if matches!(f.action, Action::Conflict | Action::Refused) {
        return Ok(());
    }
    if f.action == Action::Create {
        f.action = Action::Conflict;
        f.outcome = FlowOutcome::Conflict;
        f.reason = Some("it names an object this restore re-creates, but it is not in the org either; restore it with --kinds flows".into());
        return Ok(());
    }
    let current = match &f.versions_before.published {
        Some(v) => client.version_configuration(&f.id, v).await,
        None => client.latest_configuration(&f.id).await,
    };
    let current = match current {
        Ok(c) => Bytes::from(c.body.get().as_bytes().to_vec()),
        Err(e) if e.is_fatal_for_run() => return Err(e.into()),
        Err(e) => {
            f.action = Action::Conflict;
            f.outcome = FlowOutcome::Conflict;
            f.reason = Some(format!("its configuration in the org cannot be read: {e}"));
            return Ok(());
        }
    };
    f.repointed.clear();
    f.draft = None;
    f.drift = None;
    f.publishable = f.versions_before.published.is_some();
    if !super::remap::references(&current)
        .iter()
        .any(|r| changed.contains(&r.id))
    {
        f.action = Action::Unchanged;
        f.outcome = FlowOutcome::Unchanged;
        f.reason = Some("its configuration in the org no longer names what this restore re-creates".into());
    } else {
        f.action = Action::Update;
        f.outcome = FlowOutcome::Planned;
        f.reason = Some(
            "re-point: the org's own configuration saved again with the new ids (published again where it was published)"
                .into(),
        );
    }
    f.configuration = current;
    Ok(())
}

/// Applies the plan in dependency order around the flows. `Err`: a run-level failure.
pub async fn apply_all(
    client: &GenesysClient,
    report: &mut RestoreReport,
    options: &RestoreOptions,
    stop: &StopSignal,
) -> Result<(), ApiError> {
    report.applied = true;
    let same_org = matches!((&report.archive_org, &report.target_org), (Some(a), Some(t)) if a.id == t.id);
    let map = report.id_map.clone();
    let mut created: HashMap<String, String> = HashMap::new();
    let mut ids = architect::apply::Ids {
        map: &map,
        created: &mut created,
    };
    architect::apply_before_flows(
        client,
        &mut report.objects,
        &mut ids,
        &options.architect,
        stop,
        same_org,
    )
    .await?;
    let flow_options = RestoreOptions {
        publish: options.publish || report.flows_repointed_only,
        ..options.clone()
    };
    let seed = ids.created.clone();
    super::drive::apply_in_order_seeded(client, report, &flow_options, stop, seed).await?;
    report.published = options.publish;
    for f in &report.flows {
        if let Some(n) = &f.new_id {
            ids.created.insert(f.id.clone(), n.clone());
        }
    }
    architect::apply_after_flows(
        client,
        &mut report.objects,
        &mut ids,
        &options.architect,
        stop,
        same_org,
    )
    .await?;
    if report.interrupted.is_none() {
        report.interrupted = stop.cause().map(|c| c.to_string());
    }
    Ok(())
}
