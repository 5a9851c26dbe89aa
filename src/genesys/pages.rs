//! The paging rules every paged listing follows, in one place: the flow lister, the
//! divisionviews read beside a run, `plan`'s census, every Architect kind and a data table's
//! rows all page through here.
//!
//! Rows are trusted, not counters: a pass ends on an empty page (asked for again while the
//! counters say more remain), a short page, or a page that only repeats rows already served. A
//! page size refused with 400 falls back to the next smaller one and the walk starts over (so
//! offsets stay consistent); the fallback is expected behaviour and said once, at info. A first
//! page shorter than the size reported while more remain means the server serves smaller pages
//! than it says: paging goes on at the size it really serves.

use serde_json::value::RawValue;
use tracing::{debug, info, warn};

use crate::architect::ArchitectKind;

use super::client::{ApiError, FlowPage, GenesysClient};
use super::flow::FlowSummary;
use super::flow_id::IdSet;

/// Page sizes tried in turn when the API refuses a larger one with 400.
pub const PAGE_SIZE_FALLBACKS: [u64; 8] = [500, 250, 100, 50, 25, 10, 5, 1];
/// How often a page that comes back empty while the counters say more remain is asked for again.
const EMPTY_PAGE_RETRIES: u32 = 2;
/// Pages read at most in one walk (a guard against a server that never serves a short page).
const MAX_PAGES: u64 = 100_000;

/// Which paged listing is read.
#[derive(Debug, Clone)]
pub enum Source {
    /// `GET /api/v2/flows`, optionally with one lowercase type filter.
    Flows(Option<String>),
    /// `GET /api/v2/flows/divisionviews`.
    DivisionViews,
    /// The collection of one Architect kind (prompts with their resources, tables with schema).
    Architect(ArchitectKind),
    /// One data table's rows (`showbrief=false`), by table id.
    Rows(String),
}

impl Source {
    /// One page of this listing.
    pub async fn page(&self, client: &GenesysClient, page_number: u64, size: u64) -> Result<FlowPage, ApiError> {
        match self {
            Source::Flows(filter) => client.list_flows_page(page_number, size, filter.as_deref()).await,
            Source::DivisionViews => client.divisionviews_page(page_number, size).await,
            Source::Architect(kind) => client.architect_page(*kind, page_number, size).await,
            Source::Rows(table) => client.datatable_rows_page(table, page_number, size).await,
        }
    }

    /// The type filter, for error messages.
    pub fn filter(&self) -> Option<String> {
        match self {
            Source::Flows(f) => f.clone(),
            Source::DivisionViews | Source::Architect(_) | Source::Rows(_) => None,
        }
    }
}

/// Why a listing could not go on.
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

    /// The API error underneath, if a page request failed.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            ListError::Page { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn filter_note(filter: &Option<String>) -> String {
    filter.as_deref().map(|f| format!(" (type {f})")).unwrap_or_default()
}

/// The page size in use, and the fallback when the API refuses it.
#[derive(Debug, Clone)]
pub struct PageSize {
    current: u64,
    /// The first size refused, on which page, and the API's words, until the fallback has been
    /// announced.
    refused: Option<(u64, u64, String)>,
    announced: bool,
}

impl PageSize {
    /// Starts at `size` (at least 1).
    pub fn new(size: u64) -> Self {
        PageSize {
            current: size.max(1),
            refused: None,
            announced: false,
        }
    }

    /// The size to ask for now.
    pub fn get(&self) -> u64 {
        self.current
    }

    /// Pages at `size` from now on (the server serves smaller pages than it reports).
    pub fn shrink_to(&mut self, size: u64) {
        self.current = size.clamp(1, self.current);
    }

    /// The API refused the current size with 400: the next smaller one, or the error when none is left.
    pub fn refused(&mut self, page_number: u64, message: String) -> Result<(), ListError> {
        let Some(smaller) = PAGE_SIZE_FALLBACKS.iter().copied().find(|s| *s < self.current) else {
            return Err(ListError::Refused { message });
        };
        debug!(
            "the API refused page size {} ({message}); trying {smaller}",
            self.current
        );
        self.refused.get_or_insert((self.current, page_number, message));
        self.current = smaller;
        Ok(())
    }

    /// A page was served at the current size: a fallback is said once, at info.
    pub fn accepted(&mut self) {
        if self.announced {
            return;
        }
        if let Some((first, page, message)) = self.refused.take() {
            self.announced = true;
            info!(
                refused = first,
                page_size = self.current,
                "the API refused page size {first} on page {page} ({message}); listing {} per page from now on",
                self.current
            );
        }
    }
}

/// What a page came to, for the rule that decides whether the walk goes on.
#[derive(Debug, Clone, Copy)]
pub struct Served {
    /// The page's number.
    pub page_number: u64,
    /// Rows on it.
    pub rows: u64,
    /// Rows on it that no earlier page of this walk served.
    pub new_rows: u64,
    /// Distinct rows served so far in this walk.
    pub distinct: u64,
}

/// What to do after a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Ask for this page next.
    Next(u64),
    /// Ask for the same page again (it came back empty before the counters' end).
    Again,
    /// The walk is over.
    Done,
}

/// The short-page rules for one walk (one pass over one filter).
#[derive(Debug, Default)]
pub struct PageRules {
    empty_retries: u32,
}

