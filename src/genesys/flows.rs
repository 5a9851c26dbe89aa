//! The flow listing: every flow of the org (or of the type filters), proven by re-listing.
//!
//! `GET /api/v2/flows` pages by offset, so flows deleted or created while a client pages shift
//! rows across page boundaries and some are never served; servers may also serve fewer rows than
//! the `pageSize` they report, and `total`/`pageCount` describe the moment each page was served.
//! So the lister trusts rows, not counters: it pages until a page comes back short or empty, learns
//! the page size the server really uses (a page size refused with 400 falls back to a smaller one,
//! on any page), and then lists again, taking the union, while a pass still finds flows no earlier
//! pass saw. After the run's fetching is done it lists once more (the final phase) to catch flows
//! created meanwhile. Each pass is recorded; the last pass must reconcile with the API's `total`.

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, info, warn};

use super::client::{ApiError, FlowPage, GenesysClient};
use super::flow::FlowSummary;
use super::flow_id::IdSet;

/// Page sizes tried in turn when the API refuses a larger one with 400.
const PAGE_SIZE_FALLBACKS: [u64; 8] = [500, 250, 100, 50, 25, 10, 5, 1];
/// How often a page that comes back empty while the counters say more remain is asked for again.
const EMPTY_PAGE_RETRIES: u32 = 2;
/// Pages asked for ahead of the one being read, while `pageCount` says they exist and the flows
/// already handed on are being taken up (so pages do not pile up in memory): a pass over flows
/// already known (the final pass, an incremental run) then costs half the round trips.
const PAGES_AHEAD: u64 = 2;

/// A page asked for ahead.
struct Ahead {
    page: u64,
    size: u64,
    task: tokio::task::JoinHandle<Result<FlowPage, ApiError>>,
}

/// Pages asked for ahead; those not used by the end of a pass are cancelled.
#[derive(Default)]
struct PagesAhead(std::collections::VecDeque<Ahead>);

impl PagesAhead {
    /// The answer for `page` at `size`, if it was asked for ahead (stale ones are dropped).
    async fn take(&mut self, page: u64, size: u64) -> Option<Result<FlowPage, ApiError>> {
        while let Some(a) = self.0.front() {
            if a.page == page && a.size == size {
                let a = self.0.pop_front()?;
                return a.task.await.ok();
            }
            if a.page > page && a.size == size {
                return None;
            }
            if let Some(stale) = self.0.pop_front() {
                stale.task.abort();
            }
        }
        None
    }

    /// Asks for pages `from..=to` at `size` that are not asked for yet.
    fn ask(&mut self, client: &Arc<GenesysClient>, filter: Option<&str>, from: u64, to: u64, size: u64) {
        let next = self
            .0
            .back()
            .filter(|a| a.size == size)
            .map_or(from, |a| (a.page + 1).max(from));
        for page in next..=to {
            let client = client.clone();
            let filter = filter.map(str::to_string);
            let task = tokio::spawn(
                async move { client.list_flows_page(page, size, filter.as_deref()).await }.in_current_span(),
            );
            self.0.push_back(Ahead { page, size, task });
        }
    }
}

impl Drop for PagesAhead {
    fn drop(&mut self) {
        for a in &self.0 {
            a.task.abort();
        }
    }
}

/// What to list and how hard to try.
#[derive(Debug, Clone)]
pub struct ListOptions {
    /// Lowercase type filters, each listed on its own; empty lists every flow.
    pub type_filter: Vec<String>,
    /// Page size to ask for first.
    pub page_size: u64,
    /// The most passes in each phase (at least 2 in the first: one to list, one to confirm).
    pub max_passes: u32,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions {
            type_filter: Vec::new(),
            page_size: 500,
            max_passes: 5,
        }
    }
}

/// What the lister hands on.
#[derive(Debug)]
pub enum Listed {
    /// A flow seen for the first time in this run.
    Flow(FlowSummary),
    /// A listing row that is not a flow with an id; it is recorded, not fetched.
    Malformed {
        /// Why it cannot be used.
        reason: String,
        /// The start of the row as served.
        row: String,
    },
}

