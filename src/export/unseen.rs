//! The cross-check of the listing against `GET /api/v2/flows/divisionviews`, which may name flows
//! in divisions the client's role cannot list. The views are read while the flows are fetched
//! (their latency then costs no wall time) and compared with the rows at the end. The difference is a warning and a manifest
//! section, never a row and never a reason to fail: whether divisionviews really shows other
//! divisions is unconfirmed.

use crate::genesys::IdSet;

use std::sync::Arc;

use tokio::task::JoinHandle;
use tracing::{Instrument, info, warn};

use crate::genesys::pages::{self, ListError, PageSize, Source};
use crate::genesys::{ApiError, GenesysClient};
use crate::manifest::{Unseen, UnseenFlow};

/// The page size asked for first (the flow listing's default; a refused size falls back as there).
const PAGE_SIZE: u64 = 500;

/// The ids the views name (of the listed types, when filtered): all that is kept while the run
/// goes on, so a large org costs little memory; details are read again only for unseen flows.
type ViewIds = IdSet;

/// The task reading the views: it hands back its client and filter with what it read.
pub(super) type ViewTask = JoinHandle<(Arc<GenesysClient>, Vec<String>, Result<ViewIds, ApiError>)>;

/// Starts reading every view's id beside the run.
pub(super) fn start(client: Arc<GenesysClient>, type_filter: Vec<String>) -> ViewTask {
    tokio::spawn(
        async move {
            let ids = read_views(&client, &type_filter, None).await.map(|(ids, _)| ids);
            (client, type_filter, ids)
        }
        .in_current_span(),
    )
}

/// The flows the views name that are not in `rows`, as the manifest records them.
pub(super) async fn finish(task: ViewTask, listed: IdSet) -> Unseen {
    let (client, type_filter, ids) = match task.await {
        Ok(v) => v,
        Err(e) => {
            return Unseen {
                checked: false,
                note: Some(format!("skipped: the check did not finish ({e})")),
                flows: Vec::new(),
            };
        }
    };
    let unseen = match ids {
        Ok(ids) => {
            let missing: Vec<String> = ids
                .iter()
                .map(|id| id.to_string())
                .filter(|id| !listed.contains(id))
                .collect();
            let missing: ViewIds = missing.iter().map(String::as_str).collect();
            if missing.is_empty() {
                Ok(Vec::new())
            } else {
                read_views(&client, &type_filter, Some(&missing))
                    .await
                    .map(|(_, flows)| flows)
            }
        }
        Err(e) => Err(e),
    };
    report(unseen)
}

fn report(unseen: Result<Vec<UnseenFlow>, ApiError>) -> Unseen {
    match unseen {
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

/// Pages through the views (the lister's paging rules): every id (of the listed types), and the
/// details of the flows in `details_of`.
async fn read_views(
    client: &GenesysClient,
    type_filter: &[String],
    details_of: Option<&ViewIds>,
) -> Result<(ViewIds, Vec<UnseenFlow>), ApiError> {
    let (mut ids, mut found) = (ViewIds::new(), Vec::new());
    let mut size = PageSize::new(PAGE_SIZE);
    // A view row has the listing row's id, name, type and division: read it the same way.
    let walked = pages::walk(client, &Source::DivisionViews, &mut size, |view| {
        let wanted = type_filter.is_empty() || type_filter.contains(&view.flow_type.to_ascii_lowercase());
        if !wanted {
            return;
        }
        match details_of {
            None => {
                ids.insert(&view.id);
            }
            Some(of) if of.contains(view.id.as_str()) && ids.insert(&view.id) => {
                found.push(UnseenFlow {
                    id: view.id,
                    name: view.name,
                    flow_type: view.flow_type,
                    division: view.division.map(Into::into),
                });
            }
            Some(_) => {}
        }
    })
    .await;
    if let Err(e) = walked {
        return Err(match e {
            ListError::Page { source, .. } => source,
            other => ApiError::Exhausted {
                url: "/api/v2/flows/divisionviews".into(),
                attempts: 1,
                last: other.to_string(),
            },
        });
    }
    found.sort_by(|a, b| (&a.flow_type, &a.id).cmp(&(&b.flow_type, &b.id)));
    Ok((ids, found))
}
