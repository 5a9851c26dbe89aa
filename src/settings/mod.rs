//! Every setting of `flowvault export`, declared once: its flag, its environment variables, its
//! default and what it means. The command line is built from this table ([`EXPORT`]), the
//! README's settings table is rendered from it ([`markdown_table`]), and error messages name a
//! setting through it ([`Setting::label`]). [`resolve`] turns flags, environment variables and
//! `*_FILE` secrets into one validated [`ExportSettings`] value, before any network call.

mod parse;
mod resolve;

pub use parse::{ConfigError, parse_base_url, parse_duration, parse_rate, parse_size, validate_run_id};
pub use resolve::{ConnectionSettings, ExportSettings, FILTERABLE_TYPES, Reporting, default_concurrency, read_options};

/// How a setting takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One value.
    Value,
    /// On when given (`--flag`, or `true`/`1`/`yes` in the environment).
    Switch,
    /// A list: repeat the flag, or separate values with commas.
    List,
}

/// One setting.
#[derive(Debug)]
pub struct Setting {
    /// The id the command line stores it under.
    pub id: &'static str,
    /// The flag (`--to`); empty for a setting only the environment may carry (a secret).
    pub flag: &'static str,
    /// Environment variables, first match wins; each also has a `_FILE` twin where `secret_file` is set.
    pub env: &'static [&'static str],
    /// The default, as a user would write it.
    pub default: Option<&'static str>,
    /// What it means, one sentence for `--help` and the README.
    pub help: &'static str,
    /// The `--help` section.
    pub heading: &'static str,
    /// How it takes its value.
    pub kind: Kind,
    /// The only values allowed, if limited.
    pub choices: &'static [&'static str],
    /// `NAME_FILE` variables are read as files holding the value.
    pub secret_file: bool,
    /// An older spelling kept working but left out of `--help` and the README's table.
    pub hidden: bool,
}

impl Setting {
    const fn new(id: &'static str, flag: &'static str, env: &'static [&'static str], help: &'static str) -> Self {
        Setting {
            id,
            flag,
            env,
            default: None,
            help,
            heading: "",
            kind: Kind::Value,
            choices: &[],
            secret_file: false,
            hidden: false,
        }
    }
    const fn hidden(mut self) -> Self {
        self.hidden = true;
        self
    }
    const fn default(mut self, d: &'static str) -> Self {
        self.default = Some(d);
        self
    }
    const fn heading(mut self, h: &'static str) -> Self {
        self.heading = h;
        self
    }
    const fn kind(mut self, k: Kind) -> Self {
        self.kind = k;
        self
    }
    const fn choices(mut self, c: &'static [&'static str]) -> Self {
        self.choices = c;
        self
    }
    const fn secret_file(mut self) -> Self {
        self.secret_file = true;
        self
    }

    /// How messages name it: `--to / FLOWVAULT_TO`.
    pub fn label(&self) -> String {
        match (self.flag.is_empty(), self.env.first()) {
            (false, Some(env)) => format!("{} / {env}", self.flag),
            (false, None) => self.flag.to_string(),
            (true, Some(env)) => env.to_string(),
            (true, None) => self.id.to_string(),
        }
    }

    /// The environment part of `--help`: `[env: A, B]`.
    pub fn env_note(&self) -> String {
        if self.env.is_empty() {
            return String::new();
        }
        let file = if self.secret_file { ", or *_FILE" } else { "" };
        format!("[env: {}{file}]", self.env.join(", "))
    }
}

const GENESYS: &str = "Genesys Cloud";
const OUTPUT: &str = "Output";
const SELECTION: &str = "Selection";
const PACE: &str = "Pace and retries";
const RUN: &str = "Run control";
const REPORTING: &str = "Reporting";
const S3: &str = "S3";

