//! Resolution of `flowvault export`'s settings, one function per concern: credentials,
//! endpoints, selection, pace and retries, storage.

use std::path::Path;
use std::time::Duration;

use super::parse::{ConfigError, derive_login_url, err, read_secret_file};
use super::{EnvLookup, Flags, Found, Kind, Setting, lookup};
use super::{parse_base_url, parse_duration, parse_rate, parse_size, validate_run_id};
use crate::export::{ContentMode, ExportOptions, SinceOptions, YamlOptions};
use crate::genesys::region::{DEFAULT_REGION, Region};
use crate::genesys::{ClientConfig, RetryConfig};
use crate::secret::Secret;
use crate::settings as s;
use crate::sink::s3::{MAX_PART_SIZE, MIN_PART_SIZE, S3Options};
use crate::sink::{Destination, Format};

/// Flow types the API's `type` filter accepts (lowercase; `businessprocess` is not filterable).
pub const FILTERABLE_TYPES: [&str; 20] = [
    "bot",
    "commonmodule",
    "digitalbot",
    "emailsend",
    "inboundcall",
    "inboundchat",
    "inboundemail",
    "inboundshortmessage",
    "inqueuecall",
    "inqueueemail",
    "inqueueshortmessage",
    "outboundcall",
    "securecall",
    "speech",
    "surveyinvite",
    "voice",
    "voicemail",
    "voicesurvey",
    "workflow",
    "workitem",
];

/// Everything `flowvault export` needs, validated.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    /// How to reach, authenticate to and pace the org.
    pub client: ClientConfig,
    /// The region, unless both URLs were given explicitly.
    pub region: Option<Region>,
    /// Where runs go.
    pub destination: Destination,
    /// Layout.
    pub format: Format,
    /// This run's id.
    pub run_id: String,
    /// Lowercase type filters.
    pub types: Vec<String>,
    /// First page size to ask for.
    pub page_size: u64,
    /// Listing passes per phase.
    pub max_list_passes: u32,
    /// Grace period after a stop.
    pub shutdown_grace: Duration,
    /// Stop after this long.
    pub max_duration: Option<Duration>,
    /// S3 settings.
    pub s3: S3Options,
    /// Which configurations to store.
    pub content: ContentMode,
    /// Flows and which Architect kinds (`--kinds`).
    pub kinds: crate::architect::KindSelection,
    /// Also store Archy YAML, batched and retried so.
    pub yaml: Option<YamlOptions>,
    /// The org (id or short name) the credentials must belong to.
    pub expect_org: Option<String>,
    /// The previous run to carry unchanged flows from (`--since`), and `--full-every`.
    pub since: Option<(String, Duration)>,
    /// Metrics, progress and the summary.
    pub reporting: Reporting,
}

/// Where a run reports beyond its manifest.
#[derive(Debug, Clone, Default)]
pub struct Reporting {
    /// The Pushgateway to push metrics to.
    pub pushgateway: Option<url::Url>,
    /// The textfile to write metrics to.
    pub metrics_file: Option<std::path::PathBuf>,
    /// No progress bar.
    pub quiet: bool,
    /// The summary as JSON.
    pub json: bool,
}

/// `--pushgateway`, `--metrics-file`, `--quiet`, `--output`.
fn reporting(r: &Reader<'_>) -> Result<Reporting, ConfigError> {
    let pushgateway = match r.text(&s::PUSHGATEWAY) {
        None => None,
        Some(u) => {
            let url = url::Url::parse(u.trim()).map_err(|e| {
                ConfigError(format!(
                    "{} `{u}` is not a URL ({e}); write e.g. http://pushgateway:9091",
                    s::PUSHGATEWAY.label()
                ))
            })?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return err(format!(
                    "{} `{u}` must be an http:// or https:// URL with a host",
                    s::PUSHGATEWAY.label()
                ));
            }
            Some(url)
        }
    };
    Ok(Reporting {
        pushgateway,
        metrics_file: r.text(&s::METRICS_FILE).map(std::path::PathBuf::from),
        quiet: r.switch(&s::QUIET)?,
        json: r.switch(&s::JSON)?
            || r.text(&s::OUTPUT_FORMAT)
                .is_some_and(|o| o.trim().eq_ignore_ascii_case("json")),
    })
}

/// Reads one setting's value, falling back to its default.
struct Reader<'a> {
    flags: &'a Flags,
    env: EnvLookup<'a>,
}

