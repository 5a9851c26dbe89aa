//! Applying a plan, one flow at a time through [`restore_flow`]: create (for a deleted flow),
//! lock, save the archived configuration, check in and (with `--publish`, for flows the archive
//! holds as published) publish.
//!
//! Every write is sent once. When its outcome is unknown (a 5xx, a timeout) the flow is read back
//! — by name and type after a create; its lock, `savedVersion`, `checkedInVersion`,
//! `publishedVersion` and `currentOperation` after the rest — and the restore continues from what
//! happened. Each step is judged by the flow's versions afterwards, `versions_after` is always
//! read, and a lock flowvault took is given back whenever the flow does not end restored (the
//! report says so if it cannot be). A stop (a signal) is honoured between flows, and before the
//! save of the flow in hand, whose lock is then given back.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tracing::{info, warn};

use super::{Action, FlowOutcome, FlowRestore, RestoreOptions, RestoreReport, Versions};
use crate::export::StopSignal;
use crate::genesys::write::{FlowAction, FlowState, Settled, Tracked};
use crate::genesys::{ApiError, GenesysClient};

/// Applies every `update` and `create` of `report`; each flow's outcome says what happened, and
/// flows a stop or a run-level failure kept from being written are `not attempted`. An `Err` is a
/// run-level failure (credentials).
pub async fn apply(
    client: &GenesysClient,
    report: &mut RestoreReport,
    options: &RestoreOptions,
    stop: &StopSignal,
) -> Result<(), ApiError> {
    super::drive::apply_in_order(client, report, options, stop).await
}

/// Why a step did not go through.
enum StepError {
    /// The whole run cannot go on (credentials).
    Fatal(ApiError),
    /// This flow failed; the message says which step and why.
    Failed(String),
}

impl From<ApiError> for StepError {
    fn from(e: ApiError) -> Self {
        if e.is_fatal_for_run() {
            StepError::Fatal(e)
        } else {
            StepError::Failed(e.to_string())
        }
    }
}

/// How the steps ended when they did not fail.
enum Ended {
    /// Restored.
    Done,
    /// Stopped before the save: nothing of the flow was written.
    Stopped,
}

/// The flow in hand: its id in the org, and whether flowvault took its lock.
#[derive(Default)]
struct InHand {
    id: Option<String>,
    locked: bool,
}

/// Restores one flow safely (create or lock → save → check in → publish, with recovery) and
/// records its outcome, `versions_after` and any lock left behind in `f`. `Err` only for a
/// run-level failure (credentials); a concurrent driver may call it for different flows at once.
pub async fn restore_flow(
    client: &GenesysClient,
    f: &mut FlowRestore,
    options: &RestoreOptions,
    stop: &StopSignal,
) -> Result<(), ApiError> {
    let mut hand = InHand::default();
    let result = steps(client, f, options, stop, &mut hand).await;
    let fatal = match result {
        Ok(Ended::Done) => {
            f.outcome = FlowOutcome::Done;
            info!(flow_id = %f.id, new_id = ?f.new_id, "restored flow {} ({})", f.id, f.name);
            None
        }
        Ok(Ended::Stopped) => {
            f.outcome = FlowOutcome::NotAttempted;
            f.notes
                .push("the restore was stopped before this flow's configuration was saved".into());
            None
        }
        Err(StepError::Failed(why)) => {
            warn!(flow_id = %f.id, "could not restore flow {} ({}): {why}", f.id, f.name);
            f.outcome = FlowOutcome::Failed;
            f.error = Some(why);
            None
        }
        Err(StepError::Fatal(e)) => {
            f.outcome = FlowOutcome::Failed;
            f.error = Some(e.to_string());
            Some(e)
        }
    };
    if fatal.is_none()
        && let Some(id) = hand.id.clone()
    {
        settle_lock_and_versions(client, f, &id, hand.locked).await;
    }
    fatal.map_or(Ok(()), Err)
}

async fn steps(
    client: &GenesysClient,
    f: &mut FlowRestore,
    options: &RestoreOptions,
    stop: &StopSignal,
    hand: &mut InHand,
) -> Result<Ended, StepError> {
    let id = match (f.action, f.new_id.clone()) {
        (Action::Create, Some(created)) => created,
        (Action::Create, None) => create(client, f).await?,
        _ => f.id.clone(),
    };
    hand.id = Some(id.clone());
    let before = client.flow_state(&id).await?;
    take_lock(client, f, &id, &before, hand).await?;
    // A flow just created is finished rather than left empty in the org.
    if stop.cause().is_some() && f.action != Action::Create {
        return Ok(Ended::Stopped);
    }
    let saved = save(client, &id, f.configuration.clone(), before.saved.as_deref()).await?;
    operate(client, &id, FlowAction::Checkin, &saved, options.operation_timeout).await?;
    if options.publish && f.publishable {
        operate(client, &id, FlowAction::Publish, &saved, options.operation_timeout).await?;
    } else if options.publish {
        f.notes
            .push("not published: the archive holds it as never published (or restores only its draft)".into());
    }
    if let Some(draft) = f.draft.clone() {
        let now = client.flow_state(&id).await?;
        take_lock(client, f, &id, &now, hand).await?;
        let saved = save(client, &id, draft, now.saved.as_deref()).await?;
        operate(client, &id, FlowAction::Checkin, &saved, options.operation_timeout).await?;
        f.notes.push(format!(
            "the archived draft was saved over it as version {saved} (not published)"
        ));
    }
    Ok(Ended::Done)
}

