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
pub use super::pages::ListError;
use super::pages::{PageRules, PageSize, Served, Source, Step};
/// Pages asked for ahead of the one being read, while `pageCount` says they exist and the flows
/// already handed on are being taken up (so pages do not pile up in memory): a pass over flows
/// already known (the final pass, an incremental run) then costs half the round trips.
const PAGES_AHEAD: u64 = 2;
/// The final pass starts when at most this many flows are still being fetched, so its round
/// trips overlap the last fetches instead of following them.
const FINAL_PASS_OVERLAP: u64 = 32;

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
    fn ask(&mut self, client: &Arc<GenesysClient>, source: &Source, from: u64, to: u64, size: u64) {
        let next = self
            .0
            .back()
            .filter(|a| a.size == size)
            .map_or(from, |a| (a.page + 1).max(from));
        for page in next..=to {
            let client = client.clone();
            let source = source.clone();
            let task = tokio::spawn(async move { source.page(&client, page, size).await }.in_current_span());
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

/// The page size to start a listing at: the configured one, or the smaller size the previous
/// run's listing settled on (the API refused larger ones then), which saves asking again.
pub fn starting_page_size(configured: u64, previous: Option<u64>) -> u64 {
    match previous {
        Some(p) if p >= 1 && p < configured => {
            info!("listing {p} flows per page, the size the previous run's listing settled on");
            p
        }
        _ => configured,
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

/// How the manifest records a pass.
impl From<&PassRecord> for crate::manifest::ListingPass {
    fn from(p: &PassRecord) -> Self {
        crate::manifest::ListingPass {
            pass: p.pass,
            phase: match p.phase {
                Phase::Initial => crate::manifest::PassPhase::Initial,
                Phase::Final => crate::manifest::PassPhase::Final,
            },
            pages: p.pages,
            flows: p.flows,
            new_flows: p.new_flows,
            api_total: p.api_total,
            page_size: p.page_size,
        }
    }
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

/// Lists every flow, more than once, and hands each new one on exactly once.
pub struct FlowLister {
    client: Arc<GenesysClient>,
    options: ListOptions,
    page_size: PageSize,
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
    /// Pages reported different totals (the org changed while it was paged).
    totals_varied: bool,
}

impl FlowLister {
    /// A lister over `client`.
    pub fn new(client: Arc<GenesysClient>, options: ListOptions) -> Self {
        FlowLister {
            page_size: PageSize::new(options.page_size),
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
                // Started while the last fetches are still answering: it only looks for flows
                // created meanwhile, and any it finds are fetched like the others.
                let target = sent.saturating_sub(FINAL_PASS_OVERLAP);
                if handled.wait_for(|h| *h >= target).await.is_err() {
                    return Ok(());
                }
            }
            let mut passes = 0u32;
            loop {
                passes += 1;
                let Some((record, consistent)) = self.pass(phase, &out, &mut sent).await? else {
                    return Ok(()); // the receiver is gone: the run stopped
                };
                let first_ever = record.pass == 1;
                let new = record.new_flows;
                if first_ever && consistent {
                    info!(
                        "listing pass 1 served every flow the API counted, on pages that agreed; the final pass confirms it"
                    );
                    break;
                }
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

    /// One pass over every filter, and whether it was consistent: every page of each filter
    /// reported the same `total`, and the pass served exactly that many distinct rows (so no row
    /// moved across a page boundary while it paged, and a confirming pass cannot change the
    /// answer before the final one). `Ok(None)` when the receiver is gone.
    async fn pass(
        &mut self,
        phase: Phase,
        out: &mpsc::Sender<Listed>,
        sent: &mut u64,
    ) -> Result<Option<(PassRecord, bool)>, ListError> {
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
        let mut consistent = true;
        let mut pass_ids = IdSet::new();
        for filter in filters {
            let Some(fp) = self
                .page_through(filter.as_deref(), out, sent, &mut record.new_flows)
                .await?
            else {
                return Ok(None);
            };
            record.pages += fp.pages;
            consistent &= !fp.totals_varied && fp.api_total == Some(fp.ids.len() as u64);
            for id in fp.ids.iter() {
                pass_ids.insert(&id.to_string());
            }
            // Type filters are disjoint, so the per-filter counts add up to the pass's.
            record.flows += fp.ids.len() as u64;
            if let Some(t) = fp.api_total {
                record.api_total = Some(record.api_total.unwrap_or(0) + t);
            }
        }
        record.page_size = self.page_size.get();
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
        Ok(Some((record, consistent && self.report.malformed == 0)))
    }

    /// Pages through one filter by the rules of [`super::pages`]. `Ok(None)` when the receiver is gone.
    async fn page_through(
        &mut self,
        filter: Option<&str>,
        out: &mpsc::Sender<Listed>,
        sent: &mut u64,
        new_flows: &mut u64,
    ) -> Result<Option<FilterPass>, ListError> {
        let source = Source::Flows(filter.map(str::to_string));
        let mut fp = FilterPass::default();
        let mut page_number = 1u64;
        let mut rules = PageRules::default();
        let mut ahead = PagesAhead::default();
        loop {
            let prefetched = ahead.take(page_number, self.page_size.get()).await;
            fp.pages += 1;
            let fetched = super::pages::fetch(&self.client, &source, page_number, &mut self.page_size, prefetched);
            let Some(mut page) = fetched.await? else {
                // The page size was lowered: start the filter over so offsets stay consistent.
                (page_number, rules) = (1, PageRules::default());
                continue;
            };
            let Some(served) = self
                .hand_on_page(&mut page, page_number, &mut fp, out, sent, new_flows)
                .await
            else {
                return Ok(None);
            };
            match rules.after(&page, served, &mut self.page_size) {
                Step::Again => continue,
                Step::Done => return Ok(Some(fp)),
                Step::Next(n) => page_number = n,
            }
            // Ahead only while the flows handed on are being taken up: behind a busy consumer
            // (the fetchers of a full run) pages would only pile up in memory.
            if out.capacity() * 2 >= out.max_capacity()
                && let Some(count) = page.page_count
            {
                let last = count.min(page_number + PAGES_AHEAD - 1);
                ahead.ask(&self.client, &source, page_number, last, self.page_size.get());
            }
        }
    }

    /// Hands on one page's rows; what it served, or `None` when the receiver is gone.
    async fn hand_on_page(
        &mut self,
        page: &mut FlowPage,
        page_number: u64,
        fp: &mut FilterPass,
        out: &mpsc::Sender<Listed>,
        sent: &mut u64,
        new_flows: &mut u64,
    ) -> Option<Served> {
        if page.total.is_some() {
            fp.totals_varied |= fp.api_total.is_some() && fp.api_total != page.total;
            fp.api_total = page.total;
        }
        let entities = page.entities.take().unwrap_or_default();
        let rows = entities.len() as u64;
        let known_before = fp.ids.len();
        for raw in entities {
            if !self.hand_on(raw, fp, out, sent, new_flows).await {
                return None;
            }
        }
        Some(Served {
            page_number,
            rows,
            new_rows: (fp.ids.len() - known_before) as u64,
            distinct: fp.ids.len() as u64,
        })
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
