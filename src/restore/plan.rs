//! The plan: each selected flow against the target org's current state.

use serde_json::Value;
use tracing::info;

use super::{Action, FlowRestore, Loaded, RestoreError, RestoreOptions, RestoreReport, Versions, load, split_document};
use crate::archive::RunHandle;
use crate::genesys::write::name_problem;
use crate::genesys::{ApiError, GenesysClient};
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
    let loaded = load(run, manifest, options).await?;
    let target = client.organization().await.ok();
    let other_org = match (&manifest.organization, &target) {
        (Some(a), Some(t)) if a.id != t.id => {
            if !options.to_other_org {
                return Err(RestoreError::OtherOrg {
                    archive: a.describe(),
                    target: t.describe(),
                });
            }
            true
        }
        (None, _) | (_, None) => options.to_other_org,
        _ => false,
    };
    let mut flows = Vec::with_capacity(loaded.len());
    for l in &loaded {
        flows.push(plan_one(client, l, options, other_org).await?);
    }
    info!(flows = flows.len(), "restore planned");
    Ok(RestoreReport {
        run: run.location.clone(),
        archive_org: manifest.organization.clone(),
        target_org: target,
        applied: false,
        published: false,
        flows,
    })
}

async fn plan_one(
    client: &GenesysClient,
    l: &Loaded<'_>,
    options: &RestoreOptions,
    other_org: bool,
) -> Result<FlowRestore, RestoreError> {
    let row = l.row;
    let Some((configuration, archived_flow)) = split_document(&l.body) else {
        return Err(RestoreError::Corrupt {
            id: row.id.clone(),
            name: row.name.clone(),
            path: l.doc.path.clone(),
            why: "not a {\"flow\", \"configuration\"} document".into(),
        });
    };
    let text = |k: &str| archived_flow.get(k).and_then(Value::as_str).map(str::to_string);
    let f = FlowRestore {
        id: row.id.clone(),
        name: row.name.clone(),
        flow_type: row.flow_type.clone(),
        content: l.content,
        archived_version: l.doc.version.clone(),
        action: Action::Update,
        reason: None,
        dependencies: if other_org {
            dependencies(&configuration)
        } else {
            Vec::new()
        },
        versions_before: Versions::default(),
        versions_after: None,
        new_id: None,
        outcome: "planned".into(),
        error: None,
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
        configuration,
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
    f.outcome = "conflict".into();
    f.reason = Some(reason);
    f
}

/// Who else holds the flow's lock, if anyone.
fn locked_by_other(client: &GenesysClient, meta: &Value) -> Option<String> {
    if let Some(user) = meta.get("lockedUser").filter(|u| !u.is_null()) {
        let who = user
            .get("name")
            .or_else(|| user.get("id"))
            .and_then(Value::as_str)
            .unwrap_or("a user");
        return Some(format!("user {who}"));
    }
    match meta.pointer("/lockedClient/id").and_then(Value::as_str) {
        Some(c) if c != client.client_id() => Some(format!("OAuth client {c}")),
        _ => None,
    }
}

async fn plan_existing(
    client: &GenesysClient,
    mut f: FlowRestore,
    meta: &Value,
    options: &RestoreOptions,
) -> Result<FlowRestore, RestoreError> {
    f.versions_before = Versions::of(meta);
    if let Some(who) = locked_by_other(client, meta) {
        if !options.force_unlock {
            return Ok(conflict(
                f,
                format!("locked by {who} (pass --force-unlock to take the lock)"),
            ));
        }
        f.locked_by_other = true;
        f.reason = Some(format!("locked by {who}: will be unlocked (--force-unlock)"));
    }
    if let Some(op) = meta.get("currentOperation").filter(|o| !o.is_null()) {
        let running = op.get("complete").and_then(Value::as_bool) == Some(false);
        let name = op.get("actionName").and_then(Value::as_str).unwrap_or("an operation");
        if running && name != "STATE_CHANGE" {
            return Ok(conflict(
                f,
                format!("{name} is running on it; try again when it completes"),
            ));
        }
    }
    let current = match (f.content, &f.versions_before.published) {
        (Content::Published, Some(v)) => client.version_configuration(&f.id, v).await,
        (Content::Published, None) => Err(ApiError::NotFound {
            url: String::new(),
            status: 404,
            correlation_id: None,
        }),
        _ => client.latest_configuration(&f.id).await,
    };
    match current {
        Ok(c) if same_json(c.body.get().as_bytes(), &f.configuration) => {
            f.action = Action::Unchanged;
            f.outcome = "unchanged".into();
        }
        Ok(_) | Err(ApiError::NotFound { .. }) => {}
        Err(e) if e.is_fatal_for_run() => return Err(e.into()),
        Err(e) => return Ok(conflict(f, format!("its current configuration cannot be read: {e}"))),
    }
    Ok(f)
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
        _ => {
            f.action = Action::Create;
            f.reason = Some(format!(
                "deleted from the org: a new flow with a new id is created; references to the old id {} from other flows break",
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