/// Records a step's failure on the flow; `Err` only for a run-level failure.
fn record(f: &mut FlowRestore, result: Result<(), StepError>) -> Result<(), ApiError> {
    match result {
        Ok(()) => Ok(()),
        Err(StepError::Failed(why)) => {
            warn!(flow_id = %f.id, "could not restore flow {} ({}): {why}", f.id, f.name);
            f.outcome = FlowOutcome::Failed;
            f.error = Some(why);
            Ok(())
        }
        Err(StepError::Fatal(e)) => {
            f.outcome = FlowOutcome::Failed;
            f.error = Some(e.to_string());
            Err(e)
        }
    }
}

/// Creates a flow the plan re-creates ahead of every save, so each new id is known before its
/// callers — and the other flows of its cycle — are saved. A failure is recorded on the flow.
pub(super) async fn create_ahead(client: &GenesysClient, f: &mut FlowRestore) -> Result<(), ApiError> {
    let created = create(client, f).await.map(|_| ());
    record(f, created)
}

/// Publishes a flow of a cycle once every flow of the cycle is saved and checked in.
pub(super) async fn publish_after_cycle(
    client: &GenesysClient,
    f: &mut FlowRestore,
    options: &RestoreOptions,
) -> Result<(), ApiError> {
    let id = f.new_id.clone().unwrap_or_else(|| f.id.clone());
    let saved = f
        .versions_after
        .as_ref()
        .and_then(|v| v.checked_in.clone().or(v.saved.clone()));
    let Some(saved) = saved else {
        return record(f, Err(StepError::Failed("no saved version to publish".into())));
    };
    let published = operate(client, &id, FlowAction::Publish, &saved, options.operation_timeout).await;
    let result = record(f, published);
    if let Ok(state) = client.flow_state(&id).await {
        f.versions_after = Some(Versions::of(&state.meta));
    }
    result
}

/// Gives back the lock on a flow created ahead but never saved (a stop, or a callee that failed).
pub(super) async fn give_back(client: &GenesysClient, f: &mut FlowRestore) {
    if let Some(id) = f.new_id.clone() {
        settle_lock_and_versions(client, f, &id, true).await;
    }
}

/// Creates the flow. When the create's outcome is unknown, the flow is looked up by name and
/// type (the plan found none, so one found now is the one created); it is never resent.
async fn create(client: &GenesysClient, f: &mut FlowRestore) -> Result<String, StepError> {
    let reason = match client
        .create_flow(&f.name, &f.flow_type, &f.description, f.division_id.as_deref())
        .await
    {
        Ok(id) => {
            f.new_id = Some(id.clone());
            return Ok(id);
        }
        Err(ApiError::OutcomeUnknown { reason, .. }) => reason,
        Err(e) => return Err(e.into()),
    };
    // Listings can lag writes by seconds: look a few times before concluding it did not happen.
    for wait in [0u64, 1, 2, 4] {
        tokio::time::sleep(Duration::from_secs(wait)).await;
        let found = client.flows_named(&f.name, &f.flow_type).await?;
        let ids: Vec<&str> = found
            .iter()
            .filter_map(|v| v.get("id").and_then(Value::as_str))
            .collect();
        match ids.as_slice() {
            [] => continue,
            [id] => {
                f.new_id = Some(id.to_string());
                f.notes.push(format!(
                    "the create got no clear answer ({reason}); the flow it made was found by name and used"
                ));
                return Ok(id.to_string());
            }
            many => {
                return Err(StepError::Failed(format!(
                    "the create got no clear answer ({reason}) and {} {} flows are now named {:?}: {}; resolve by hand",
                    many.len(),
                    f.flow_type,
                    f.name,
                    many.join(", ")
                )));
            }
        }
    }
    Err(StepError::Failed(format!(
        "the create got no clear answer ({reason}) and no {} flow named {:?} exists after it; it was not resent: run the restore again",
        f.flow_type, f.name
    )))
}

