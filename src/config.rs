//! Turns flags, environment variables and `*_FILE` secrets into one validated settings value,
//! before any network call. Every error names the setting at fault and how to fix it.

use std::path::Path;
use std::time::Duration;

use url::Url;

use crate::cli::ExportArgs;
use crate::genesys::region::{DEFAULT_REGION, Region};
use crate::genesys::retry::RetryConfig;
use crate::secret::Secret;
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

/// Smallest multipart part S3 accepts (except the last).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Largest multipart part S3 accepts.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// A setting that cannot be used; the message says which and how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// S3 settings, used when the destination is `s3://`.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// Endpoint override for S3-compatible stores.
    pub endpoint: Option<String>,
    /// Region override.
    pub region: Option<String>,
    /// Path-style addressing.
    pub force_path_style: bool,
    /// Multipart part size in bytes.
    pub part_size: u64,
    /// Uploads in flight at once.
    pub uploads_in_flight: usize,
    /// `AES256` or `aws:kms`.
    pub sse: Option<String>,
    /// KMS key for `aws:kms`.
    pub sse_kms_key_id: Option<String>,
    /// Storage class.
    pub storage_class: Option<String>,
    /// Only send checksums S3 requires.
    pub checksum_when_required: bool,
}

/// Everything `flowvault export` needs, validated.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: Secret,
    /// The region, unless both URLs were given explicitly.
    pub region: Option<Region>,
    /// Platform API base URL.
    pub api_url: Url,
    /// OAuth login base URL.
    pub login_url: Url,
    /// Where runs go.
    pub destination: Destination,
    /// Layout.
    pub format: Format,
    /// This run's id.
    pub run_id: String,
    /// Lowercase type filters.
    pub types: Vec<String>,
    /// Configuration requests in flight.
    pub concurrency: usize,
    /// Client-side rate limit in requests per second; `None` for unlimited.
    pub rate_per_second: Option<f64>,
    /// First page size to ask for.
    pub page_size: u64,
    /// Retry caps and delays.
    pub retry: RetryConfig,
    /// Grace period after a stop.
    pub shutdown_grace: Duration,
    /// Stop after this long.
    pub max_duration: Option<Duration>,
    /// S3 settings.
    pub s3: S3Settings,
}

/// Reads environment variables; a closure so tests can supply their own.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, ignoring variables that are set but empty only where noted by callers.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

fn read_secret_file(path: &Path, setting: &str) -> Result<String, ConfigError> {
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(s) => Ok(s.trim().to_string()),
            Err(_) => err(format!("{setting}: file {} is not UTF-8 text", path.display())),
        },
        Err(e) => err(format!(
            "{setting}: cannot read {} ({}); check the path and its permissions",
            path.display(),
            io_reason(&e)
        )),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Resolves one credential from a flag file, then each environment variable and its `_FILE` twin.