/// When a listing pass ran (serialized `initial` / `final`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Before and while the run fetches: lists until a pass finds nothing new.
    #[default]
    Initial,
    /// After the run fetched what was listed: catches flows created meanwhile.
    Final,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Initial => "initial",
            Phase::Final => "final",
        })
    }
}

/// One pass over the listing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PassRecord {
    /// 1-based, across both phases.
    pub pass: u32,
    /// Before and while fetching, or after.
    pub phase: Phase,
    /// Pages requested.
    pub pages: u64,
    /// Distinct flows this pass served (rows that were not flows included, as the API counts them).
    pub flows: u64,
    /// Flows no earlier pass had served.
    pub new_flows: u64,
    /// The API's `total` on the last page of each filter, summed.
    pub api_total: Option<u64>,
    /// The page size the pass ended with.
    pub page_size: u64,
}

/// Everything the listing learned, for the manifest.
#[derive(Debug, Clone, Default)]
pub struct ListingReport {
    /// Every pass, in order.
    pub passes: Vec<PassRecord>,
    /// Distinct flows over all passes.
    pub listed: u64,
    /// Rows that were not flows.
    pub malformed: u64,
    /// Why the listing cannot prove it saw every flow; `None` when it can.
    pub unverified: Option<String>,
    /// The flows the last finished pass served: what an incremental run confirms carried flows by.
    pub last_pass_ids: Option<Arc<IdSet>>,
}

/// Why the listing could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// A page request failed after its retries.
    #[error("page {page}{}: {source}", filter_note(.filter))]
    Page {
        /// The page number.
        page: u64,
        /// The type filter, if any.
        filter: Option<String>,
        /// What failed.
        source: ApiError,
    },
    /// The API refused even the smallest page size.
    #[error("the API refused the flow listing (HTTP 400: {message})")]
    Refused {
        /// The API's message.
        message: String,
    },
    /// The listing task itself failed.
    #[error("the listing task failed: {0}")]
    Task(String),
}

impl ListError {
    /// True when the failure concerns the whole run (credentials).
    pub fn is_credential_failure(&self) -> bool {
        matches!(self, ListError::Page { source, .. } if source.is_fatal_for_run())
    }
}

fn filter_note(filter: &Option<String>) -> String {
    filter.as_deref().map(|f| format!(" (type {f})")).unwrap_or_default()
}

/// Lists every flow, more than once, and hands each new one on exactly once.
pub struct FlowLister {
    client: Arc<GenesysClient>,
    options: ListOptions,
    page_size: u64,
    seen: IdSet,
    malformed_seen: HashSet<String>,
    report: ListingReport,
}

/// What one filter's paging within a pass came to.
#[derive(Default)]
struct FilterPass {
    pages: u64,
    ids: IdSet,
    api_total: Option<u64>,
}

impl FlowLister {
    /// A lister over `client`.
    pub fn new(client: Arc<GenesysClient>, options: ListOptions) -> Self {
        FlowLister {
            page_size: options.page_size.max(1),
            client,
            options,
            seen: IdSet::new(),
            malformed_seen: HashSet::new(),
            report: ListingReport::default(),
        }
    }

    /// The listing so far.
    pub fn report(&self) -> &ListingReport {
        &self.report
    }

    /// The listing, once done (or cut short).
    pub fn into_report(self) -> ListingReport {
        self.report
    }

    /// Runs both phases: lists until a pass finds nothing new, sending each new flow to `out`;
    /// then waits until `handled` reaches the number of flows sent (the run has dealt with them)
    /// and lists again until nothing new appears. A closed `out` (the run stopped) ends it early.
    /// [`FlowLister::report`] has what was learned, whatever the result.
    pub async fn run(&mut self, out: mpsc::Sender<Listed>, mut handled: watch::Receiver<u64>) -> Result<(), ListError> {
        let mut sent = 0u64;
        for phase in [Phase::Initial, Phase::Final] {
            if phase == Phase::Final {
                let target = sent;
                if handled.wait_for(|h| *h >= target).await.is_err() {
                    return Ok(());
                }
            }
            let mut passes = 0u32;
            loop {
                passes += 1;
                let Some(record) = self.pass(phase, &out, &mut sent).await? else {
                    return Ok(()); // the receiver is gone: the run stopped
                };
                let first_ever = record.pass == 1;
                let new = record.new_flows;
                if !first_ever && new == 0 {
                    break;
                }
                if passes >= self.options.max_passes.max(2) {
                    let why = format!(
                        "the listing kept changing: pass {} still found {new} flows no earlier pass had seen",
                        record.pass
                    );
                    warn!("{why}");
                    self.report.unverified = Some(why);
                    break;
                }
            }
        }
        self.reconcile();
        Ok(())
    }