/// The OAuth client id.
pub const CLIENT_ID: Setting = Setting::new(
    "client_id",
    "--client-id",
    &["GENESYSCLOUD_OAUTHCLIENT_ID", "PURECLOUD_CLIENT_ID"],
    "OAuth client id.",
)
.heading(GENESYS)
.secret_file();
/// A file holding the client id.
pub const CLIENT_ID_FILE: Setting = Setting::new(
    "client_id_file",
    "--client-id-file",
    &[],
    "Read the OAuth client id from this file.",
)
.heading(GENESYS);
/// The OAuth client secret: environment or file only, never a flag (argv is public).
pub const CLIENT_SECRET: Setting = Setting::new(
    "client_secret",
    "",
    &["GENESYSCLOUD_OAUTHCLIENT_SECRET", "PURECLOUD_CLIENT_SECRET"],
    "OAuth client secret (environment or file only: argv is public).",
)
.heading(GENESYS)
.secret_file();
/// A file holding the client secret.
pub const CLIENT_SECRET_FILE: Setting = Setting::new(
    "client_secret_file",
    "--client-secret-file",
    &[],
    "Read the OAuth client secret from this file (there is no flag for the secret's value).",
)
.heading(GENESYS);
/// The region.
pub const REGION: Setting = Setting::new(
    "region",
    "--region",
    &["GENESYSCLOUD_REGION", "PURECLOUD_REGION"],
    "Region: a domain (usw2.pure.cloud), an AWS-style name (us-west-2) or an SDK name (us_west_2).",
)
.default("mypurecloud.com")
.heading(GENESYS);
/// The API base URL.
pub const API_URL: Setting = Setting::new(
    "api_url",
    "--api-url",
    &["FLOWVAULT_API_URL"],
    "Platform API base URL, overriding the region's (proxies, tests, new regions).",
)
.heading(GENESYS);
/// The login base URL.
pub const LOGIN_URL: Setting = Setting::new(
    "login_url",
    "--login-url",
    &["FLOWVAULT_LOGIN_URL"],
    "OAuth login base URL, overriding the region's (derived from --api-url when that is given).",
)
.heading(GENESYS);
/// Plain http to a remote host.
pub const ALLOW_INSECURE_HTTP: Setting = Setting::new(
    "allow_insecure_http",
    "--allow-insecure-http",
    &["FLOWVAULT_ALLOW_INSECURE_HTTP"],
    "Allow plain http:// API or login URLs to hosts other than loopback.",
)
.heading(GENESYS)
.kind(Kind::Switch);
/// The destination.
pub const TO: Setting = Setting::new(
    "to",
    "--to",
    &["FLOWVAULT_TO"],
    "Destination: a local directory or s3://bucket/prefix.",
)
.default("./flowvault-backups")
.heading(OUTPUT);
/// The layout.
pub const FORMAT: Setting = Setting::new(
    "format",
    "--format",
    &["FLOWVAULT_FORMAT"],
    "Layout: one tar.gz archive, or one JSON object per flow.",
)
.default("tar-gz")
.heading(OUTPUT)
.choices(&["tar-gz", "objects"]);
/// The run id.
pub const RUN_ID: Setting = Setting::new(
    "run_id",
    "--run-id",
    &["FLOWVAULT_RUN_ID"],
    "Run id: the directory or prefix of this run (default: UTC time to the microsecond and a random suffix, e.g. 20261128T210812.123456Z-3fa9; a second export with the same id exits 1).",
)
.heading(OUTPUT);
/// Type filters.
pub const TYPES: Setting = Setting::new(
    "types",
    "--type",
    &["FLOWVAULT_TYPES"],
    "Export only flows of this type (repeatable, or comma-separated), e.g. inboundcall.",
)
.heading(SELECTION)
.kind(Kind::List);
/// Which kinds of objects to export (flows and the Architect objects they stand on).
pub const KINDS: Setting = Setting::new(
    "kinds",
    "--kinds",
    &["FLOWVAULT_KINDS"],
    "What to export (repeatable, or comma-separated): flows, prompts, datatables, schedules, schedulegroups, emergencygroups, ivrs, outcomes, milestones, or all. Default: flows and every Architect kind the role can read (a kind it cannot read is a warning); a kind named here that cannot be read makes the run incomplete.",
)
.heading(SELECTION)
.kind(Kind::List);
/// Which configurations to store.
pub const CONTENT: Setting = Setting::new(
    "content",
    "--content",
    &["FLOWVAULT_CONTENT"],
    "Configurations to store per flow: the latest saved (may be a draft), the published one (what runs), or both (one document when they are the same version).",
)
.default("both")
.heading(SELECTION)
.choices(&crate::export::ContentMode::NAMES);
/// Incremental runs.
pub const SINCE: Setting = Setting::new(
    "since",
    "--since",
    &["FLOWVAULT_SINCE"],
    "Incremental run: carry flows whose listing row is unchanged over from this previous run (`latest`: the newest complete run in --to; a run id in --to; or DEST/RUN, s3://bucket/prefix/RUN; a run that does not exist is a usage error) instead of fetching them; new and changed flows are fetched. Without a usable previous run every flow is fetched.",
)
.heading(OUTPUT);
/// Full runs among incremental ones.
pub const FULL_EVERY: Setting = Setting::new(
    "full_every",
    "--full-every",
    &["FLOWVAULT_FULL_EVERY"],
    "With --since: fetch every flow when the last full run started longer ago than this (catches edits no listing field shows).",
)
.default("7d")
.heading(OUTPUT);
/// Archy YAML through export jobs.
pub const YAML: Setting = Setting::new(
    "yaml",
    "--yaml",
    &["FLOWVAULT_YAML"],
    "Also store Archy YAML of each published flow, from export jobs (needs architect:jobExport:create and :view).",
)
.heading(SELECTION)
.kind(Kind::Switch);
/// Flows per export job.
pub const YAML_BATCH: Setting = Setting::new(
    "yaml_batch",
    "--yaml-batch",
    &["FLOWVAULT_YAML_BATCH"],
    "Flows per export job with --yaml; a failing batch is split down to single flows.",
)
.default("25")
.heading(SELECTION);
/// The first wait after a throttled export job.
pub const YAML_RETRY_WAIT: Setting = Setting::new(
    "yaml_retry_wait",
    "--yaml-retry-wait",
    &["FLOWVAULT_YAML_RETRY_WAIT"],
    "Wait after an export job fails with exit code 107 (throttling in disguise); the n-th retry waits n times this.",
)
.default("15s")
.heading(SELECTION);
/// The org this job must back up.
pub const EXPECT_ORG: Setting = Setting::new(
    "expect_org",
    "--expect-org",
    &["FLOWVAULT_EXPECT_ORG"],
    "The org id or short name (thirdPartyOrgName) the credentials must belong to; any other org stops the run before listing.",
)
.heading(GENESYS);
/// Requests in flight.
pub const CONCURRENCY: Setting = Setting::new(
    "concurrency",
    "--concurrency",
    &["FLOWVAULT_CONCURRENCY"],
    "Configuration requests in flight at once (default: derived from the rate limit).",
)
.heading(PACE);
/// The client-side rate limit.
pub const RATE_LIMIT: Setting = Setting::new("rate_limit", "--rate-limit", &["FLOWVAULT_RATE_LIMIT"], "Client-side request rate limit: 300/min (the documented per-token limit), 5/s, or off to learn the server's from its 429s.").default("300/min").heading(PACE);
/// The first page size.
pub const PAGE_SIZE: Setting = Setting::new(
    "page_size",
    "--page-size",
    &["FLOWVAULT_PAGE_SIZE"],
    "Flows per listing page to ask for (smaller sizes are tried if the API refuses it).",
)
.default("500")
.heading(PACE);
/// Listing passes.
pub const MAX_LIST_PASSES: Setting = Setting::new(
    "max_list_passes",
    "--max-list-passes",
    &["FLOWVAULT_MAX_LIST_PASSES"],
    "Listing passes per phase while passes keep finding new flows (the org is changing); at least 2.",
)
.default("5")
.heading(PACE);
/// Transient retries.
pub const MAX_RETRIES: Setting = Setting::new(
    "max_retries",
    "--max-retries",
    &["FLOWVAULT_MAX_RETRIES"],
    "Retries for transient faults (5xx, timeouts, resets) per request.",
)
.default("8")
.heading(PACE);
/// Throttled retries.
pub const MAX_THROTTLE_RETRIES: Setting = Setting::new(
    "max_throttle_retries",
    "--max-throttle-retries",
    &["FLOWVAULT_MAX_THROTTLE_RETRIES"],
    "Retries for 429 responses per request (each waits the server's Retry-After).",
)
.default("40")
.heading(PACE);
/// One request's time limit.
pub const REQUEST_TIMEOUT: Setting = Setting::new(
    "request_timeout",
    "--request-timeout",
    &["FLOWVAULT_REQUEST_TIMEOUT"],
    "Time limit for one HTTP request, body included.",
)
.default("60s")
.heading(PACE);
/// One request's total budget.
pub const REQUEST_BUDGET: Setting = Setting::new(
    "request_budget",
    "--request-budget",
    &["FLOWVAULT_REQUEST_BUDGET"],
    "Total time one request may take with all its retries and waits.",
)
.default("1h")
.heading(PACE);
/// Longest backoff.
pub const MAX_BACKOFF: Setting = Setting::new(
    "max_backoff",
    "--max-backoff",
    &["FLOWVAULT_MAX_BACKOFF"],
    "Upper bound of one backoff delay.",
)
.default("30s")
.heading(PACE);
/// Grace after a stop.
pub const SHUTDOWN_GRACE: Setting = Setting::new(
    "shutdown_grace",
    "--shutdown-grace",
    &["FLOWVAULT_SHUTDOWN_GRACE"],
    "After SIGTERM/SIGINT or --max-duration, how long requests in flight may finish.",
)
.default("10s")
.heading(RUN);
/// Longest run.
pub const MAX_DURATION: Setting = Setting::new(
    "max_duration",
    "--max-duration",
    &["FLOWVAULT_MAX_DURATION"],
    "Stop the run (as if interrupted, keeping what was fetched) once it has run this long, e.g. 45m.",
)
.heading(RUN);
/// S3 endpoint.
pub const S3_ENDPOINT: Setting = Setting::new(
    "s3_endpoint",
    "--s3-endpoint",
    &["FLOWVAULT_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"],
    "S3 endpoint URL for S3-compatible stores (MinIO, Ceph, R2...).",
)
.heading(S3);
/// S3 region.
pub const S3_REGION: Setting = Setting::new(
    "s3_region",
    "--s3-region",
    &["FLOWVAULT_S3_REGION"],
    "S3 region (default: from the AWS configuration chain, else us-east-1).",
)
.heading(S3);
/// Path-style addressing.
pub const S3_FORCE_PATH_STYLE: Setting = Setting::new(
    "s3_force_path_style",
    "--s3-force-path-style",
    &["FLOWVAULT_S3_FORCE_PATH_STYLE"],
    "Path-style addressing (http://host/bucket/key), as MinIO and Ceph often need.",
)
.heading(S3)
.kind(Kind::Switch);
/// Multipart part size.
pub const PART_SIZE: Setting = Setting::new(
    "part_size",
    "--part-size",
    &["FLOWVAULT_PART_SIZE"],
    "Multipart part size for the tar-gz format (5MiB to 5GiB).",
)
.default("8MiB")
.heading(S3);
/// Uploads in flight.
pub const S3_UPLOADS: Setting = Setting::new(
    "s3_uploads",
    "--s3-uploads",
    &["FLOWVAULT_S3_UPLOADS"],
    "Uploads in flight at once (parts or objects).",
)
.default("4")
.heading(S3);
/// Server-side encryption.
pub const SSE: Setting = Setting::new(
    "sse",
    "--sse",
    &["FLOWVAULT_SSE"],
    "Server-side encryption: AES256 or aws:kms.",
)
.heading(S3);
/// The KMS key.
pub const SSE_KMS_KEY_ID: Setting = Setting::new(
    "sse_kms_key_id",
    "--sse-kms-key-id",
    &["FLOWVAULT_SSE_KMS_KEY_ID"],
    "KMS key id or ARN for --sse aws:kms (without it S3 uses the AWS-managed aws/s3 key).",
)
.heading(S3);
/// Storage class.
pub const STORAGE_CLASS: Setting = Setting::new(
    "storage_class",
    "--storage-class",
    &["FLOWVAULT_STORAGE_CLASS"],
    "Storage class, e.g. STANDARD_IA.",
)
.heading(S3);
/// Checksums only when required.
pub const S3_CHECKSUM_WHEN_REQUIRED: Setting = Setting::new("s3_checksum_when_required", "--s3-checksum-when-required", &["FLOWVAULT_S3_CHECKSUM_WHEN_REQUIRED"], "Send checksums only when S3 requires them (for stores that reject streaming checksums: Ceph, JuiceFS); flowvault still sends an explicit SHA-256 per object it writes whole.").heading(S3).kind(Kind::Switch);

