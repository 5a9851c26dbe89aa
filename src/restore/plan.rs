//! The plan: each selected flow against the target org's current state.

use serde_json::Value;
use tracing::info;

use super::load::{Loaded, Refused, load};
use super::{
    Action, ContentChoice, FlowOutcome, FlowRestore, RestoreError, RestoreOptions, RestoreReport, Versions,
    split_document,
};
use crate::archive::RunHandle;
use crate::genesys::write::{FlowState, name_problem};
use crate::genesys::{ApiError, GenesysClient, Organization};
use crate::manifest::{Content, Manifest};

/// The largest configuration the API accepts in a save.
pub const MAX_SAVE_BYTES: usize = 6_291_456;

/// Verifies the selected documents and plans each flow against the org; writes nothing.
pub async fn plan(
    client: &GenesysClient,
    run: &RunHandle,
    manifest: &Manifest,
    options: &RestoreOptions,
) -> Result<RestoreReport, RestoreError> {
    plan_with(client, run, manifest, options, &super::architect::IdMap::new()).await
}

/// [`plan`], with the Architect objects' id map (`known`): references to them are re-pointed.
pub async fn plan_with(
    client: &GenesysClient,
    run: &RunHandle,
    manifest: &Manifest,
    options: &RestoreOptions,
    known: &super::architect::IdMap,
) -> Result<RestoreReport, RestoreError> {
    let selected = load(run, manifest, options).await?;
    let (target, unknown) = match client.organization().await {
        Ok(o) => (Some(o), None),
        Err(e) if e.is_fatal_for_run() => return Err(e.into()),
        Err(e) => (None, Some(e.to_string())),
    };
    let archive_org = manifest.organization.as_ref().map(Organization::from);
    let other_org = org_guard(archive_org.as_ref(), target.as_ref(), unknown, options)?;
    let mut flows = Vec::with_capacity(selected.loaded.len() + selected.refused.len());
    // Up to --concurrency flows read at once, in archive order, through the one limiter.
    let planned: Vec<Result<FlowRestore, RestoreError>> = futures::StreamExt::collect(futures::StreamExt::buffered(
        futures::stream::iter(selected.loaded.iter().map(|l| plan_one(client, l, options, other_org))),
        options.concurrency.max(1),
    ))
    .await;
    for p in planned {
        flows.push(p?);
    }
    flows.extend(selected.refused.iter().map(refused));
    super::remap::plan_references_with(client, &mut flows, other_org, known).await?;
    let expected = Some(super::drive::expected(client, &flows, options));
    info!(flows = flows.len(), "restore planned");
    Ok(RestoreReport {
        run: run.location.clone(),
        archive_org,
        target_org: target,
        applied: false,
        published: false,
        interrupted: None,
        flows,
        expected,
        objects: Vec::new(),
        id_map: known.clone(),
        flows_repointed_only: false,
    })
}

/// Fails closed: writing needs both orgs known and equal, unless `--to-other-org`. True when
/// the target is (or may be) another org.
pub(super) fn org_guard(
    archive: Option<&Organization>,
    target: Option<&Organization>,
    unknown: Option<String>,
    options: &RestoreOptions,
) -> Result<bool, RestoreError> {
    match (archive, target) {
        (Some(a), Some(t)) if a.id == t.id => Ok(false),
        _ if options.to_other_org => Ok(true),
        (Some(a), Some(t)) => Err(RestoreError::OtherOrg {
            archive: a.describe(),
            target: t.describe(),
        }),
        (None, _) => Err(RestoreError::OrgUnknown {
            what: "the archive's manifest records no org (an older manifest)".into(),
        }),
        (_, None) => Err(RestoreError::OrgUnknown {
            what: format!(
                "the target org is unknown (GET /api/v2/organizations/me failed: {})",
                unknown.unwrap_or_default()
            ),
        }),
    }
}

/// A flow whose document does not verify: planned as refused, nothing read or written.
fn refused(r: &Refused<'_>) -> FlowRestore {
    FlowRestore {
        id: r.row.id.clone(),
        name: r.row.name.clone(),
        flow_type: r.row.flow_type.clone(),
        content: r.content,
        archived_version: r.doc.version.clone(),
        archived_published: r.row.published_version.is_some(),
        action: Action::Refused,
        reason: Some(format!("its archived document does not verify: {}", r.why)),
        drift: None,
        dependencies: Vec::new(),
        versions_before: Versions::default(),
        versions_after: None,
        new_id: None,
        outcome: FlowOutcome::Refused,
        error: Some(r.why.clone()),
        left_locked: false,
        notes: Vec::new(),
        locked_by_other: false,
        configuration: bytes::Bytes::new(),
        draft: None,
        publishable: false,
        division_id: None,
        description: String::new(),
        repointed: Vec::new(),
        references: Vec::new(),
    }
}

