//! The Architect write side, as the Scripting SDK drives it: create a flow, lock and unlock it,
//! save a configuration as a new version, check in and publish through asynchronous operations.
//!
//! Writes are not idempotent, so each is sent once ([`GenesysClient::post_once`]): a 5xx, timeout
//! or reset answers [`ApiError::OutcomeUnknown`] and the caller reads the flow back
//! ([`FlowState`]) to learn what happened. An operation's outcome is judged by the flow's versions
//! afterwards ([`GenesysClient::settle`]), not by the operation's word: `currentOperation` is
//! replaced by later operations (a VALIDATE), and a SUCCESS may leave the versions where they were.

use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{ApiError, GenesysClient};

/// An asynchronous check-in or publish, as `currentOperation` reports it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// Operation id.
    #[serde(default)]
    pub id: Option<String>,
    /// CHECKIN, PUBLISH, STATE_CHANGE, VALIDATE, …
    #[serde(default)]
    pub action_name: Option<String>,
    /// STARTED, PENDING_…, SUCCESS, FAILURE, …
    #[serde(default)]
    pub action_status: Option<String>,
    /// True once it ended.
    #[serde(default)]
    pub complete: bool,
    /// The API's error code on failure.
    #[serde(default)]
    pub error_code: Option<String>,
    /// The API's message on failure.
    #[serde(default)]
    pub error_message: Option<String>,
}

impl Operation {
    /// True when it ended in FAILURE.
    pub fn failed(&self) -> bool {
        self.complete && self.action_status.as_deref() == Some("FAILURE")
    }
}

/// The flow actions under `/api/v2/flows/actions/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowAction {
    /// Lock the flow to this client.
    Checkout,
    /// Release the lock (needs `architect:flow:unlock`).
    Unlock,
    /// Check in the saved version (asynchronous).
    Checkin,
    /// Publish (asynchronous).
    Publish,
}

impl FlowAction {
    /// The path segment.
    pub fn segment(self) -> &'static str {
        match self {
            FlowAction::Checkout => "checkout",
            FlowAction::Unlock => "unlock",
            FlowAction::Checkin => "checkin",
            FlowAction::Publish => "publish",
        }
    }

    /// The `actionName` of the operation it starts.
    pub fn operation_name(self) -> &'static str {
        match self {
            FlowAction::Checkout => "CHECKOUT",
            FlowAction::Unlock => "UNLOCK",
            FlowAction::Checkin => "CHECKIN",
            FlowAction::Publish => "PUBLISH",
        }
    }

    /// The word for messages.
    pub fn noun(self) -> &'static str {
        match self {
            FlowAction::Checkout => "checkout",
            FlowAction::Unlock => "unlock",
            FlowAction::Checkin => "check-in",
            FlowAction::Publish => "publish",
        }
    }
}

/// Why Architect refuses `name` for a flow, if it does: no `/`, not ending in `-debug`, at most
/// 200 characters, at least one letter or digit.
pub fn name_problem(name: &str) -> Option<&'static str> {
    if name.contains('/') {
        Some("a flow name must not contain '/'")
    } else if name.ends_with("-debug") {
        Some("a flow name must not end in '-debug'")
    } else if name.chars().count() > 200 {
        Some("a flow name must be at most 200 characters")
    } else if !name.chars().any(char::is_alphanumeric) {
        Some("a flow name needs at least one letter or digit")
    } else {
        None
    }
}

/// A flow as read back after a write: who holds its lock, its versions, its current operation.
#[derive(Debug, Clone)]
pub struct FlowState {
    /// The metadata as served.
    pub meta: Value,
    /// Who holds the lock when it is not this client (`user NAME`, `OAuth client ID`).
    pub locked_by_other: Option<String>,
    /// Whether this client holds the lock.
    pub locked_by_me: bool,
    /// `savedVersion.id`.
    pub saved: Option<String>,
    /// `checkedInVersion.id`.
    pub checked_in: Option<String>,
    /// `publishedVersion.id`.
    pub published: Option<String>,
    /// `currentOperation`.
    pub operation: Option<Operation>,
}

