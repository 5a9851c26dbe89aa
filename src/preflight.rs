//! Before the first scheduled run: what a run will cost (`plan`) and whether everything it needs
//! works (`doctor`). Both read the org and check the destination; neither writes a run.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::architect::{ArchitectKind, KindSelection};
use crate::export::ContentMode;
use crate::genesys::architect::{self, ArchitectError, ListedObject};
use crate::genesys::pages::{self, ListError, PageSize, Source};
use crate::genesys::{ApiError, GenesysClient};
use crate::sink::{self, Destination, ProbeError, SinkError, StoreOptions};

/// The listing a plan is based on.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OrgCensus {
    /// Flows per type.
    pub per_type: BTreeMap<String, u64>,
    /// Flows listed.
    pub flows: u64,
    /// Flows whose saved version differs from the published one.
    pub drafts: u64,
    /// Flows never published.
    pub never_published: u64,
    /// Listing pages read.
    pub pages: u64,
}

/// Lists every flow once (the types given, or all) through the lister's paging rules (a refused
/// page size falls back as in a run) and counts them.
pub async fn census(client: &GenesysClient, types: &[String], page_size: u64) -> Result<OrgCensus, ListError> {
    let mut c = OrgCensus::default();
    let filters: Vec<Option<String>> = if types.is_empty() {
        vec![None]
    } else {
        types.iter().cloned().map(Some).collect()
    };
    let mut size = PageSize::new(page_size);
    for filter in filters {
        let walked = pages::walk(client, &Source::Flows(filter), &mut size, |f| {
            c.flows += 1;
            match (&f.published_version, &f.saved_version) {
                (None, _) => c.never_published += 1,
                (Some(p), Some(s)) if p != s => c.drafts += 1,
                _ => {}
            }
            *c.per_type.entry(f.flow_type).or_default() += 1;
        })
        .await?;
        c.pages += walked.pages;
    }
    Ok(c)
}

/// What the org holds of each Architect kind `selection` asks for, read as an export reads it:
/// one listing per kind (a kind the role cannot read is told by its permission, not a failure),
/// the audio files the prompts' resources name, and each data table's row count (one small page
/// per table, its `total`; a table whose page has none is paged through).
pub async fn architect_census(
    client: &GenesysClient,
    selection: &KindSelection,
    page_size: u64,
) -> Result<Vec<KindCensus>, ArchitectError> {
    let mut out = Vec::new();
    for kind in selection.ordered() {
        let mut census = KindCensus {
            kind: kind.as_str().to_string(),
            readable: true,
            ..KindCensus::default()
        };
        let listing = match architect::list_kind(client, kind, page_size).await {
            Ok(listing) => listing,
            Err(e) if e.missing_permission().is_some() => {
                census.readable = false;
                census.listing_pages = 1;
                census.note = e.missing_permission().map(|p| format!("missing permission {p}"));
                out.push(census);
                continue;
            }
            Err(e) => return Err(e),
        };
        census.objects = listing.objects.len() as u64;
        census.listing_pages = listing.pages;
        match kind {
            ArchitectKind::Prompts => {
                census.audio_files = listing
                    .objects
                    .iter()
                    .flat_map(|o| o.resources())
                    .filter(|r| r.media_uri.is_some())
                    .count() as u64;
            }
            ArchitectKind::DataTables => count_rows(client, &listing.objects, &mut census).await?,
            _ => {}
        }
        out.push(census);
    }
    Ok(out)
}