impl PageRules {
    /// Decides what follows `served`, given the page's counters; may lower `size` when the server
    /// serves smaller pages than it reports.
    pub fn after(&mut self, page: &FlowPage, served: Served, size: &mut PageSize) -> Step {
        let asked = size.get();
        let n = served.page_number;
        // Trust the page size the server reports using, when it is smaller than asked.
        let effective = page.page_size.filter(|s| *s > 0 && *s < asked).unwrap_or(asked);
        let more_by_counters =
            page.page_count.is_some_and(|c| n < c) || page.total.is_some_and(|t| t > served.distinct);
        if served.rows == 0 {
            if more_by_counters && self.empty_retries < EMPTY_PAGE_RETRIES {
                self.empty_retries += 1;
                warn!(
                    page_number = n,
                    page_count = page.page_count,
                    "page {n} came back empty before pageCount; asking for it again"
                );
                return Step::Again;
            }
            return Step::Done;
        }
        self.empty_retries = 0;
        if n > 1 && served.new_rows == 0 {
            warn!(
                page_number = n,
                "page {n} only repeated rows already served; ending this pass"
            );
            return Step::Done;
        }
        if n >= MAX_PAGES {
            warn!("stopped after {MAX_PAGES} pages");
            return Step::Done;
        }
        size.shrink_to(effective);
        if served.rows < effective {
            if n > 1 || !more_by_counters {
                return Step::Done; // a short page ends the walk
            }
            let rows = served.rows;
            warn!(
                asked = effective,
                served = rows,
                "the API served {rows} rows on a page of {effective} while reporting more; paging by {rows} from now on"
            );
            size.shrink_to(rows);
        }
        Step::Next(n + 1)
    }
}

/// Asks for one page at the current size; `Ok(None)` when the size was refused and lowered
/// (start the walk over).
pub async fn fetch(
    client: &GenesysClient,
    source: &Source,
    page_number: u64,
    size: &mut PageSize,
    answer: Option<Result<FlowPage, ApiError>>,
) -> Result<Option<FlowPage>, ListError> {
    let answer = match answer {
        Some(a) => a,
        None => source.page(client, page_number, size.get()).await,
    };
    match answer {
        Ok(page) => {
            size.accepted();
            Ok(Some(page))
        }
        Err(ApiError::Rejected {
            status: 400, message, ..
        }) => size.refused(page_number, message).map(|()| None),
        Err(source_error) => Err(ListError::Page {
            page: page_number,
            filter: source.filter(),
            source: source_error,
        }),
    }
}

/// What a simple walk read.
#[derive(Debug, Clone, Default)]
pub struct Walked {
    /// Pages requested (refused ones included).
    pub pages: u64,
    /// The API's `total` on the last page.
    pub api_total: Option<u64>,
    /// Rows that were not flows with an id.
    pub malformed: u64,
}

/// What a walk's caller made of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// A row no earlier page served.
    New,
    /// A row an earlier page already served (not handed on).
    Repeated,
    /// Not a row of this listing (no id).
    Malformed,
}

/// Walks one listing to its end, handing each distinct row on once (rows without an id are
/// counted, not handed on).
pub async fn walk(
    client: &GenesysClient,
    source: &Source,
    size: &mut PageSize,
    mut each: impl FnMut(FlowSummary),
) -> Result<Walked, ListError> {
    walk_with(client, source, size, |raw, seen| match FlowSummary::from_raw(raw) {
        Ok(f) if !f.id.is_empty() => {
            if seen.insert(&f.id) {
                each(f);
                Taken::New
            } else {
                Taken::Repeated
            }
        }
        _ => Taken::Malformed,
    })
    .await
}

/// Walks one listing of objects identified by the string field `key` (`id` for objects, `key`
/// for a data table's rows), handing each distinct row on once, as served.
pub async fn walk_raw(
    client: &GenesysClient,
    source: &Source,
    size: &mut PageSize,
    key: &str,
    mut each: impl FnMut(Box<RawValue>, String),
) -> Result<Walked, ListError> {
    walk_with(client, source, size, |raw, seen| {
        let id = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw.get())
            .ok()
            .and_then(|fields| fields.get(key).and_then(|v| v.as_str()).map(str::to_string))
            .filter(|id| !id.is_empty());
        match id {
            Some(id) if seen.insert(&id) => {
                each(raw, id);
                Taken::New
            }
            Some(_) => Taken::Repeated,
            None => Taken::Malformed,
        }
    })
    .await
}

/// The one paging loop: pages through `source`, asking `take` about every row (it dedups
/// through the walk's id set), until the page rules end the walk.
async fn walk_with(
    client: &GenesysClient,
    source: &Source,
    size: &mut PageSize,
    mut take: impl FnMut(Box<RawValue>, &mut IdSet) -> Taken,
) -> Result<Walked, ListError> {
    let mut walked = Walked::default();
    let mut seen = IdSet::new();
    let mut rules = PageRules::default();
    let mut page_number = 1;
    loop {
        walked.pages += 1;
        let Some(mut page) = fetch(client, source, page_number, size, None).await? else {
            page_number = 1;
            rules = PageRules::default();
            continue;
        };
        if page.total.is_some() {
            walked.api_total = page.total;
        }
        let entities = page.entities.take().unwrap_or_default();
        let rows = entities.len() as u64;
        let mut new_rows = 0;
        for raw in entities {
            match take(raw, &mut seen) {
                Taken::New => new_rows += 1,
                Taken::Repeated => {}
                Taken::Malformed => walked.malformed += 1,
            }
        }
        let served = Served {
            page_number,
            rows,
            new_rows,
            distinct: seen.len() as u64,
        };
        match rules.after(&page, served, size) {
            Step::Next(n) => page_number = n,
            Step::Again => {}
            Step::Done => return Ok(walked),
        }
    }
}