impl Reader<'_> {
    fn found(&self, setting: &Setting) -> Option<Found> {
        lookup(setting, self.flags, self.env)
    }

    fn text(&self, setting: &Setting) -> Option<String> {
        self.found(setting)
            .map(|f| f.value)
            .or_else(|| setting.default.map(str::to_string))
    }

    fn switch(&self, setting: &Setting) -> Result<bool, ConfigError> {
        debug_assert_eq!(setting.kind, Kind::Switch);
        match self.found(setting) {
            None => Ok(false),
            Some(f) => match f.value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                other => err(format!(
                    "{} `{other}` is not a yes/no value; use true or false",
                    f.source
                )),
            },
        }
    }

    fn number<T: std::str::FromStr>(&self, setting: &Setting) -> Result<Option<T>, ConfigError> {
        match self.text(setting) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ConfigError(format!("{} `{v}` is not a whole number", setting.label()))),
        }
    }

    fn duration(&self, setting: &Setting) -> Result<Option<Duration>, ConfigError> {
        self.text(setting).map(|v| parse_duration(&v, setting.flag)).transpose()
    }
}

impl ExportSettings {
    /// Validates the command line's `flags` against the environment given by `env`.
    pub fn resolve(flags: &Flags, env: EnvLookup<'_>) -> Result<ExportSettings, ConfigError> {
        let r = Reader { flags, env };
        let (connection, page_size, max_list_passes) = connection(&r)?;
        let (destination, format, run_id, types) = selection(&r)?;
        let shutdown_grace = r.duration(&s::SHUTDOWN_GRACE)?.unwrap_or_default();
        let max_duration = r.duration(&s::MAX_DURATION)?;
        if max_duration.is_some_and(|d| d.is_zero()) {
            return err("--max-duration must be more than 0s");
        }
        let s3 = storage(&r, &destination)?;
        let content = r
            .text(&s::CONTENT)
            .unwrap_or_default()
            .parse()
            .map_err(|e| ConfigError(format!("{}: {e}", s::CONTENT.label())))?;
        let yaml = yaml_options(&r)?;
        let since = since(&r)?;
        let kinds = match r.text(&s::KINDS) {
            None => crate::architect::KindSelection::all(),
            Some(v) => crate::architect::KindSelection::parse(&v)
                .map_err(|e| ConfigError(format!("{}: {e}", s::KINDS.label())))?,
        };
        let expect_org = r
            .text(&s::EXPECT_ORG)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        Ok(ExportSettings {
            client: connection.client,
            region: connection.region,
            destination,
            format,
            run_id,
            types,
            page_size,
            max_list_passes,
            shutdown_grace,
            max_duration,
            s3,
            content,
            kinds,
            yaml,
            expect_org,
            since,
            reporting: reporting(&r)?,
        })
    }

    /// The pipeline's options for this run.
    pub fn export_options(&self) -> ExportOptions {
        ExportOptions {
            run_id: self.run_id.clone(),
            format: self.format,
            destination: self.destination.to_string(),
            region: self.region.map(|r| r.domain.to_string()),
            type_filter: self.types.clone(),
            page_size: self.page_size,
            max_list_passes: self.max_list_passes,
            concurrency: self.client.concurrency,
            shutdown_grace: self.shutdown_grace,
            content: self.content,
            kinds: self.kinds.clone(),
            yaml: self.yaml.clone(),
            organization: None,
            progress: None,
            since: self.since.as_ref().map(|(spec, full_every)| {
                let latest = spec == "latest";
                SinceOptions {
                    spec: if latest {
                        self.destination.to_string()
                    } else if !spec.contains('/') {
                        // A bare run id names a run in --to.
                        format!("{}/{spec}", self.destination.to_string().trim_end_matches('/'))
                    } else {
                        spec.clone()
                    },
                    latest,
                    full_every: *full_every,
                    s3: self.s3.clone(),
                }
            }),
        }
    }
}

/// `--since` (a run location or `latest`) and `--full-every`.
fn since(r: &Reader<'_>) -> Result<Option<(String, Duration)>, ConfigError> {
    let full_every = r.duration(&s::FULL_EVERY)?.unwrap_or(Duration::from_secs(7 * 86_400));
    let Some(spec) = r.text(&s::SINCE).map(|v| v.trim().to_string()) else {
        return Ok(None);
    };
    if spec.is_empty() {
        return err(
            "--since is empty; give `latest`, a run id in --to, or a previous run (DEST/RUN or s3://bucket/prefix/RUN)",
        );
    }
    if spec != "latest" {
        // The same parser as every command that takes a run.
        crate::archive::RunSpec::parse(&spec, None).map_err(|e| ConfigError(format!("--since: {e}")))?;
    }
    Ok(Some((spec, full_every)))
}

