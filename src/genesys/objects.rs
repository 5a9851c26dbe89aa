//! The non-flow objects a configuration references (queues, data actions, prompts, data tables,
//! users, outcomes, milestones, schedules…), found in an org by kind and name: each kind's listing
//! is paged through the client's limiter and retry driver, trusting rows, not counters.

use serde_json::Value;

use super::client::{ApiError, GenesysClient};

/// Where each `manifest` kind is listed (path segments under the API base). Kinds not here
/// (languages, TTS engines, system prompts…) belong to Genesys or cannot be listed by name.
const LISTINGS: &[(&str, &[&str])] = &[
    ("queue", &["api", "v2", "routing", "queues"]),
    ("dataAction", &["api", "v2", "integrations", "actions"]),
    ("userPrompt", &["api", "v2", "architect", "prompts"]),
    ("dataTable", &["api", "v2", "flows", "datatables"]),
    ("user", &["api", "v2", "users"]),
    ("flowOutcome", &["api", "v2", "flows", "outcomes"]),
    ("flowMilestone", &["api", "v2", "flows", "milestones"]),
    ("schedule", &["api", "v2", "architect", "schedules"]),
    ("scheduleGroup", &["api", "v2", "architect", "schedulegroups"]),
    ("emergencyGroup", &["api", "v2", "architect", "emergencygroups"]),
    ("acdSkill", &["api", "v2", "routing", "skills"]),
    ("acdWrapupCode", &["api", "v2", "routing", "wrapupcodes"]),
    ("acdLanguage", &["api", "v2", "routing", "languages"]),
];

/// Objects per page asked for (CX as Code uses 100).
const PAGE_SIZE: u64 = 100;
/// Pages read at most per kind (100,000 objects), so a server that never ends a listing cannot
/// keep a restore paging forever.
const MAX_PAGES: u64 = 1_000;

/// An object as a listing names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedObject {
    /// Its id in the org listed.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// True when flowvault can find objects of this `manifest` kind by name.
pub fn is_listable(kind: &str) -> bool {
    LISTINGS.iter().any(|(k, _)| *k == kind)
}

impl GenesysClient {
    /// Every object of `kind` (a `manifest` key) in the org; `None` for a kind that cannot be
    /// listed. Pages until a page comes back short or empty.
    pub async fn list_objects(&self, kind: &str) -> Result<Option<Vec<NamedObject>>, ApiError> {
        let Some((_, path)) = LISTINGS.iter().find(|(k, _)| *k == kind) else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut url = self.endpoint(path);
            url.query_pairs_mut()
                .append_pair("pageNumber", &page.to_string())
                .append_pair("pageSize", &PAGE_SIZE.to_string());
            let fetched = self.get_json(url.clone()).await?;
            let body: Value = serde_json::from_str(fetched.body.get()).map_err(|e| ApiError::Exhausted {
                url: url.to_string(),
                attempts: fetched.attempts,
                last: format!("the response is not a {kind} listing ({e})"),
            })?;
            let rows = body
                .get("entities")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let served = rows.len() as u64;
            out.extend(rows.iter().filter_map(|r| {
                Some(NamedObject {
                    id: r.get("id")?.as_str()?.to_string(),
                    name: r.get("name")?.as_str()?.to_string(),
                })
            }));
            let size = body
                .get("pageSize")
                .and_then(Value::as_u64)
                .unwrap_or(PAGE_SIZE)
                .min(PAGE_SIZE);
            if served == 0 || served < size {
                break;
            }
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kinds_a_rebuilt_org_can_be_searched_for_are_listable() {
        for kind in [
            "queue",
            "dataAction",
            "userPrompt",
            "dataTable",
            "user",
            "flowMilestone",
        ] {
            assert!(is_listable(kind), "{kind}");
        }
        assert!(!is_listable("ttsEngine"));
    }
}