/// How long one S3 request may take.
pub const S3_TIMEOUT: Setting = Setting::new(
    "s3_timeout",
    "--s3-timeout",
    &["FLOWVAULT_S3_TIMEOUT"],
    "Cut an S3 request (one attempt) after this long; it is retried twice, so a store that stops answering ends the run within three times this.",
)
.default("60s")
.heading(S3);
/// Keep multipart uploads crashed runs left.
pub const KEEP_INCOMPLETE_UPLOADS: Setting = Setting::new(
    "keep_incomplete_uploads",
    "--keep-incomplete-uploads",
    &["FLOWVAULT_KEEP_INCOMPLETE_UPLOADS"],
    "Report, but do not abort, the incomplete multipart uploads crashed runs left under the destination (by default those older than --abort-incomplete-uploads-after are aborted).",
)
.heading(S3)
.kind(Kind::Switch);
/// When an incomplete upload counts as abandoned.
pub const INCOMPLETE_UPLOAD_AGE: Setting = Setting::new(
    "incomplete_upload_age",
    "--abort-incomplete-uploads-after",
    &["FLOWVAULT_ABORT_INCOMPLETE_UPLOADS_AFTER"],
    "An incomplete multipart upload under the destination older than this was left by a crashed run: the next run aborts it.",
)
.default("1d")
.heading(S3);