/// One credential: its flag, its file flag, then each environment variable and its `_FILE` twin.
fn credential(r: &Reader<'_>, value: &Setting, file: &Setting, what: &str) -> Result<String, ConfigError> {
    let found = if let Some(v) = r.flags.get(value.id) {
        Some((value.flag.to_string(), v.trim().to_string()))
    } else if let Some(p) = r.flags.get(file.id) {
        Some((file.flag.to_string(), read_secret_file(Path::new(p), file.flag)?))
    } else {
        let mut found = None;
        for name in value.env {
            if let Some(v) = (r.env)(name).filter(|v| !v.is_empty()) {
                found = Some((name.to_string(), v.trim().to_string()));
                break;
            }
            let file_var = format!("{name}_FILE");
            if let Some(p) = (r.env)(&file_var).filter(|v| !v.is_empty()) {
                found = Some((file_var.clone(), read_secret_file(Path::new(&p), &file_var)?));
                break;
            }
        }
        found
    };
    match found {
        Some((source, v)) if v.is_empty() => err(format!(
            "{what} from {source} is empty; set it to the OAuth client's {what}"
        )),
        Some((_, v)) => Ok(v),
        None => err(format!(
            "missing {what}: set {} (or {}_FILE), or pass {}",
            value.env.join(" or "),
            value.env.first().copied().unwrap_or_default(),
            [value.flag, file.flag]
                .iter()
                .filter(|f| !f.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(" / ")
        )),
    }
}

/// The region and the API and login URLs.
fn endpoints(r: &Reader<'_>) -> Result<(Option<Region>, url::Url, url::Url), ConfigError> {
    let region_input = r.found(&s::REGION).map(|f| f.value);
    let region = match &region_input {
        Some(v) => Region::parse(v).map_err(|e| ConfigError(format!("{}: {e}", s::REGION.label())))?,
        None => DEFAULT_REGION,
    };
    let insecure = r.switch(&s::ALLOW_INSECURE_HTTP)?;
    let api_input = r.found(&s::API_URL).map(|f| f.value);
    let api_url = match &api_input {
        Some(u) => parse_base_url(u, &s::API_URL.label(), insecure)?,
        None => parse_base_url(&region.api_url(), "region", false)?,
    };
    let login_url = match (r.found(&s::LOGIN_URL), &api_input) {
        (Some(u), _) => parse_base_url(&u.value, &s::LOGIN_URL.label(), insecure)?,
        (None, Some(_)) => derive_login_url(&api_url),
        (None, None) => parse_base_url(&region.login_url(), "region", false)?,
    };
    let region = (api_input.is_none() || region_input.is_some()).then_some(region);
    Ok((region, api_url, login_url))
}

/// `--yaml` and how its export jobs are batched and retried.
fn yaml_options(r: &Reader<'_>) -> Result<Option<YamlOptions>, ConfigError> {
    if !r.switch(&s::YAML)? {
        return Ok(None);
    }
    let defaults = YamlOptions::default();
    let batch_size = r.number::<usize>(&s::YAML_BATCH)?.unwrap_or(defaults.batch_size);
    if batch_size == 0 || batch_size > 500 {
        return err(format!("{} must be from 1 to 500", s::YAML_BATCH.label()));
    }
    let retry_wait = r.duration(&s::YAML_RETRY_WAIT)?.unwrap_or(defaults.retry_wait);
    Ok(Some(YamlOptions {
        batch_size,
        retry_wait,
        ..defaults
    }))
}

/// Where the run goes, in which layout, under which id, and which flows.
fn selection(r: &Reader<'_>) -> Result<(Destination, Format, String, Vec<String>), ConfigError> {
    let to = r.text(&s::TO).unwrap_or_default();
    let destination = Destination::parse(&to).map_err(|e| ConfigError(format!("{}: {e}", s::TO.label())))?;
    let format_text = r.text(&s::FORMAT).unwrap_or_default();
    let format: Format = format_text
        .parse()
        .map_err(|e| ConfigError(format!("{}: {e}", s::FORMAT.label())))?;
    let run_id = r.text(&s::RUN_ID).unwrap_or_else(crate::manifest::default_run_id);
    validate_run_id(&run_id)?;
    let mut types = Vec::new();
    for t in r.text(&s::TYPES).unwrap_or_default().split(',') {
        let t = t.trim().to_ascii_lowercase();
        if t.is_empty() || types.contains(&t) {
            continue;
        }
        if t == "businessprocess" {
            return err(
                "--type businessprocess cannot be filtered by the API; run without --type to include those flows",
            );
        }
        if !FILTERABLE_TYPES.contains(&t.as_str()) {
            return err(format!(
                "--type `{t}` is not a flow type the API can filter by; use one of: {}",
                FILTERABLE_TYPES.join(", ")
            ));
        }
        types.push(t);
    }
    Ok((destination, format, run_id, types))
}

type Pace = (Option<f64>, usize, u64, u32, RetryConfig);

/// The request rate, concurrency, paging and retry caps.
fn pace(r: &Reader<'_>) -> Result<Pace, ConfigError> {
    let rate = parse_rate(&r.text(&s::RATE_LIMIT).unwrap_or_default(), &s::RATE_LIMIT.label())?;
    let concurrency = match r.number::<usize>(&s::CONCURRENCY)? {
        Some(0) => return err(format!("{} must be at least 1", s::CONCURRENCY.label())),
        Some(n) if n > 1024 => {
            return err(format!(
                "--concurrency {n} is too high; the API limits requests per token, use at most 1024 (64 is plenty)"
            ));
        }
        Some(n) => n,
        None => default_concurrency(rate),
    };
    let page_size = r.number::<u64>(&s::PAGE_SIZE)?.unwrap_or(500);
    if !(1..=10_000).contains(&page_size) {
        return err(format!(
            "--page-size {page_size} must be between 1 and 10000 (500 is the largest the API is known to serve)"
        ));
    }
    let passes = r.number::<u32>(&s::MAX_LIST_PASSES)?.unwrap_or(5);
    if !(2..=100).contains(&passes) {
        return err(format!("--max-list-passes {passes} must be between 2 and 100"));
    }
    let max_retries = r.number::<u32>(&s::MAX_RETRIES)?.unwrap_or(8);
    let max_throttle_retries = r.number::<u32>(&s::MAX_THROTTLE_RETRIES)?.unwrap_or(40);
    if max_retries > 100 || max_throttle_retries > 1000 {
        return err("--max-retries must be at most 100 and --max-throttle-retries at most 1000");
    }
    let request_timeout = r.duration(&s::REQUEST_TIMEOUT)?.unwrap_or_default();
    if request_timeout.is_zero() {
        return err("--request-timeout must be more than 0s");
    }
    let max_elapsed = r.duration(&s::REQUEST_BUDGET)?.unwrap_or_default();
    if max_elapsed < request_timeout {
        return err("--request-budget must be at least --request-timeout");
    }
    let max_backoff = r
        .duration(&s::MAX_BACKOFF)?
        .unwrap_or_default()
        .max(Duration::from_millis(10));
    let retry = RetryConfig {
        max_retries,
        max_throttle_retries,
        max_backoff,
        base_backoff: Duration::from_millis(500).min(max_backoff),
        request_timeout,
        max_elapsed,
        ..RetryConfig::default()
    };
    Ok((rate, concurrency, page_size, passes, retry))
}

/// S3 settings (checked even for a local destination, so a typo fails early).
fn storage(r: &Reader<'_>, destination: &Destination) -> Result<S3Options, ConfigError> {
    let part_text = r.text(&s::PART_SIZE).unwrap_or_default();
    let part_size = parse_size(&part_text, &s::PART_SIZE.label())?;
    if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part_size) {
        return err(format!(
            "--part-size {part_text} is outside S3's limits: use 5MiB to 5GiB"
        ));
    }
    let uploads = r.number::<usize>(&s::S3_UPLOADS)?.unwrap_or(4);
    if uploads == 0 || uploads > 64 {
        return err("--s3-uploads must be between 1 and 64");
    }
    let sse = match r.text(&s::SSE) {
        None => None,
        Some(v) if v.eq_ignore_ascii_case("AES256") => Some("AES256".to_string()),
        Some(v) if v.eq_ignore_ascii_case("aws:kms") => Some("aws:kms".to_string()),
        Some(v) => return err(format!("--sse `{v}` is not supported; use AES256 or aws:kms")),
    };
    let sse_kms_key_id = r.text(&s::SSE_KMS_KEY_ID);
    if sse_kms_key_id.is_some() && sse.as_deref() != Some("aws:kms") {
        return err("--sse-kms-key-id needs --sse aws:kms");
    }
    let endpoint = s3_endpoint(r)?;
    let storage_class = r.text(&s::STORAGE_CLASS);
    if !matches!(destination, Destination::S3 { .. }) && (sse.is_some() || storage_class.is_some()) {
        return err("--sse and --storage-class apply only to s3:// destinations");
    }
    Ok(S3Options {
        endpoint,
        region: r.text(&s::S3_REGION),
        force_path_style: r.switch(&s::S3_FORCE_PATH_STYLE)?,
        part_size,
        uploads_in_flight: uploads,
        sse,
        sse_kms_key_id,
        storage_class,
        checksum_when_required: r.switch(&s::S3_CHECKSUM_WHEN_REQUIRED)?,
        request_timeout: positive(r, &s::S3_TIMEOUT, Duration::from_secs(60))?,
        keep_incomplete_uploads: r.switch(&s::KEEP_INCOMPLETE_UPLOADS)?,
        incomplete_upload_age: r
            .duration(&s::INCOMPLETE_UPLOAD_AGE)?
            .unwrap_or(Duration::from_secs(86_400)),
        static_credentials: None,
    })
}