    /// Checks the last pass against the API's `total`; a gap makes the listing unverified.
    fn reconcile(&mut self) {
        let Some(last) = self.report.passes.last() else { return };
        if let Some(total) = last.api_total
            && total != last.flows
            && self.report.unverified.is_none()
        {
            let why = format!(
                "the API reported {total} flows but paging yielded {} distinct flows in the last listing pass",
                last.flows
            );
            warn!("{why}");
            self.report.unverified = Some(why);
        }
    }

    /// One pass over every filter. `Ok(None)` when the receiver is gone.
    async fn pass(
        &mut self,
        phase: Phase,
        out: &mpsc::Sender<Listed>,
        sent: &mut u64,
    ) -> Result<Option<PassRecord>, ListError> {
        let filters: Vec<Option<String>> = if self.options.type_filter.is_empty() {
            vec![None]
        } else {
            self.options.type_filter.iter().cloned().map(Some).collect()
        };
        let mut record = PassRecord {
            pass: self.report.passes.len() as u32 + 1,
            phase,
            ..PassRecord::default()
        };
        let mut pass_ids = IdSet::new();
        for filter in filters {
            let Some(fp) = self
                .page_through(filter.as_deref(), out, sent, &mut record.new_flows)
                .await?
            else {
                return Ok(None);
            };
            record.pages += fp.pages;
            for id in fp.ids.iter() {
                pass_ids.insert(&id.to_string());
            }
            // Type filters are disjoint, so the per-filter counts add up to the pass's.
            record.flows += fp.ids.len() as u64;
            if let Some(t) = fp.api_total {
                record.api_total = Some(record.api_total.unwrap_or(0) + t);
            }
        }
        record.page_size = self.page_size;
        self.report.listed = self.seen.len() as u64;
        info!(
            pass = record.pass,
            phase = %phase,
            flows = record.flows,
            new_flows = record.new_flows,
            pages = record.pages,
            "listing pass {} finished",
            record.pass
        );
        self.report.passes.push(record.clone());
        self.report.last_pass_ids = Some(Arc::new(pass_ids));
        Ok(Some(record))
    }