async fn plan_one(
    client: &GenesysClient,
    l: &Loaded<'_>,
    options: &RestoreOptions,
    other_org: bool,
) -> Result<FlowRestore, RestoreError> {
    let row = l.row;
    let parsed = split_document(&l.body).zip(l.draft.as_deref().map_or(Some(None), |d| split_document(d).map(Some)));
    let Some(((configuration, archived_flow), draft)) = parsed else {
        return Ok(refused(&Refused {
            row,
            content: l.content,
            doc: l.doc,
            why: "not a {\"flow\", \"configuration\"} document".into(),
        }));
    };
    let text = |k: &str| archived_flow.get(k).and_then(Value::as_str).map(str::to_string);
    let archived_published = archived_flow
        .pointer("/publishedVersion/id")
        .is_some_and(|v| !v.is_null())
        || row.published_version.is_some();
    let f = FlowRestore {
        id: row.id.clone(),
        name: row.name.clone(),
        flow_type: row.flow_type.clone(),
        content: l.content,
        archived_version: l.doc.version.clone(),
        archived_published,
        action: Action::Update,
        reason: None,
        drift: None,
        dependencies: if other_org {
            dependencies(&configuration)
        } else {
            Vec::new()
        },
        versions_before: Versions::default(),
        versions_after: None,
        new_id: None,
        outcome: FlowOutcome::Planned,
        error: None,
        left_locked: false,
        notes: Vec::new(),
        locked_by_other: false,
        division_id: if other_org {
            None
        } else {
            archived_flow
                .pointer("/division/id")
                .and_then(Value::as_str)
                .map(str::to_string)
        },
        description: text("description").unwrap_or_default(),
        draft: draft.map(|(c, _)| c),
        publishable: archived_published,
        configuration,
        repointed: Vec::new(),
        references: Vec::new(),
    };
    if f.configuration.len() > MAX_SAVE_BYTES {
        return Ok(conflict(
            f,
            format!(
                "the configuration is {} bytes; the API refuses saves over {MAX_SAVE_BYTES}",
                l.body.len()
            ),
        ));
    }
    match client.flow(&row.id).await {
        Ok(meta) if meta.get("deleted").and_then(Value::as_bool) != Some(true) => {
            plan_existing(client, f, &meta, options).await
        }
        Ok(_) | Err(ApiError::NotFound { .. }) => plan_create(client, f).await,
        Err(e) if e.is_fatal_for_run() => Err(e.into()),
        Err(e) => Ok(conflict(f, format!("the flow cannot be read: {e}"))),
    }
}

fn conflict(mut f: FlowRestore, reason: String) -> FlowRestore {
    f.action = Action::Conflict;
    f.outcome = FlowOutcome::Conflict;
    f.reason = Some(reason);
    f
}

