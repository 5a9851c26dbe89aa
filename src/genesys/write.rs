//! The Architect write side, as the Scripting SDK drives it: create a flow, lock and unlock it,
//! save a configuration as a new version, check in and publish through asynchronous operations
//! followed on the flow's `currentOperation`. Every call goes through the same limiter, tokens and
//! retry driver as the read side.

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
    /// CHECKIN, PUBLISH, STATE_CHANGE, …
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
    /// True when it ended in SUCCESS.
    pub fn succeeded(&self) -> bool {
        self.complete && self.action_status.as_deref() == Some("SUCCESS")
    }
}

/// The flow actions under `/api/v2/flows/actions/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowAction {
    /// Lock the flow to this client.
    Checkout,
    /// Release the lock.
    Unlock,
    /// Check in the saved version (asynchronous).
    Checkin,
    /// Publish (asynchronous).
    Publish,
}

impl FlowAction {
    fn segment(self) -> &'static str {
        match self {
            FlowAction::Checkout => "checkout",
            FlowAction::Unlock => "unlock",
            FlowAction::Checkin => "checkin",
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

impl GenesysClient {
    /// `GET /api/v2/flows/{id}`: the flow's metadata (lock, versions, current operation).
    pub async fn flow(&self, id: &str) -> Result<Value, ApiError> {
        let url = self.endpoint(&["api", "v2", "flows", id]);
        let fetched = self.get_json(url).await?;
        Ok(serde_json::from_str(fetched.body.get()).unwrap_or(Value::Null))
    }

    /// Flows of `flow_type` whose name is exactly `name` (case-insensitive, as Architect compares).
    pub async fn flows_named(&self, name: &str, flow_type: &str) -> Result<Vec<Value>, ApiError> {
        let mut url = self.endpoint(&["api", "v2", "flows"]);
        url.query_pairs_mut()
            .append_pair("name", name)
            .append_pair("type", &flow_type.to_ascii_lowercase())
            .append_pair("pageSize", "100");
        let fetched = self.get_json(url).await?;
        let page: Value = serde_json::from_str(fetched.body.get()).unwrap_or(Value::Null);
        Ok(page
            .get("entities")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|f| {
                f.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .cloned()
            .collect())
    }

    /// `POST /api/v2/flows`: a new flow; its id is in the answer.
    pub async fn create_flow(
        &self,
        name: &str,
        flow_type: &str,
        description: &str,
        division_id: Option<&str>,
    ) -> Result<Value, ApiError> {
        let url = self.endpoint(&["api", "v2", "flows"]);
        let mut body = json!({"name": name, "type": flow_type, "description": description});
        if let Some(d) = division_id {
            body["division"] = json!({"id": d});
        }
        let fetched = self.post_json(url, &body).await?;
        Ok(serde_json::from_str(fetched.body.get()).unwrap_or(Value::Null))
    }

    /// `POST /api/v2/flows/actions/{action}?flow=ID[&version=V]`.
    pub async fn flow_action(&self, action: FlowAction, id: &str, version: Option<&str>) -> Result<Value, ApiError> {
        let mut url = self.endpoint(&["api", "v2", "flows", "actions", action.segment()]);
        url.query_pairs_mut().append_pair("flow", id);
        if let Some(v) = version {
            url.query_pairs_mut().append_pair("version", v);
        }
        let fetched = self.post_raw(url, None).await?;
        Ok(serde_json::from_str(fetched.body.get()).unwrap_or(Value::Null))
    }

    /// `POST /api/v2/flows/{id}/versions` with a configuration exactly as archived.
    pub async fn save_version(&self, id: &str, configuration: Bytes) -> Result<Value, ApiError> {
        let url = self.endpoint(&["api", "v2", "flows", id, "versions"]);
        let fetched = self.post_raw(url, Some(configuration)).await?;
        Ok(serde_json::from_str(fetched.body.get()).unwrap_or(Value::Null))
    }

    /// Follows an operation on flow `id` — the one with `op_id`, or when the answer named none,
    /// the flow's current operation of `action_name` — until it completes or `timeout` passes.
    pub async fn wait_operation(
        &self,
        id: &str,
        op_id: Option<&str>,
        action_name: &str,
        timeout: Duration,
    ) -> Result<Operation, ApiError> {
        let started = tokio::time::Instant::now();
        let mut wait = Duration::from_millis(100);
        loop {
            let flow = self.flow(id).await?;
            let op: Option<Operation> = flow
                .get("currentOperation")
                .and_then(|o| serde_json::from_value(o.clone()).ok())
                .filter(|o: &Operation| match op_id {
                    Some(op_id) => o.id.as_deref() == Some(op_id),
                    None => o
                        .action_name
                        .as_deref()
                        .is_some_and(|a| a.eq_ignore_ascii_case(action_name)),
                })
                .filter(|o| o.action_name.as_deref() != Some("STATE_CHANGE"));
            if let Some(op) = op.filter(|o| o.complete) {
                return Ok(op);
            }
            if started.elapsed() >= timeout {
                return Err(ApiError::Exhausted {
                    url: self.endpoint(&["api", "v2", "flows", id]).to_string(),
                    attempts: 1,
                    last: format!(
                        "the {action_name} operation {} did not complete within {:.0} s",
                        op_id.unwrap_or(""),
                        timeout.as_secs_f64()
                    ),
                });
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(3));
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
}