fn credential(
    flag_value: Option<&str>,
    flag_file: Option<&Path>,
    flag_names: (&str, &str),
    env_names: &[&str],
    env: EnvLookup<'_>,
    what: &str,
) -> Result<String, ConfigError> {
    let mut found: Option<(String, String)> = None;
    if let Some(v) = flag_value {
        found = Some((flag_names.0.to_string(), v.trim().to_string()));
    } else if let Some(p) = flag_file {
        found = Some((flag_names.1.to_string(), read_secret_file(p, flag_names.1)?));
    } else {
        for name in env_names {
            if let Some(v) = env(name).filter(|v| !v.is_empty()) {
                found = Some((name.to_string(), v.trim().to_string()));
                break;
            }
            let file_var = format!("{name}_FILE");
            if let Some(p) = env(&file_var).filter(|v| !v.is_empty()) {
                found = Some((file_var.clone(), read_secret_file(Path::new(&p), &file_var)?));
                break;
            }
        }
    }
    match found {
        Some((source, v)) if v.is_empty() => err(format!(
            "{what} from {source} is empty; set it to the OAuth client's {what}"
        )),
        Some((_, v)) => Ok(v),
        None => err(format!(
            "missing {what}: set {} (or {}_FILE){}",
            env_names.join(" or "),
            env_names[0],
            if flag_names.0.is_empty() {
                format!(", or pass {}", flag_names.1)
            } else {
                format!(", or pass {} / {}", flag_names.0, flag_names.1)
            }
        )),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Parses and checks an API or login base URL.
pub fn parse_base_url(value: &str, setting: &str, allow_insecure_http: bool) -> Result<Url, ConfigError> {
    let url = Url::parse(value.trim()).map_err(|e| {
        ConfigError(format!(
            "{setting} `{value}` is not a valid URL ({e}); write e.g. https://api.mypurecloud.com"
        ))
    })?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) || allow_insecure_http => {}
        "http" => {
            return err(format!(
                "{setting} `{value}` uses plain http to a non-loopback host; use https, or pass --allow-insecure-http if you really mean it"
            ));
        }
        other => {
            return err(format!("{setting} `{value}` has scheme `{other}`; use https://"));
        }
    }
    if url.host().is_none() {
        return err(format!("{setting} `{value}` has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return err(format!(
            "{setting} must not carry credentials; use the client id and secret settings"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return err(format!("{setting} `{value}` must not have a query or fragment"));
    }
    Ok(url)
}

/// The login URL the SDKs derive from an API URL: `api.` becomes `login.`; otherwise the same host.
fn derive_login_url(api: &Url) -> Url {
    let mut login = api.clone();
    if let Some(host) = api.host_str()
        && let Some(rest) = host.strip_prefix("api.")
    {
        let _ = login.set_host(Some(&format!("login.{rest}")));
    }
    login
}

/// Parses a duration like `30s`, `500ms`, `5m`, `2h`, `2h45m` or plain seconds.
pub fn parse_duration(value: &str, setting: &str) -> Result<Duration, ConfigError> {
    let hint = "write e.g. 30s, 500ms, 5m, 2h or 2h45m";
    let mut rest = value.trim();
    if rest.is_empty() {
        return err(format!("{setting} is empty; {hint}"));
    }
    let mut secs = 0.0f64;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(split);
        let n: f64 = num
            .parse()
            .map_err(|_| ConfigError(format!("{setting} `{value}` is not a duration; {hint}")))?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        secs += match unit.trim() {
            "" if next.is_empty() && secs == 0.0 => n,
            "s" | "sec" | "secs" => n,
            "ms" => n / 1000.0,
            "m" | "min" | "mins" => n * 60.0,
            "h" | "hr" | "hours" => n * 3600.0,
            other => {
                return err(format!(
                    "{setting} `{value}` has unknown unit `{other}`; use ms, s, m or h"
                ));
            }
        };
        rest = next;
    }
    if !secs.is_finite() || !(0.0..=30.0 * 86400.0).contains(&secs) {
        return err(format!("{setting} `{value}` is out of range (0 to 30 days)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a rate like `300/min`, `5/s`, `18000/h`, or `off`; returns requests per second.
pub fn parse_rate(value: &str, setting: &str) -> Result<Option<f64>, ConfigError> {
    let v = value.trim().to_ascii_lowercase();
    if matches!(v.as_str(), "off" | "none" | "unlimited" | "0") {
        return Ok(None);
    }
    let hint = "write e.g. 300/min, 5/s or off";
    let Some((n, unit)) = v.split_once('/') else {
        return err(format!("{setting} `{value}` has no unit; {hint}"));
    };
    let n: f64 = n
        .trim()
        .parse()
        .map_err(|_| ConfigError(format!("{setting} `{value}` is not a rate; {hint}")))?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        other => {
            return err(format!("{setting} `{value}` has unknown unit `{other}`; {hint}"));
        }
    };
    if !n.is_finite() || n <= 0.0 || n > 1e6 {
        return err(format!(
            "{setting} `{value}` must be a positive number of requests; {hint}"
        ));
    }
    Ok(Some(n / per))
}

/// Parses a size like `8MiB`, `16MB`, `5242880`.
pub fn parse_size(value: &str, setting: &str) -> Result<u64, ConfigError> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| ConfigError(format!("{setting} `{value}` is not a size; write e.g. 8MiB")))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        other => {
            return err(format!(
                "{setting} `{value}` has unknown unit `{other}`; use KiB, MiB or GiB"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| ConfigError(format!("{setting} `{value}` is too large")))
}

/// Checks a run id: it becomes a directory name and an S3 key segment.
pub fn validate_run_id(id: &str) -> Result<(), ConfigError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        err(format!(
            "--run-id `{id}` must be 1-128 characters of letters, digits, `-`, `_` and `.`, not starting with `.`"
        ))
    }
}

/// Concurrency that hides latency at the given rate: enough for about a second and a half of requests.
pub fn default_concurrency(rate_per_second: Option<f64>) -> usize {
    match rate_per_second {
        Some(r) => ((r * 1.5).ceil() as usize).clamp(4, 64),
        None => 32,
    }
}

impl ExportSettings {
    /// Validates `args` against the environment given by `env`.
    pub fn resolve(args: &ExportArgs, env: EnvLookup<'_>) -> Result<ExportSettings, ConfigError> {
        let client_id = credential(
            args.client_id.as_deref(),
            args.client_id_file.as_deref(),
            ("--client-id", "--client-id-file"),
            &["GENESYSCLOUD_OAUTHCLIENT_ID", "PURECLOUD_CLIENT_ID"],
            env,
            "client id",
        )?;
        let client_secret = Secret::new(credential(
            None,
            args.client_secret_file.as_deref(),
            ("", "--client-secret-file"),
            &["GENESYSCLOUD_OAUTHCLIENT_SECRET", "PURECLOUD_CLIENT_SECRET"],
            env,
            "client secret",
        )?);

        let region_input = args
            .region
            .clone()
            .or_else(|| env("GENESYSCLOUD_REGION").filter(|v| !v.is_empty()))
            .or_else(|| env("PURECLOUD_REGION").filter(|v| !v.is_empty()));
        let region = match &region_input {
            Some(r) => Region::parse(r).map_err(|e| ConfigError(format!("--region / GENESYSCLOUD_REGION: {e}")))?,
            None => DEFAULT_REGION,
        };
        let api_url = match &args.api_url {
            Some(u) => parse_base_url(u, "--api-url / FLOWVAULT_API_URL", args.allow_insecure_http)?,
            None => parse_base_url(&region.api_url(), "region", false)?,
        };
        let login_url = match (&args.login_url, &args.api_url) {
            (Some(u), _) => parse_base_url(u, "--login-url / FLOWVAULT_LOGIN_URL", args.allow_insecure_http)?,
            (None, Some(_)) => derive_login_url(&api_url),
            (None, None) => parse_base_url(&region.login_url(), "region", false)?,
        };
        let explicit_urls = args.api_url.is_some();

        let destination = Destination::parse(&args.to).map_err(|e| ConfigError(format!("--to / FLOWVAULT_TO: {e}")))?;
        let run_id = args.run_id.clone().unwrap_or_else(crate::manifest::default_run_id);
        validate_run_id(&run_id)?;

        let mut types = Vec::new();
        for t in &args.types {
            let t = t.trim().to_ascii_lowercase();
            if t.is_empty() {
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
            if !types.contains(&t) {
                types.push(t);
            }
        }

        let rate_per_second = parse_rate(&args.rate_limit, "--rate-limit / FLOWVAULT_RATE_LIMIT")?;
        let concurrency = match args.concurrency {
            Some(0) => return err("--concurrency / FLOWVAULT_CONCURRENCY must be at least 1"),
            Some(n) if n > 1024 => {
                return err(format!(
                    "--concurrency {n} is too high; the API limits requests per token, use at most 1024 (64 is plenty)"
                ));
            }
            Some(n) => n,
            None => default_concurrency(rate_per_second),
        };
        if !(1..=10_000).contains(&args.page_size) {
            return err(format!(
                "--page-size {} must be between 1 and 10000 (500 is the largest the API is known to serve)",
                args.page_size
            ));
        }
        if args.max_retries > 100 || args.max_throttle_retries > 1000 {
            return err("--max-retries must be at most 100 and --max-throttle-retries at most 1000");
        }
        let request_timeout = parse_duration(&args.request_timeout, "--request-timeout")?;
        if request_timeout.is_zero() {
            return err("--request-timeout must be more than 0s");
        }
        let max_backoff = parse_duration(&args.max_backoff, "--max-backoff")?;
        let retry = RetryConfig {
            max_retries: args.max_retries,
            max_throttle_retries: args.max_throttle_retries,
            max_backoff: max_backoff.max(Duration::from_millis(10)),
            base_backoff: Duration::from_millis(500).min(max_backoff.max(Duration::from_millis(10))),
            request_timeout,
            ..RetryConfig::default()
        };
        let shutdown_grace = parse_duration(&args.shutdown_grace, "--shutdown-grace")?;
        let max_duration = match &args.max_duration {
            Some(d) => {
                let d = parse_duration(d, "--max-duration")?;
                if d.is_zero() {
                    return err("--max-duration must be more than 0s");
                }
                Some(d)
            }
            None => None,
        };

        let part_size = parse_size(&args.part_size, "--part-size / FLOWVAULT_PART_SIZE")?;
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part_size) {
            return err(format!(
                "--part-size {} is outside S3's limits: use 5MiB to 5GiB",
                args.part_size
            ));
        }
        if args.s3_uploads == 0 || args.s3_uploads > 64 {
            return err("--s3-uploads must be between 1 and 64");
        }
        let sse = match args.sse.as_deref() {
            None => None,
            Some(s) if s.eq_ignore_ascii_case("AES256") => Some("AES256".to_string()),
            Some(s) if s.eq_ignore_ascii_case("aws:kms") => Some("aws:kms".to_string()),
            Some(s) => {
                return err(format!("--sse `{s}` is not supported; use AES256 or aws:kms"));
            }
        };
        if args.sse_kms_key_id.is_some() && sse.as_deref() != Some("aws:kms") {
            return err("--sse-kms-key-id needs --sse aws:kms");
        }
        let s3_endpoint = args
            .s3_endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_S3").filter(|v| !v.is_empty()))
            .or_else(|| env("AWS_ENDPOINT_URL").filter(|v| !v.is_empty()));
        if let Some(e) = &s3_endpoint {
            let u = Url::parse(e).map_err(|x| {
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
        let is_s3 = matches!(destination, Destination::S3 { .. });
        if !is_s3 && (args.sse.is_some() || args.storage_class.is_some()) {
            return err("--sse and --storage-class apply only to s3:// destinations");
        }

        Ok(ExportSettings {
            client_id,
            client_secret,
            region: (!explicit_urls || region_input.is_some()).then_some(region),
            api_url,
            login_url,
            destination,
            format: args.format,
            run_id,
            types,
            concurrency,
            rate_per_second,
            page_size: args.page_size,
            retry,
            shutdown_grace,
            max_duration,
            s3: S3Settings {
                endpoint: s3_endpoint,
                region: args.s3_region.clone(),
                force_path_style: args.s3_force_path_style,
                part_size,
                uploads_in_flight: args.s3_uploads,
                sse,
                sse_kms_key_id: args.sse_kms_key_id.clone(),
                storage_class: args.storage_class.clone(),
                checksum_when_required: args.s3_checksum_when_required,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates_durations_and_sizes() {
        assert_eq!(parse_rate("300/min", "x").unwrap(), Some(5.0));
        assert_eq!(parse_rate("50/s", "x").unwrap(), Some(50.0));
        assert_eq!(parse_rate("off", "x").unwrap(), None);
        assert!(parse_rate("300", "x").is_err());
        assert_eq!(parse_duration("500ms", "x").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m", "x").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("2h45m", "x").unwrap(), Duration::from_secs(9900));
        assert_eq!(parse_duration("90", "x").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("5x", "x").is_err());
        assert!(parse_duration("-1s", "x").is_err());
        assert_eq!(parse_size("8MiB", "x").unwrap(), 8 * 1024 * 1024);
        assert!(parse_size("-5", "x").is_err());
    }

    #[test]
    fn login_url_is_derived_like_the_sdks() {
        let api = Url::parse("https://api.usw2.pure.cloud").unwrap();
        assert_eq!(derive_login_url(&api).as_str(), "https://login.usw2.pure.cloud/");
        let sim = Url::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(derive_login_url(&sim), sim);
    }
}