    /// Pages through one filter until a page is short or empty. `Ok(None)` when the receiver is gone.
    async fn page_through(
        &mut self,
        filter: Option<&str>,
        out: &mpsc::Sender<Listed>,
        sent: &mut u64,
        new_flows: &mut u64,
    ) -> Result<Option<FilterPass>, ListError> {
        let mut fp = FilterPass::default();
        let mut page_number = 1u64;
        let mut empty_retries = 0u32;
        let mut ahead = PagesAhead::default();
        loop {
            let prefetched = ahead.take(page_number, self.page_size).await;
            let Some(page) = self.fetch_page(page_number, filter, &mut fp, prefetched).await? else {
                // The page size was lowered: start the filter over so offsets stay consistent.
                page_number = 1;
                continue;
            };
            fp.pages += 1;
            if page.total.is_some() {
                fp.api_total = page.total;
            }
            let asked = self.page_size;
            // Trust the page size the server reports using, when it is smaller than asked.
            let effective = page.page_size.filter(|s| *s > 0 && *s < asked).unwrap_or(asked);
            let entities = page.entities.unwrap_or_default();
            let rows = entities.len() as u64;
            let known_before = fp.ids.len();
            for raw in entities {
                if !self.hand_on(raw, &mut fp, out, sent, new_flows).await {
                    return Ok(None);
                }
            }
            let more_by_counters =
                page.page_count.is_some_and(|c| page_number < c) || page.total.is_some_and(|t| t > fp.ids.len() as u64);
            if rows == 0 {
                if more_by_counters && empty_retries < EMPTY_PAGE_RETRIES {
                    empty_retries += 1;
                    warn!(
                        page_number,
                        page_count = page.page_count,
                        "page {page_number} came back empty before pageCount; asking for it again"
                    );
                    continue;
                }
                return Ok(Some(fp));
            }
            empty_retries = 0;
            if page_number > 1 && fp.ids.len() == known_before {
                warn!(
                    page_number,
                    "page {page_number} only repeated flows already served; ending this pass"
                );
                return Ok(Some(fp));
            }
            let mut next_size = effective;
            if rows < effective {
                if page_number > 1 || !more_by_counters {
                    return Ok(Some(fp)); // a short page ends the pass
                }
                // A short first page, yet more flows: the server silently serves smaller pages
                // than it reports. Page 1 is in hand; go on at the size it really serves.
                warn!(
                    asked = effective,
                    served = rows,
                    "the API served {rows} flows on a page of {effective} while reporting more; paging by {rows} from now on"
                );
                next_size = rows;
            }
            self.page_size = next_size;
            page_number += 1;
            // Ahead only while the flows handed on are being taken up: behind a busy consumer
            // (the fetchers of a full run) pages would only pile up in memory.
            if out.capacity() * 2 >= out.max_capacity()
                && let Some(count) = page.page_count
            {
                let last = count.min(page_number + PAGES_AHEAD - 1);
                ahead.ask(&self.client, filter, page_number, last, self.page_size);
            }
        }
    }

    /// One page (or the answer to it asked for ahead), with the page-size fallback. `Ok(None)`
    /// when the size was lowered.
    async fn fetch_page(
        &mut self,
        page_number: u64,
        filter: Option<&str>,
        fp: &mut FilterPass,
        prefetched: Option<Result<FlowPage, ApiError>>,
    ) -> Result<Option<FlowPage>, ListError> {
        let answer = match prefetched {
            Some(answer) => answer,
            None => self.client.list_flows_page(page_number, self.page_size, filter).await,
        };
        match answer {
            Ok(p) => Ok(Some(p)),
            Err(ApiError::Rejected {
                status: 400, message, ..
            }) => match PAGE_SIZE_FALLBACKS.iter().find(|s| **s < self.page_size) {
                Some(smaller) => {
                    warn!(
                        page_size = self.page_size,
                        smaller,
                        "the API refused page size {} on page {page_number} ({message}); retrying with {smaller}",
                        self.page_size
                    );
                    self.page_size = *smaller;
                    fp.pages += 1;
                    Ok(None)
                }
                None => Err(ListError::Refused { message }),
            },
            Err(source) => Err(ListError::Page {
                page: page_number,
                filter: filter.map(str::to_string),
                source,
            }),
        }
    }

    /// Records one row and sends it on if it is new. False when the receiver is gone.
    async fn hand_on(
        &mut self,
        raw: Box<RawValue>,
        fp: &mut FilterPass,
        out: &mpsc::Sender<Listed>,
        sent: &mut u64,
        new_flows: &mut u64,
    ) -> bool {
        let (reason, row) = match FlowSummary::from_raw(raw) {
            Ok(summary) if !summary.id.is_empty() => {
                fp.ids.insert(&summary.id);
                if !self.seen.insert(&summary.id) {
                    return true; // listed before, in this pass or an earlier one
                }
                *new_flows += 1;
                *sent += 1;
                return out.send(Listed::Flow(summary)).await.is_ok();
            }
            Ok(summary) => ("the API listed a flow without an id", summary.raw),
            Err(raw) => ("the API listed a row that is not a JSON object", raw),
        };
        let text = row.get();
        // The API counts this row in its `total`; so does the pass.
        fp.ids.insert(&format!("\0row {text}"));
        if !self.malformed_seen.insert(text.to_string()) {
            return true;
        }
        warn!("{reason}; recording it as failed");
        self.report.malformed += 1;
        let item = Listed::Malformed {
            reason: reason.to_string(),
            row: text.chars().take(200).collect(),
        };
        *sent += 1;
        out.send(item).await.is_ok()
    }
}