/// Every setting of `flowvault export`, in `--help` order.
pub const EXPORT: &[&Setting] = &[
    &CLIENT_ID,
    &CLIENT_ID_FILE,
    &CLIENT_SECRET,
    &CLIENT_SECRET_FILE,
    &REGION,
    &API_URL,
    &LOGIN_URL,
    &ALLOW_INSECURE_HTTP,
    &EXPECT_ORG,
    &TO,
    &FORMAT,
    &RUN_ID,
    &SINCE,
    &FULL_EVERY,
    &TYPES,
    &KINDS,
    &CONTENT,
    &YAML,
    &YAML_BATCH,
    &YAML_RETRY_WAIT,
    &CONCURRENCY,
    &RATE_LIMIT,
    &PAGE_SIZE,
    &MAX_LIST_PASSES,
    &MAX_RETRIES,
    &MAX_THROTTLE_RETRIES,
    &REQUEST_TIMEOUT,
    &REQUEST_BUDGET,
    &MAX_BACKOFF,
    &SHUTDOWN_GRACE,
    &MAX_DURATION,
    &S3_ENDPOINT,
    &S3_REGION,
    &S3_FORCE_PATH_STYLE,
    &PART_SIZE,
    &S3_UPLOADS,
    &SSE,
    &SSE_KMS_KEY_ID,
    &STORAGE_CLASS,
    &S3_CHECKSUM_WHEN_REQUIRED,
    &S3_TIMEOUT,
    &KEEP_INCOMPLETE_UPLOADS,
    &INCOMPLETE_UPLOAD_AGE,
    &PUSHGATEWAY,
    &METRICS_FILE,
    &QUIET,
    &OUTPUT_FORMAT,
    &JSON,
];

