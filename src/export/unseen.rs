//! The cross-check of the listing against `GET /api/v2/flows/divisionviews`, which may name flows
//! in divisions the client's role cannot list. The views are read while the flows are fetched
//! (their latency then costs no wall time) and compared with the rows at the end. The difference is a warning and a manifest
//! section, never a row and never a reason to fail: whether divisionviews really shows other
//! divisions is unconfirmed.

use std::collections::HashSet;

use std::sync::Arc;

use tokio::task::JoinHandle;
use tracing::{Instrument, info, warn};

use crate::genesys::{ApiError, FlowSummary, GenesysClient};
use crate::manifest::{FlowRecord, Unseen, UnseenFlow};

const PAGE_SIZE: u64 = 100;
/// Pages read at most (a guard against a server that never serves a short page).
const MAX_PAGES: u64 = 10_000;

/// Starts reading every view (of the listed types, when filtered) beside the run.
pub(super) fn start(
    client: Arc<GenesysClient>,
    type_filter: Vec<String>,
) -> JoinHandle<Result<Vec<UnseenFlow>, ApiError>> {
    tokio::spawn(async move { views(&client, &type_filter).await }.in_current_span())
}

/// The flows the views name that are not in `rows`, as the manifest records them.
pub(super) async fn finish(task: JoinHandle<Result<Vec<UnseenFlow>, ApiError>>, rows: &[FlowRecord]) -> Unseen {
    let views = match task.await {
        Ok(v) => v,
        Err(e) => {
            return Unseen {
                checked: false,
                note: Some(format!("skipped: the check did not finish ({e})")),
                flows: Vec::new(),
            };
        }
    };
    let listed: HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    match views.map(|v| {
        v.into_iter()
            .filter(|f| !listed.contains(f.id.as_str()))
            .collect::<Vec<_>>()
    }) {
        Ok(flows) if flows.is_empty() => Unseen {
            checked: true,
            note: None,
            flows,
        },
        Ok(flows) => {
            warn!(
                unseen = flows.len(),
                "{} flows exist that the listing did not return (divisions the OAuth client's role does not grant?); \
                 they are not in this backup: see `unseen` in the manifest",
                flows.len()
            );
            Unseen {
                checked: true,
                note: Some(
                    "flows named by /api/v2/flows/divisionviews that the listing did not return, likely in divisions \
                     the OAuth client's role does not grant; they are not in this backup"
                        .into(),
                ),
                flows,
            }
        }
        Err(e) => {
            let note = match &e {
                ApiError::Forbidden { .. } => {
                    "skipped: the OAuth client lacks architect:flow:search, so flows in divisions it cannot list \
                     could not be looked for"
                        .to_string()
                }
                other => format!("skipped: /api/v2/flows/divisionviews could not be read: {other}"),
            };
            info!("unseen-flow check {note}");
            Unseen {
                checked: false,
                note: Some(note),
                flows: Vec::new(),
            }
        }
    }
}

/// Every flow the views name, of the listed types when filtered, sorted by type and id.
async fn views(client: &GenesysClient, type_filter: &[String]) -> Result<Vec<UnseenFlow>, ApiError> {
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    for page_number in 1..=MAX_PAGES {
        let page = client.divisionviews_page(page_number, PAGE_SIZE).await?;
        let entities = page.entities.unwrap_or_default();
        let short = (entities.len() as u64) < page.page_size.unwrap_or(PAGE_SIZE).max(1);
        let empty = entities.is_empty();
        // A view row has the listing row's id, name, type and division: read it the same way.
        for view in entities.into_iter().filter_map(|raw| FlowSummary::from_raw(raw).ok()) {
            let wanted = type_filter.is_empty() || type_filter.contains(&view.flow_type.to_ascii_lowercase());
            if wanted && !view.id.is_empty() && seen.insert(view.id.clone()) {
                found.push(UnseenFlow {
                    id: view.id,
                    name: view.name,
                    flow_type: view.flow_type,
                    division: view.division,
                });
            }
        }
        if empty || short {
            break;
        }
    }
    found.sort_by(|a, b| (&a.flow_type, &a.id).cmp(&(&b.flow_type, &b.id)));
    Ok(found)
}