/// A duration setting that must be more than zero.
fn positive(r: &Reader<'_>, setting: &Setting, default: Duration) -> Result<Duration, ConfigError> {
    match r.duration(setting)? {
        Some(d) if d.is_zero() => err(format!("{} must be more than 0s", setting.label())),
        Some(d) => Ok(d),
        None => Ok(default),
    }
}

/// The S3 endpoint override, checked to be an http(s) URL with a host.
fn s3_endpoint(r: &Reader<'_>) -> Result<Option<String>, ConfigError> {
    let endpoint = r.text(&s::S3_ENDPOINT);
    if let Some(e) = &endpoint {
        let u = url::Url::parse(e).map_err(|x| {
            ConfigError(format!(
                "--s3-endpoint `{e}` is not a valid URL ({x}); write e.g. http://127.0.0.1:9000"
            ))
        })?;
        if !matches!(u.scheme(), "http" | "https") || u.host().is_none() {
            return err(format!(
                "--s3-endpoint `{e}` must be an http:// or https:// URL with a host"
            ));
        }
    }
    Ok(endpoint)
}

/// How a command that writes to an org (`restore`) reaches and paces it.
#[derive(Debug)]
pub struct ConnectionSettings {
    /// How to reach, authenticate to and pace the org.
    pub client: ClientConfig,
    /// The region, unless both URLs were given explicitly.
    pub region: Option<Region>,
}