/// Where metrics are pushed.
pub const PUSHGATEWAY: Setting = Setting::new(
    "pushgateway",
    "--pushgateway",
    &["FLOWVAULT_PUSHGATEWAY_URL"],
    "Push the run's metrics to this Prometheus Pushgateway at the end of every run (job flowvault, label org).",
)
.heading(REPORTING);
/// Where the metrics textfile goes.
pub const METRICS_FILE: Setting = Setting::new(
    "metrics_file",
    "--metrics-file",
    &["FLOWVAULT_METRICS_FILE"],
    "Write the run's metrics to this file (node-exporter textfile format, replaced atomically).",
)
.heading(REPORTING);
/// No progress bar.
pub const QUIET: Setting = Setting::new(
    "quiet",
    "--quiet",
    &["FLOWVAULT_QUIET"],
    "No progress bar (it is shown only when stderr is a terminal and logs are text).",
)
.heading(REPORTING)
.kind(Kind::Switch);
/// The end-of-run summary format.
pub const OUTPUT_FORMAT: Setting = Setting::new(
    "output",
    "--output",
    &["FLOWVAULT_OUTPUT"],
    "The summary on stdout at the end: text lines, or one JSON object.",
)
.default("text")
.heading(REPORTING)
.choices(&["text", "json"])
.hidden();
/// The end-of-run summary as JSON: the `--json` every command shares (`--output json` is the
/// older, hidden spelling).
pub const JSON: Setting = Setting::new(
    "json",
    "--json",
    &["FLOWVAULT_JSON"],
    "Print the end-of-run summary on stdout as one JSON object (older spelling: --output json / FLOWVAULT_OUTPUT=json).",
)
.heading(REPORTING)
.kind(Kind::Switch);

