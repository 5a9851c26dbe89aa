//! Parsing of setting values: durations, rates, sizes, URLs, run ids and secret files. Every
//! error names the setting at fault and says how to fix it.

use std::path::Path;
use std::time::Duration;

use url::Url;

/// A setting that cannot be used; the message says which and how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

pub(super) fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// Reads a file holding one secret value, trimmed.
pub(super) fn read_secret_file(path: &Path, setting: &str) -> Result<String, ConfigError> {
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
pub(super) fn derive_login_url(api: &Url) -> Url {
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
    let hint = "write e.g. 30s, 500ms, 5m, 2h45m or 7d";
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
            "d" | "day" | "days" => n * 86400.0,
            other => {
                return err(format!(
                    "{setting} `{value}` has unknown unit `{other}`; use ms, s, m, h or d"
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