impl ConnectionSettings {
    /// Validates the credentials, endpoints and pace settings among `flags` and `env`.
    pub fn resolve(flags: &Flags, env: EnvLookup<'_>) -> Result<ConnectionSettings, ConfigError> {
        connection(&Reader { flags, env }).map(|(c, _, _)| c)
    }
}

/// Credentials, endpoints and pace (with the listing's page size and passes, which `export` uses).
fn connection(r: &Reader<'_>) -> Result<(ConnectionSettings, u64, u32), ConfigError> {
    let client_id = credential(r, &s::CLIENT_ID, &s::CLIENT_ID_FILE, "client id")?;
    let client_secret = Secret::new(credential(
        r,
        &s::CLIENT_SECRET,
        &s::CLIENT_SECRET_FILE,
        "client secret",
    )?);
    let (region, api_url, login_url) = endpoints(r)?;
    let (rate_per_second, concurrency, page_size, passes, retry) = pace(r)?;
    let client = ClientConfig {
        api_url,
        login_url,
        client_id,
        client_secret,
        rate_per_second,
        concurrency,
        retry,
    };
    Ok((ConnectionSettings { client, region }, page_size, passes))
}

/// How the commands that read runs reach an S3-compatible store ([`s::READ`]).
pub fn read_options(flags: &Flags, env: EnvLookup<'_>) -> Result<S3Options, ConfigError> {
    let r = Reader { flags, env };
    Ok(S3Options {
        endpoint: s3_endpoint(&r)?,
        region: r.text(&s::S3_REGION),
        force_path_style: r.switch(&s::S3_FORCE_PATH_STYLE)?,
        ..S3Options::default()
    })
}

/// Concurrency that hides latency at the given rate: enough for about a second and a half of requests.
pub fn default_concurrency(rate_per_second: Option<f64>) -> usize {
    match rate_per_second {
        Some(r) => ((r * 1.5).ceil() as usize).clamp(4, 64),
        None => 32,
    }
}