/// The settings of the commands that read runs back: how to reach an S3-compatible store.
pub const READ: &[&Setting] = &[&S3_ENDPOINT, &S3_REGION, &S3_FORCE_PATH_STYLE];

/// The settings of `restore`: the org to write to and how to pace it, and how to read the run.
pub const RESTORE: &[&Setting] = &[
    &CLIENT_ID,
    &CLIENT_ID_FILE,
    &CLIENT_SECRET,
    &CLIENT_SECRET_FILE,
    &REGION,
    &API_URL,
    &LOGIN_URL,
    &ALLOW_INSECURE_HTTP,
    &CONCURRENCY,
    &RATE_LIMIT,
    &MAX_RETRIES,
    &MAX_THROTTLE_RETRIES,
    &REQUEST_TIMEOUT,
    &REQUEST_BUDGET,
    &MAX_BACKOFF,
    &S3_ENDPOINT,
    &S3_REGION,
    &S3_FORCE_PATH_STYLE,
];

/// Values given on the command line, by setting id (lists joined with commas, switches as `true`).
pub type Flags = std::collections::BTreeMap<&'static str, String>;

/// Reads environment variables; a closure so tests and the demo can supply their own.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// Where a value came from, for messages.
pub struct Found {
    /// The flag or variable that carried it.
    pub source: String,
    /// The value.
    pub value: String,
}

/// A setting's value: the flag, else the first non-empty environment variable, else none.
pub fn lookup(setting: &Setting, flags: &Flags, env: EnvLookup<'_>) -> Option<Found> {
    if let Some(v) = flags.get(setting.id) {
        return Some(Found {
            source: setting.flag.to_string(),
            value: v.clone(),
        });
    }
    setting.env.iter().find_map(|name| {
        env(name).filter(|v| !v.is_empty()).map(|value| Found {
            source: name.to_string(),
            value,
        })
    })
}

/// The README's settings table (kept in the README between markers; a test checks it is current).
pub fn markdown_table() -> String {
    let mut out = String::from("| Flag | Environment | Default | Meaning |\n|---|---|---|---|\n");
    for s in EXPORT.iter().filter(|s| !s.hidden) {
        let flag = if s.flag.is_empty() {
            "—".to_string()
        } else {
            format!("`{}`", s.flag)
        };
        let mut env: Vec<String> = s.env.iter().map(|e| format!("`{e}`")).collect();
        if s.secret_file {
            env.push("or `*_FILE`".into());
        }
        let default = s.default.map(|d| format!("`{d}`")).unwrap_or_default();
        out.push_str(&format!("| {flag} | {} | {default} | {} |\n", env.join(", "), s.help));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_settings_table_is_the_one_rendered_from_this_module() {
        let readme = include_str!("../../README.md");
        let table = markdown_table();
        assert!(
            readme.contains(&table),
            "README.md's settings table is out of date; replace it with:\n{table}"
        );
    }

    #[test]
    fn every_setting_has_a_unique_id_flag_and_environment_name() {
        let mut seen = std::collections::HashSet::new();
        for s in EXPORT {
            assert!(seen.insert(s.id), "{}", s.id);
            assert!(s.flag.is_empty() || seen.insert(s.flag), "{}", s.flag);
            for e in s.env {
                assert!(seen.insert(e), "{e}");
            }
        }
    }
}
