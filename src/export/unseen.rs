//! The cross-check of the listing against `GET /api/v2/flows/divisionviews`, which may name flows
//! in divisions the client's role cannot list. The difference is a warning and a manifest
//! section, never a row and never a reason to fail: whether divisionviews really shows other
//! divisions is unconfirmed.

use std::collections::HashSet;

use tracing::{info, warn};

use crate::genesys::{ApiError, FlowSummary, GenesysClient};
use crate::manifest::{FlowRecord, Unseen, UnseenFlow};

const PAGE_SIZE: u64 = 100;
/// Pages read at most (a guard against a server that never serves a short page).
const MAX_PAGES: u64 = 10_000;

/// Flows divisionviews names that are not in `rows` (of the listed types, when filtered).
pub(super) async fn check(client: &GenesysClient, rows: &[FlowRecord], type_filter: &[String]) -> Unseen {
    match unseen_flows(client, rows, type_filter).await {
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

async fn unseen_flows(
    client: &GenesysClient,
    rows: &[FlowRecord],
    type_filter: &[String],
) -> Result<Vec<UnseenFlow>, ApiError> {
    let listed: HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut unseen = Vec::new();
    let mut seen = HashSet::new();
    for page_number in 1..=MAX_PAGES {
        let page = client.divisionviews_page(page_number, PAGE_SIZE).await?;
        let entities = page.entities.unwrap_or_default();
        let short = (entities.len() as u64) < page.page_size.unwrap_or(PAGE_SIZE).max(1);
        let empty = entities.is_empty();
        // A view row has the listing row's id, name, type and division: read it the same way.
        for view in entities.into_iter().filter_map(|raw| FlowSummary::from_raw(raw).ok()) {
            let wanted = type_filter.is_empty() || type_filter.contains(&view.flow_type.to_ascii_lowercase());
            if wanted && !view.id.is_empty() && !listed.contains(view.id.as_str()) && seen.insert(view.id.clone()) {
                unseen.push(UnseenFlow {
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
    unseen.sort_by(|a, b| (&a.flow_type, &a.id).cmp(&(&b.flow_type, &b.id)));
    Ok(unseen)
}