/// Adds each table's rows and the pages of rows an export reads (at least one per table).
async fn count_rows(
    client: &GenesysClient,
    tables: &[ListedObject],
    census: &mut KindCensus,
) -> Result<(), ArchitectError> {
    let size = architect::ARCHITECT_PAGE_SIZE;
    for table in tables {
        let rows = match client.datatable_rows_page(&table.id, 1, 1).await {
            Ok(page) => match page.total {
                Some(total) => total,
                None => architect::table_rows(client, &table.id, &table.name, size).await?.rows,
            },
            Err(ApiError::Forbidden { .. }) => {
                census.note = Some(format!(
                    "missing permission {}: rows not counted",
                    ArchitectKind::ROWS_PERMISSION
                ));
                0
            }
            Err(e) => return Err(e.into()),
        };
        census.rows += rows;
        // The export's walk ends on a short page: a full last page needs one more, empty, page.
        census.row_pages += rows / size + 1;
    }
    Ok(())
}

/// What a run is expected to cost.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// API requests of the whole run (flows' and Architect objects'), all paced by the rate limit.
    pub requests: u64,
    /// At the configured rate, the time those take (none when unlimited).
    pub seconds_at_rate: Option<f64>,
    /// Of `requests`, the flows' (listing passes, configurations, org, divisionviews, export jobs).
    pub flow_requests: u64,
    /// Of `requests`, each Architect kind's, in export order.
    pub architect: Vec<KindCost>,
    /// Prompt audio files downloaded from presigned URLs: not API requests, not rate limited.
    pub audio_downloads: u64,
}

/// What the org holds of one Architect kind, as `plan` counted it.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct KindCensus {
    /// The kind as `--kinds` names it (`prompts`, `datatables`…).
    pub kind: String,
    /// False when the role cannot read it (`note` says which permission is missing).
    pub readable: bool,
    /// Why it is not readable, or what else is worth knowing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Objects listed.
    pub objects: u64,
    /// Listing pages read.
    pub listing_pages: u64,
    /// Prompts: language resources with audio to download.
    pub audio_files: u64,
    /// Data tables: rows, over every table.
    pub rows: u64,
    /// Data tables: pages of rows an export reads (at least one per table).
    pub row_pages: u64,
}

/// What one Architect kind costs a run.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KindCost {
    /// The kind as `--kinds` names it.
    pub kind: String,
    /// Rate-limited API requests: its listing pages, plus each table's pages of rows.
    pub requests: u64,
    /// Listing pages, of `requests`.
    pub listing_pages: u64,
    /// Pages of rows, of `requests` (data tables).
    pub row_pages: u64,
    /// Audio files downloaded (prompts): not API requests.
    pub audio_downloads: u64,
}

/// What each Architect kind in `kinds` costs a run: one listing pass, each table's pages of rows,
/// and (not rate limited) one download per prompt audio file; a kind the role cannot read, the
/// listing page that is refused.
pub fn architect_costs(kinds: &[KindCensus]) -> Vec<KindCost> {
    kinds
        .iter()
        .map(|k| KindCost {
            kind: k.kind.clone(),
            requests: k.listing_pages + k.row_pages,
            listing_pages: k.listing_pages,
            row_pages: k.row_pages,
            audio_downloads: k.audio_files,
        })
        .collect()
}

/// Requests and time for a run over `c`: two listing passes (the list and the final one; a
/// confirming pass only when the org changes while it is listed), one request per flow (two for a
/// draft with `--content both`), the org and divisionviews, and about four per export job.
/// Architect objects (`kinds`, their census) add each kind's listing and rows pages, at the same
/// rate, and the audio downloads, which the rate limit does not pace.
pub fn estimate(
    c: &OrgCensus,
    kinds: &[KindCensus],
    content: ContentMode,
    yaml_batch: Option<usize>,
    rate: Option<f64>,
) -> Estimate {
    let configurations = match content {
        ContentMode::Both => c.flows + c.drafts,
        _ => c.flows,
    };
    let listing = c.pages * 2;
    let views = c.flows.div_ceil(500) + 1;
    let yaml = yaml_batch.map_or(0, |b| (c.flows - c.never_published).div_ceil(b.max(1) as u64) * 4);
    let flow_requests = listing + configurations + views + 2 + yaml;
    let architect = architect_costs(kinds);
    let requests = flow_requests + architect.iter().map(|k| k.requests).sum::<u64>();
    Estimate {
        requests,
        seconds_at_rate: seconds_at(requests, rate),
        flow_requests,
        audio_downloads: architect.iter().map(|k| k.audio_downloads).sum(),
        architect,
    }
}

