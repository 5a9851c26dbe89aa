//! Applying a plan: per flow, lock (unlocking first with `--force-unlock`), save the archived
//! configuration, check in and, with `publish`, publish, following each operation to its end.

use serde_json::Value;
use tracing::{info, warn};

use super::{Action, FlowRestore, RestoreOptions, RestoreReport, Versions};
use crate::genesys::write::{FlowAction, Operation};
use crate::genesys::{ApiError, GenesysClient};

/// Applies every `update` and `create` of `report`; each flow's outcome says what happened. An
/// `Err` is a run-level failure (credentials); flows not reached stay `planned`.
pub async fn apply(
    client: &GenesysClient,
    report: &mut RestoreReport,
    options: &RestoreOptions,
) -> Result<(), ApiError> {
    report.applied = true;
    report.published = options.publish;
    for f in report
        .flows
        .iter_mut()
        .filter(|f| matches!(f.action, Action::Update | Action::Create))
    {
        match apply_one(client, f, options).await {
            Ok(()) => {
                f.outcome = "done".into();
                info!(flow_id = %f.id, new_id = ?f.new_id, "restored flow {} ({})", f.id, f.name);
            }
            Err(e) if e.is_fatal_for_run() => {
                f.outcome = "failed".into();
                f.error = Some(e.to_string());
                return Err(e);
            }
            Err(e) => {
                warn!(flow_id = %f.id, "could not restore flow {} ({}): {e}", f.id, f.name);
                f.outcome = "failed".into();
                f.error = Some(e.to_string());
            }
        }
    }
    Ok(())
}

async fn apply_one(client: &GenesysClient, f: &mut FlowRestore, options: &RestoreOptions) -> Result<(), ApiError> {
    let id = match f.action {
        Action::Create => {
            let created = client
                .create_flow(&f.name, &f.flow_type, &f.description, f.division_id.as_deref())
                .await?;
            let id = created
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            f.new_id = Some(id.clone());
            id
        }
        _ => f.id.clone(),
    };
    if f.locked_by_other {
        client.flow_action(FlowAction::Unlock, &id, None).await?;
    }
    // A just-created flow may already be locked to its creator (unconfirmed): a refused checkout
    // is then not an error, and the save says whether the lock is held.
    match client.flow_action(FlowAction::Checkout, &id, None).await {
        Ok(_) => {}
        Err(e) if f.action == Action::Create && !e.is_fatal_for_run() => {
            warn!(flow_id = %id, "checkout of the new flow was refused ({e}); saving anyway");
        }
        Err(e) => return Err(e),
    }
    client.save_version(&id, f.configuration.clone()).await?;
    run_operation(client, &id, FlowAction::Checkin, options).await?;
    if options.publish {
        run_operation(client, &id, FlowAction::Publish, options).await?;
    }
    f.versions_after = Some(Versions::of(&client.flow(&id).await?));
    Ok(())
}

/// Starts a check-in or publish and follows it; a FAILURE carries the API's error code.
async fn run_operation(
    client: &GenesysClient,
    id: &str,
    action: FlowAction,
    options: &RestoreOptions,
) -> Result<Operation, ApiError> {
    let started = client.flow_action(action, id, None).await?;
    let op: Operation = serde_json::from_value(started.clone()).unwrap_or(Operation {
        id: None,
        action_name: None,
        action_status: None,
        complete: false,
        error_code: None,
        error_message: None,
    });
    let action_name = format!("{action:?}").to_uppercase();
    let done = if op.complete {
        op
    } else {
        client
            .wait_operation(id, op.id.as_deref(), &action_name, options.operation_timeout)
            .await?
    };
    if done.succeeded() {
        Ok(done)
    } else {
        Err(ApiError::Rejected {
            url: format!(
                "/api/v2/flows/actions/{}?flow={id}",
                format!("{action:?}").to_lowercase()
            ),
            status: 200,
            message: format!(
                "{:?} ended {}: {} {}",
                action,
                done.action_status.as_deref().unwrap_or("?"),
                done.error_code.as_deref().unwrap_or("(no error code)"),
                done.error_message.as_deref().unwrap_or("")
            ),
            correlation_id: None,
        })
    }
}