async fn plan_existing(
    client: &GenesysClient,
    mut f: FlowRestore,
    meta: &Value,
    options: &RestoreOptions,
) -> Result<FlowRestore, RestoreError> {
    f.versions_before = Versions::of(meta);
    let state = FlowState::of(meta.clone(), client.client_id());
    if let Some(who) = state.locked_by_other {
        if !options.force_unlock {
            return Ok(conflict(
                f,
                format!("locked by {who} (pass --force-unlock to take the lock)"),
            ));
        }
        f.locked_by_other = true;
        f.reason = Some(format!("locked by {who}: will be unlocked (--force-unlock)"));
    }
    if let Some(op) = state.operation.as_ref().filter(|o| !o.complete) {
        let name = op.action_name.as_deref().unwrap_or("an operation");
        if name != "STATE_CHANGE" {
            return Ok(conflict(
                f,
                format!("{name} is running on it; try again when it completes"),
            ));
        }
    }
    let published = match (f.content, &f.versions_before.published) {
        (Content::Published, Some(v)) => same_as(client.version_configuration(&f.id, v).await, &f.configuration),
        (Content::Published, None) => Ok(false),
        _ => same_as(client.latest_configuration(&f.id).await, &f.configuration),
    };
    let published = match published {
        Ok(same) => same,
        Err(e) if e.is_fatal_for_run() => return Err(e.into()),
        Err(e) => return Ok(conflict(f, format!("its current configuration cannot be read: {e}"))),
    };
    let org_has_draft = f.versions_before.saved.is_some() && f.versions_before.saved != f.versions_before.published;
    let mut latest_same = true;
    if options.content == ContentChoice::Both && f.content == Content::Published && org_has_draft {
        let archived_latest = f.draft.clone().unwrap_or_else(|| f.configuration.clone());
        latest_same = match same_as(client.latest_configuration(&f.id).await, &archived_latest) {
            Ok(same) => same,
            Err(e) if e.is_fatal_for_run() => return Err(e.into()),
            Err(e) => return Ok(conflict(f, format!("its draft cannot be read: {e}"))),
        };
    }
    match (published, latest_same) {
        (true, true) => {
            f.action = Action::Unchanged;
            f.outcome = FlowOutcome::Unchanged;
        }
        (true, false) => {
            // Only the draft differs: save it (never published), leave the published version.
            f.configuration = f.draft.take().unwrap_or(f.configuration);
            f.publishable = false;
        }
        _ => {}
    }
    f.drift = drift(&f, options.content, org_has_draft);
    Ok(f)
}

/// Whether a configuration read from the org equals `archived` (a missing one does not).
fn same_as(current: Result<crate::genesys::client::Fetched, ApiError>, archived: &[u8]) -> Result<bool, ApiError> {
    match current {
        Ok(c) => Ok(same_json(c.body.get().as_bytes(), archived)),
        Err(ApiError::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// What the org holds that this restore does not restore: a draft newer than the published
/// version, when only the published configuration is restored.
fn drift(f: &FlowRestore, choice: ContentChoice, org_has_draft: bool) -> Option<String> {
    if !org_has_draft || choice != ContentChoice::Published || f.content != Content::Published {
        return None;
    }
    let saved = f.versions_before.saved.as_deref().unwrap_or("?");
    Some(match f.action {
        Action::Unchanged => format!(
            "the org holds a newer draft (saved version {saved}) that this restore leaves alone; --content latest or both restores the archived draft over it"
        ),
        _ => format!(
            "the org holds a newer draft (saved version {saved}): saving the archived configuration makes it an older version; --content both also restores the archived draft"
        ),
    })
}

async fn plan_create(client: &GenesysClient, mut f: FlowRestore) -> Result<FlowRestore, RestoreError> {
    if let Some(why) = name_problem(&f.name) {
        return Ok(conflict(
            f,
            format!("it must be re-created, but its name is not allowed: {why}"),
        ));
    }
    match client.flows_named(&f.name, &f.flow_type).await {
        Ok(others) if !others.is_empty() => {
            let other = others[0].get("id").and_then(Value::as_str).unwrap_or("?");
            let why = format!(
                "it must be re-created, but another {} flow is named {:?} (id {other})",
                f.flow_type, f.name
            );
            Ok(conflict(f, why))
        }
        Err(e) if e.is_fatal_for_run() => Err(e.into()),
        Err(e) => Ok(conflict(
            f,
            format!("it must be re-created, but whether its name is taken cannot be read: {e}"),
        )),
        Ok(_) => {
            f.action = Action::Create;
            f.reason = Some(format!(
                "not in the org: a new flow with a new id is created; flows restored with it re-point their references to the old id {}, others still name it",
                f.id
            ));
            Ok(f)
        }
    }
}

/// Byte-equal, or equal as JSON values.
fn same_json(a: &[u8], b: &[u8]) -> bool {
    a == b
        || matches!(
            (serde_json::from_slice::<Value>(a), serde_json::from_slice::<Value>(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

/// What a configuration's inline `manifest` says it depends on: `type name (id)` per entry.
pub fn dependencies(configuration: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<Value>(configuration) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(m) = v.get("manifest").and_then(Value::as_object) {
        for (kind, entries) in m {
            for e in entries.as_array().into_iter().flatten() {
                let name = e.get("name").and_then(Value::as_str).unwrap_or("?");
                let id = e.get("id").and_then(Value::as_str).unwrap_or("?");
                out.push(format!("{kind} {name:?} ({id})"));
            }
        }
    }
    out
}