/// The time `requests` take at `rate` requests/s (with the limiter's headroom).
pub fn seconds_at(requests: u64, rate: Option<f64>) -> Option<f64> {
    rate.filter(|r| *r > 0.0)
        .map(|r| requests as f64 / (r * crate::genesys::ratelimit::HEADROOM))
}

/// One line of `doctor`: a step, whether it passed, what was seen, and how to fix a failure.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The step.
    pub step: &'static str,
    /// Passed.
    pub ok: bool,
    /// What was seen.
    pub detail: String,
    /// How to fix it, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A passed step.
    pub fn pass(step: &'static str, detail: impl Into<String>) -> Check {
        Check {
            step,
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    /// A failed step and its fix.
    pub fn fail(step: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            step,
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Checks that the temporary directory takes a file: a run spools its manifest rows there (about
/// 2 KB a flow) and `--since` unpacks a previous tar.gz there; without it rows stay in memory.
/// With `--since` naming a tar.gz, its free space is compared with what the unpacking needs.
pub async fn check_scratch(since: Option<&crate::export::SinceOptions>) -> Check {
    const STEP: &str = "scratch";
    let dir = std::env::temp_dir();
    let written = tempfile::tempfile().and_then(|mut f| std::io::Write::write_all(&mut f, b"flowvault"));
    if let Err(e) = written {
        return Check::fail(
            STEP,
            format!(
                "cannot write a temporary file in {}: {e}; manifest rows would be held in memory",
                dir.display()
            ),
            "mount a writable directory at /tmp (an emptyDir or tmpfs) or set TMPDIR to one",
        );
    }
    let previous = match since {
        Some(since) => crate::export::previous_archive_size(since).await,
        None => None,
    };
    let free = sink::free_bytes(&dir);
    match (previous, free) {
        (Some((location, needed)), Some(free)) if free < needed => Check::fail(
            STEP,
            format!(
                "TMPDIR {} has {free} bytes free, but --since unpacks the previous archive {location} there ({needed} bytes); its flows would be fetched instead of carried",
                dir.display()
            ),
            format!("set TMPDIR to a directory with at least {needed} bytes free (size the emptyDir or tmpfs for it)"),
        ),
        (Some((location, needed)), free) => Check::pass(
            STEP,
            format!(
                "{} is writable and has room ({} bytes free) to unpack the previous archive {location} ({needed} bytes)",
                dir.display(),
                free.map_or("unknown".to_string(), |f| f.to_string())
            ),
        ),
        (None, _) => Check::pass(
            STEP,
            format!(
                "{} is writable (manifest rows spill there; --since unpacks a previous tar.gz there)",
                dir.display()
            ),
        ),
    }
}

/// Checks the destination the way a run uses it, then writes and deletes one probe under it.
pub async fn check_destination(destination: &Destination, store: &StoreOptions) -> Check {
    const STEP: &str = "destination";
    match sink::probe(destination, store).await {
        Ok(done) => Check::pass(STEP, done),
        Err(ProbeError::Unusable(e)) => Check::fail(STEP, e.to_string(), destination_fix(&e)),
        Err(ProbeError::NotWritable(e)) => Check::fail(
            STEP,
            format!("{destination} can be listed but not written: {e}"),
            "grant s3:PutObject (and s3:AbortMultipartUpload, kms:GenerateDataKey with SSE-KMS) on the prefix",
        ),
    }
}

fn destination_fix(e: &SinkError) -> String {
    match e {
        SinkError::BucketMissing { .. } => "create the bucket, or fix the bucket name in --to".into(),
        SinkError::AccessDenied { .. } => {
            "check the AWS credentials, and grant s3:ListBucket on the bucket for the prefix (plus s3:PutObject on it)"
                .into()
        }
        SinkError::NotADirectory { .. } => "point --to at a directory".into(),
        SinkError::Io { .. } => "make the directory writable by the job's user, or choose another --to".into(),
        _ => "check --to, --s3-endpoint and the network path to the store".into(),
    }
}

/// What each feature needs, for `doctor` to print.
pub const PERMISSIONS: &[(&str, &str, &str)] = &[
    (
        "export",
        "architect:flow:view (and the flows' divisions)",
        "s3:ListBucket (prefix), s3:PutObject, s3:AbortMultipartUpload; kms:GenerateDataKey with SSE-KMS",
    ),
    ("unseen-flow check", "architect:flow:search", "-"),
    (
        "--yaml",
        "architect:jobExport:create, architect:jobExport:view",
        "as export",
    ),
    (
        "verify / diff / runs",
        "-",
        "s3:ListBucket, s3:GetObject; kms:Decrypt with SSE-KMS",
    ),
    (
        "restore",
        "architect:flow:view, :add, :edit, :publish, :unlock",
        "s3:ListBucket, s3:GetObject; kms:Decrypt",
    ),
    (
        "doctor's probe",
        "-",
        "s3:DeleteObject on the prefix (optional: only to remove its probe)",
    ),
];

/// How long the token lasts, as a check: a lifetime shorter than a run is fine (flowvault renews
/// tokens), but worth knowing.
pub fn token_check(lifetime: Duration) -> Check {
    Check::pass(
        "login",
        format!("token issued; it lasts {} s (renewed as needed)", lifetime.as_secs()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(name: &str, objects: u64, listing_pages: u64) -> KindCensus {
        KindCensus {
            kind: name.into(),
            readable: true,
            objects,
            listing_pages,
            ..KindCensus::default()
        }
    }

    fn flows(n: u64) -> OrgCensus {
        OrgCensus {
            flows: n,
            pages: n.div_ceil(500),
            ..OrgCensus::default()
        }
    }

    #[test]
    fn architect_kinds_add_their_listing_and_rows_pages_but_audio_is_counted_apart() {
        let tables = KindCensus {
            rows: 20_000,
            row_pages: 220,
            ..kind("datatables", 50, 1)
        };
        let prompts = KindCensus {
            audio_files: 900,
            ..kind("prompts", 300, 3)
        };
        let kinds = [prompts, tables, kind("schedules", 40, 1), kind("ivrs", 100, 1)];
        let without = estimate(&flows(1000), &[], ContentMode::Latest, None, Some(10.0));
        let with = estimate(&flows(1000), &kinds, ContentMode::Latest, None, Some(10.0));
        assert_eq!(with.flow_requests, without.requests);
        assert_eq!(with.requests, without.requests + 3 + 1 + 220 + 1 + 1);
        assert_eq!(with.audio_downloads, 900, "audio is downloads, not API requests");
        let per_kind: Vec<_> = with.architect.iter().map(|k| (k.kind.as_str(), k.requests)).collect();
        assert_eq!(
            per_kind,
            [("prompts", 3), ("datatables", 221), ("schedules", 1), ("ivrs", 1)]
        );
        let seconds = with.seconds_at_rate.unwrap();
        assert!((seconds - with.requests as f64 / (10.0 * crate::genesys::ratelimit::HEADROOM)).abs() < 1e-9);
    }

    #[test]
    fn a_kind_the_role_cannot_read_costs_the_one_refused_listing_page() {
        let denied = KindCensus {
            readable: false,
            note: Some("missing permission routing:callRoute:view".into()),
            ..kind("ivrs", 0, 1)
        };
        let e = estimate(&flows(10), &[denied], ContentMode::Latest, None, None);
        assert_eq!(e.requests, e.flow_requests + 1);
        assert_eq!(e.seconds_at_rate, None, "no rate: no time");
    }
}