impl FlowState {
    /// Reads a flow's metadata as seen by OAuth client `me`.
    pub fn of(meta: Value, me: &str) -> FlowState {
        let version = |k: &str| {
            meta.get(k)
                .and_then(|v| v.get("id"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let user = meta.get("lockedUser").filter(|u| u.is_object());
        let client = meta.pointer("/lockedClient/id").and_then(Value::as_str);
        let locked_by_other = match (user, client) {
            (Some(u), _) => {
                let who = u.get("name").or_else(|| u.get("id")).and_then(Value::as_str);
                Some(format!("user {}", who.unwrap_or("?")))
            }
            (None, Some(c)) if c != me => Some(format!("OAuth client {c}")),
            _ => None,
        };
        FlowState {
            locked_by_me: user.is_none() && client == Some(me),
            locked_by_other,
            saved: version("savedVersion"),
            checked_in: version("checkedInVersion"),
            published: version("publishedVersion"),
            operation: meta
                .get("currentOperation")
                .and_then(|o| serde_json::from_value(o.clone()).ok()),
            meta,
        }
    }
}

/// How an operation ended, judged by the flow's versions.
#[derive(Debug, Clone)]
pub enum Settled {
    /// The versions show it happened.
    Done(FlowState),
    /// The tracked operation ended in FAILURE and the versions did not move.
    Failed(Operation, FlowState),
    /// Neither before the timeout; `Some` when the operation claimed SUCCESS anyway.
    TimedOut(Option<Operation>, FlowState),
}

/// Which operation a wait follows: the one with this id, or (when the answer named none, or
/// there was no answer) any of the action's that is not `before`.
#[derive(Debug, Clone, Default)]
pub struct Tracked {
    /// The id the answer named.
    pub id: Option<String>,
    /// The operation current before the request was sent.
    pub before: Option<String>,
}

impl Tracked {
    fn matches(&self, action: FlowAction, op: &Operation) -> bool {
        let named = op
            .action_name
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case(action.operation_name()));
        match &self.id {
            Some(id) => op.id.as_deref() == Some(id.as_str()),
            None => named && op.id.is_some() && op.id != self.before,
        }
    }
}

fn body_of(fetched: super::client::Fetched) -> Value {
    serde_json::from_str(fetched.body.get()).unwrap_or(Value::Null)
}

impl GenesysClient {
    /// `GET /api/v2/flows/{id}`: the flow's metadata (lock, versions, current operation).
    pub async fn flow(&self, id: &str) -> Result<Value, ApiError> {
        let url = self.endpoint(&["api", "v2", "flows", id]);
        let fetched = self.get_json(url.clone()).await?;
        match body_of(fetched) {
            v @ Value::Object(_) => Ok(v),
            _ => Err(ApiError::Rejected {
                url: url.to_string(),
                status: 200,
                message: "the answer is not a flow".into(),
                correlation_id: None,
            }),
        }
    }

    /// The flow's state as this client sees it.
    pub async fn flow_state(&self, id: &str) -> Result<FlowState, ApiError> {
        Ok(FlowState::of(self.flow(id).await?, self.client_id()))
    }

    /// Every flow of `flow_type` named exactly `name` (case-insensitive, as Architect compares),
    /// paging through all results; any failed page is an error. A type the listing's filter
    /// refuses (BUSINESSPROCESS, a type newer than the filter) is filtered here instead.
    pub async fn flows_named(&self, name: &str, flow_type: &str) -> Result<Vec<Value>, ApiError> {
        if flow_type.eq_ignore_ascii_case("BUSINESSPROCESS") {
            return self.flows_named_paged(name, flow_type, false).await;
        }
        match self.flows_named_paged(name, flow_type, true).await {
            Err(ApiError::Rejected { status: 400, .. }) => self.flows_named_paged(name, flow_type, false).await,
            other => other,
        }
    }

    async fn flows_named_paged(&self, name: &str, flow_type: &str, type_filter: bool) -> Result<Vec<Value>, ApiError> {
        let mut found = Vec::new();
        for page_number in 1u64.. {
            let mut url = self.endpoint(&["api", "v2", "flows"]);
            url.query_pairs_mut()
                .append_pair("name", name)
                .append_pair("pageNumber", &page_number.to_string())
                .append_pair("pageSize", "100");
            if type_filter {
                url.query_pairs_mut()
                    .append_pair("type", &flow_type.to_ascii_lowercase());
            }
            let page = body_of(self.get_json(url).await?);
            let rows = page
                .get("entities")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let text = |f: &Value, k: &str| f.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            found.extend(
                rows.iter()
                    .filter(|f| {
                        text(f, "name").eq_ignore_ascii_case(name) && text(f, "type").eq_ignore_ascii_case(flow_type)
                    })
                    .cloned(),
            );
            // Trust rows, not counters: a short last page by the counters ends it, an empty page always.
            let count = page.get("pageCount").and_then(Value::as_u64).unwrap_or(0);
            let size = page.get("pageSize").and_then(Value::as_u64).unwrap_or(100);
            if rows.is_empty() || (page_number >= count && (rows.len() as u64) < size) {
                break;
            }
        }
        Ok(found)
    }

    /// `POST /api/v2/flows`, sent once: the new flow's id. An answer without an id is an unknown
    /// outcome (the flow may exist): the caller looks it up by name.
    pub async fn create_flow(
        &self,
        name: &str,
        flow_type: &str,
        description: &str,
        division_id: Option<&str>,
    ) -> Result<String, ApiError> {
        let url = self.endpoint(&["api", "v2", "flows"]);
        let mut body = json!({"name": name, "type": flow_type, "description": description});
        if let Some(d) = division_id {
            body["division"] = json!({"id": d});
        }
        let bytes = Bytes::from(serde_json::to_vec(&body).map_err(|e| ApiError::Setup(e.to_string()))?);
        let created = body_of(self.post_once(url.clone(), Some(bytes)).await?);
        match created.get("id").and_then(Value::as_str).filter(|id| !id.is_empty()) {
            Some(id) => Ok(id.to_string()),
            None => Err(ApiError::OutcomeUnknown {
                url: url.to_string(),
                reason: "the answer carries no flow id".into(),
            }),
        }
    }

    /// `POST /api/v2/flows/actions/{action}?flow=ID`, sent once.
    pub async fn flow_action(&self, action: FlowAction, id: &str) -> Result<Value, ApiError> {
        let mut url = self.endpoint(&["api", "v2", "flows", "actions", action.segment()]);
        url.query_pairs_mut().append_pair("flow", id);
        Ok(body_of(self.post_once(url, None).await?))
    }

    /// `POST /api/v2/flows/{id}/versions` with a configuration exactly as archived, sent once;
    /// the new version's id when the answer names it.
    pub async fn save_version(&self, id: &str, configuration: Bytes) -> Result<Option<String>, ApiError> {
        let url = self.endpoint(&["api", "v2", "flows", id, "versions"]);
        let saved = body_of(self.post_once(url, Some(configuration)).await?);
        Ok(saved.get("id").and_then(Value::as_str).map(str::to_string))
    }

    /// Follows `action` on flow `id` until `goal` holds for the flow (done), the tracked
    /// operation ends in FAILURE, or `timeout` passes.
    pub async fn settle(
        &self,
        id: &str,
        action: FlowAction,
        tracked: &Tracked,
        goal: &(dyn Fn(&FlowState) -> bool + Send + Sync),
        timeout: Duration,
    ) -> Result<Settled, ApiError> {
        let started = tokio::time::Instant::now();
        let mut wait = Duration::from_millis(100);
        loop {
            let state = self.flow_state(id).await?;
            if goal(&state) {
                return Ok(Settled::Done(state));
            }
            let ours = state.operation.clone().filter(|o| tracked.matches(action, o));
            if let Some(op) = ours.clone().filter(Operation::failed) {
                return Ok(Settled::Failed(op, state));
            }
            if started.elapsed() >= timeout {
                let claimed = ours.filter(|o| o.complete);
                return Ok(Settled::TimedOut(claimed, state));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architects_name_rules() {
        assert!(name_problem("Main IVR").is_none());
        assert!(name_problem("a/b").is_some());
        assert!(name_problem("x-debug").is_some());
        assert!(name_problem(&"x".repeat(201)).is_some());
        assert!(name_problem("---").is_some());
    }

    #[test]
    fn a_later_operation_of_the_same_action_is_not_taken_for_an_older_one() {
        let tracked = Tracked {
            id: None,
            before: Some("old".into()),
        };
        let op = |id: &str, name: &str| Operation {
            id: Some(id.into()),
            action_name: Some(name.into()),
            action_status: Some("SUCCESS".into()),
            complete: true,
            error_code: None,
            error_message: None,
        };
        assert!(!tracked.matches(FlowAction::Publish, &op("old", "PUBLISH")));
        assert!(!tracked.matches(FlowAction::Publish, &op("new", "VALIDATE")));
        assert!(tracked.matches(FlowAction::Publish, &op("new", "PUBLISH")));
    }

    #[test]
    fn a_flow_locked_by_a_user_is_not_ours_even_with_our_client_named() {
        let meta = json!({"lockedUser": {"name": "jane"}, "lockedClient": {"id": "me"}});
        let s = FlowState::of(meta, "me");
        assert!(!s.locked_by_me);
        assert_eq!(s.locked_by_other.as_deref(), Some("user jane"));
    }
}