/// Takes the flow's lock (unlocking someone else's first with `--force-unlock`).
async fn take_lock(
    client: &GenesysClient,
    f: &FlowRestore,
    id: &str,
    state: &FlowState,
    hand: &mut InHand,
) -> Result<(), StepError> {
    if state.locked_by_me {
        hand.locked = true;
        return Ok(());
    }
    if let Some(who) = &state.locked_by_other {
        if !f.locked_by_other {
            return Err(StepError::Failed(format!(
                "locked by {who} since the plan was made; not touched"
            )));
        }
        match client.flow_action(FlowAction::Unlock, id).await {
            Ok(_) | Err(ApiError::OutcomeUnknown { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    match client.flow_action(FlowAction::Checkout, id).await {
        Ok(_) => {}
        Err(ApiError::OutcomeUnknown { reason, .. }) => {
            if !client.flow_state(id).await?.locked_by_me {
                return Err(StepError::Failed(format!(
                    "the checkout got no clear answer ({reason}) and the flow is not locked to this client"
                )));
            }
        }
        Err(e) => return Err(e.into()),
    }
    hand.locked = true;
    Ok(())
}

/// Saves `configuration` as a new version; the version saved. An unknown outcome is settled by
/// `savedVersion`: moved on from `before` means it was saved.
async fn save(
    client: &GenesysClient,
    id: &str,
    configuration: Bytes,
    before: Option<&str>,
) -> Result<String, StepError> {
    let reason = match client.save_version(id, configuration).await {
        Ok(Some(v)) => return Ok(v),
        Ok(None) => "the answer names no version".to_string(),
        Err(ApiError::OutcomeUnknown { reason, .. }) => reason,
        Err(e) => return Err(StepError::Failed(format!("the save was refused: {e}"))),
    };
    match client.flow_state(id).await?.saved {
        Some(v) if Some(v.as_str()) != before => Ok(v),
        _ => Err(StepError::Failed(format!(
            "the save got no clear answer ({reason}) and the flow shows no new version; it was not resent"
        ))),
    }
}

/// Starts a check-in or publish and follows it to its end, judged by the flow's versions: done
/// when `checkedInVersion` / `publishedVersion` moved to (or past) `saved`.
async fn operate(
    client: &GenesysClient,
    id: &str,
    action: FlowAction,
    saved: &str,
    timeout: Duration,
) -> Result<(), StepError> {
    let before = client.flow_state(id).await?;
    let pick = move |s: &FlowState| match action {
        FlowAction::Publish => s.published.clone(),
        _ => s.checked_in.clone(),
    };
    let was = pick(&before);
    let saved_owned = saved.to_string();
    let goal = move |s: &FlowState| {
        let now = pick(s);
        now.as_deref() == Some(saved_owned.as_str()) || (now.is_some() && now != was)
    };
    let mut tracked = Tracked {
        id: None,
        before: before.operation.and_then(|o| o.id),
    };
    match client.flow_action(action, id).await {
        Ok(op) => tracked.id = op.get("id").and_then(Value::as_str).map(str::to_string),
        Err(ApiError::OutcomeUnknown { reason, .. }) => {
            warn!(flow_id = %id, "the {} got no clear answer ({reason}); reading the flow back", action.noun());
        }
        Err(e) => return Err(StepError::Failed(format!("the {} was refused: {e}", action.noun()))),
    }
    let what = match action {
        FlowAction::Publish => "publishedVersion",
        _ => "checkedInVersion",
    };
    match client.settle(id, action, &tracked, &goal, timeout).await? {
        Settled::Done(_) => Ok(()),
        Settled::Failed(op, _) => Err(StepError::Failed(format!(
            "the {} ended {}: {} {}",
            action.noun(),
            op.action_status.as_deref().unwrap_or("FAILURE"),
            op.error_code.as_deref().unwrap_or("(no error code)"),
            op.error_message.as_deref().unwrap_or("")
        ))),
        Settled::TimedOut(Some(op), s) => Err(StepError::Failed(format!(
            "the {} reported {} but {what} did not move to {saved} (it is {})",
            action.noun(),
            op.action_status.as_deref().unwrap_or("?"),
            pick(&s).as_deref().unwrap_or("none")
        ))),
        Settled::TimedOut(None, _) => Err(StepError::Failed(format!(
            "the {} did not complete within {:.0} s (--operation-timeout); it may still complete: check the flow",
            action.noun(),
            timeout.as_secs_f64()
        ))),
    }
}

/// Gives back a lock flowvault took and reads `versions_after`, whatever happened; a lock that
/// cannot be given back is reported on the flow.
async fn settle_lock_and_versions(client: &GenesysClient, f: &mut FlowRestore, id: &str, took_lock: bool) {
    let mut state = client.flow_state(id).await;
    if took_lock && state.as_ref().is_ok_and(|s| s.locked_by_me) {
        let unlocked = client.flow_action(FlowAction::Unlock, id).await;
        state = client.flow_state(id).await;
        if state.as_ref().map_or(true, |s| s.locked_by_me) {
            let why = match unlocked {
                Err(e) => e.to_string(),
                Ok(_) => "the flow still shows the lock".into(),
            };
            left_locked(f, id, &why);
        } else {
            info!(flow_id = %id, "released the lock flowvault took on flow {id}");
        }
    } else if took_lock && let Err(e) = &state {
        left_locked(f, id, &format!("whether it is still locked cannot be read: {e}"));
    }
    f.versions_after = state.ok().map(|s| Versions::of(&s.meta));
}

fn left_locked(f: &mut FlowRestore, id: &str, why: &str) {
    let message = format!(
        "flow {id} may be left locked to this OAuth client ({why}); an Architect admin (architect:flow:unlock) must unlock it"
    );
    warn!(flow_id = %id, "{message}");
    f.left_locked = true;
    f.error = Some(match f.error.take() {
        Some(e) => format!("{e}; {message}"),
        None => message,
    });
}
