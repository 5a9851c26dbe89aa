//! What a run tells the people on call, in Prometheus' text format: pushed to a Pushgateway at
//! the end of every run (failed ones too) and/or written as a node-exporter textfile. A batch job
//! has no scrape endpoint; these are gauges describing the last run, grouped by job and org.
//!
//! `flowvault_last_complete_run_timestamp_seconds` is only set by a complete run; the push uses
//! POST (which replaces only the metrics it sends) and the textfile carries the previous value, so
//! an incomplete run leaves the last complete run's time in place for the "no complete run in
//! 26 h" alert.

use std::collections::BTreeMap;
use std::path::Path;

use prometheus::{Encoder, Gauge, GaugeVec, Opts, Registry, TextEncoder};
use url::Url;

use crate::export::RequestCounts;
use crate::manifest::{ArchitectSection, Totals};

/// Name of the last-complete-run gauge (carried over by the textfile).
pub const LAST_COMPLETE: &str = "flowvault_last_complete_run_timestamp_seconds";

/// What one run came to.
#[derive(Debug, Clone, Default)]
pub struct RunFigures {
    /// When it started and ended (Unix seconds).
    pub started: f64,
    /// When it ended.
    pub finished: f64,
    /// Whether the manifest says complete.
    pub complete: bool,
    /// The process exit code.
    pub exit_code: i32,
    /// Flows per outcome.
    pub totals: Totals,
    /// Document bytes stored.
    pub bytes_written: u64,
    /// API requests.
    pub requests: RequestCounts,
    /// The Architect phase per kind, when the run had one.
    pub architect: Option<ArchitectSection>,
}

/// Metrics could not be rendered or delivered.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The registry refused a metric (a bug).
    #[error("cannot build the metrics: {0}")]
    Build(#[from] prometheus::Error),
    /// The Pushgateway could not be reached or refused the push.
    #[error("cannot push metrics to {url}: {why}")]
    Push { url: String, why: String },
    /// The textfile could not be written.
    #[error("cannot write the metrics file {path}: {source}")]
    File { path: String, source: std::io::Error },
}

fn gauge(registry: &Registry, name: &str, help: &str, value: f64) -> Result<(), MetricsError> {
    let g = Gauge::new(name, help)?;
    g.set(value);
    registry.register(Box::new(g))?;
    Ok(())
}

fn gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    label: &str,
    values: &BTreeMap<String, f64>,
) -> Result<(), MetricsError> {
    let g = GaugeVec::new(Opts::new(name, help), &[label])?;
    for (k, v) in values {
        g.with_label_values(&[k.as_str()]).set(*v);
    }
    registry.register(Box::new(g))?;
    Ok(())
}

/// The single-valued gauges of a run: name, help, value.
fn run_gauges(f: &RunFigures) -> [(&'static str, &'static str, f64); 7] {
    [
        (
            "flowvault_last_run_timestamp_seconds",
            "When the last run ended (Unix time).",
            f.finished,
        ),
        (
            "flowvault_last_run_complete",
            "1 if the last run's manifest says complete, else 0.",
            f64::from(u8::from(f.complete)),
        ),
        (
            "flowvault_last_run_exit_code",
            "The last run's exit code (0 complete, 1 fatal, 3 incomplete, ...).",
            f64::from(f.exit_code),
        ),
        (
            "flowvault_last_run_duration_seconds",
            "How long the last run took.",
            (f.finished - f.started).max(0.0),
        ),
        (
            "flowvault_last_run_bytes_written",
            "Document bytes the last run stored.",
            f.bytes_written as f64,
        ),
        (
            "flowvault_last_run_retries",
            "Requests the last run sent again after a failed attempt.",
            f.requests.retries as f64,
        ),
        (
            "flowvault_last_run_throttled",
            "429 answers (pauses) in the last run.",
            f.requests.throttled as f64,
        ),
    ]
}

/// Flows per outcome, as the `outcome` label's values.
fn outcomes(t: &Totals) -> BTreeMap<String, f64> {
    [
        ("listed", t.listed),
        ("exported", t.exported),
        ("not_found", t.not_found),
        ("failed", t.failed),
        ("skipped", t.skipped),
        // Of the exported, those an incremental run carried over unchanged.
        ("carried", t.carried),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v as f64))
    .collect()
}

/// API answers per HTTP status, as the `status` label's values (0: no answer at all).
fn statuses(requests: &RequestCounts) -> BTreeMap<String, f64> {
    requests
        .by_status
        .iter()
        .map(|(s, n)| {
            let status = if *s == 0 {
                "transport_error".to_string()
            } else {
                s.to_string()
            };
            (status, *n as f64)
        })
        .collect()
}

/// The run's metrics in the text exposition format; `last_complete` is the previous complete
/// run's time, used when this run is not complete.
pub fn render(f: &RunFigures, last_complete: Option<f64>) -> Result<String, MetricsError> {
    let r = Registry::new();
    for (name, help, value) in run_gauges(f) {
        gauge(&r, name, help, value)?;
    }
    gauge_vec(
        &r,
        "flowvault_last_run_flows",
        "Flows of the last run by outcome.",
        "outcome",
        &outcomes(&f.totals),
    )?;
    gauge_vec(
        &r,
        "flowvault_last_run_api_requests",
        "API answers in the last run by HTTP status.",
        "status",
        &statuses(&f.requests),
    )?;
    if let Some(section) = &f.architect {
        objects(&r, section)?;
    }
    let complete_at = if f.complete { Some(f.finished) } else { last_complete };
    if let Some(t) = complete_at {
        gauge(&r, LAST_COMPLETE, "When the last complete run ended (Unix time).", t)?;
    }
    let mut out = Vec::new();
    TextEncoder::new().encode(&r.gather(), &mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Architect objects per kind and outcome, and whether each kind could be read.
fn objects(registry: &Registry, section: &ArchitectSection) -> Result<(), MetricsError> {
    let counts = GaugeVec::new(
        Opts::new(
            "flowvault_last_run_objects",
            "Architect objects of the last run by kind and outcome.",
        ),
        &["kind", "outcome"],
    )?;
    let checked = GaugeVec::new(
        Opts::new(
            "flowvault_last_run_kind_checked",
            "1 if the last run could read this Architect kind, 0 if not (a missing permission).",
        ),
        &["kind"],
    )?;
    for k in &section.kinds {
        for (outcome, n) in [
            ("listed", k.listed),
            ("exported", k.exported),
            ("failed", k.failed),
            ("carried", k.carried),
        ] {
            counts.with_label_values(&[k.kind.as_str(), outcome]).set(n as f64);
        }
        checked
            .with_label_values(&[k.kind.as_str()])
            .set(f64::from(u8::from(k.checked)));
    }
    registry.register(Box::new(counts))?;
    registry.register(Box::new(checked))?;
    Ok(())
}

/// The last-complete time an earlier textfile recorded.
pub fn previous_complete(path: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(LAST_COMPLETE) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Writes `body` to `path` atomically (a temporary file beside it, then a rename), as the
/// node-exporter textfile collector needs.
pub fn write_textfile(path: &Path, body: &str) -> Result<(), MetricsError> {
    let err = |source| MetricsError::File {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension(format!("prom.tmp.{}", std::process::id()));
    std::fs::write(&tmp, body).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

/// POSTs `body` to the Pushgateway at `gateway` under `job=flowvault` and `org`.
pub async fn push(gateway: &Url, org: &str, body: String) -> Result<(), MetricsError> {
    let mut url = gateway.clone();
    if let Ok(mut p) = url.path_segments_mut() {
        p.pop_if_empty().extend(["metrics", "job", "flowvault", "org", org]);
    }
    // Shown in errors: never the credentials a URL may carry (https://user:pass@gateway).
    let mut shown = url.clone();
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    let shown = shown.to_string();
    let failed = |why: String| MetricsError::Push {
        url: shown.clone(),
        why,
    };
    crate::tls::init();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let resp = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(body)
        .send()
        .await
        .map_err(|e| failed(describe_push_error(&e)))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        return Err(failed(format!("HTTP {status}: {}", text.trim())));
    }
    Ok(())
}

/// Why a push got no answer, in the Pushgateway's terms (the caller names the address).
fn describe_push_error(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "the Pushgateway did not answer within 15 s"
    } else if e.is_connect() {
        "nothing accepts connections there: is the Pushgateway running, and is FLOWVAULT_PUSHGATEWAY_URL its address?"
    } else {
        "the connection to the Pushgateway failed"
    };
    let mut cause = std::error::Error::source(e);
    let mut deepest = None;
    while let Some(c) = cause {
        deepest = Some(c.to_string());
        cause = c.source();
    }
    match deepest {
        Some(d) => format!("{what} ({d})"),
        None => what.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incomplete_run_keeps_the_last_complete_time() {
        let f = RunFigures {
            started: 100.0,
            finished: 160.0,
            complete: false,
            exit_code: 3,
            ..RunFigures::default()
        };
        let text = render(&f, Some(42.0)).unwrap();
        assert!(text.contains("flowvault_last_run_complete 0"), "{text}");
        assert!(text.contains(&format!("{LAST_COMPLETE} 42")), "{text}");
        assert!(text.contains("flowvault_last_run_duration_seconds 60"), "{text}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowvault.prom");
        write_textfile(&path, &text).unwrap();
        assert_eq!(previous_complete(&path), Some(42.0));
    }

    #[test]
    fn objects_are_counted_per_kind_and_an_unreadable_kind_says_so() {
        let f = RunFigures {
            architect: Some(ArchitectSection {
                kinds: vec![
                    crate::manifest::KindReport {
                        kind: "prompts".into(),
                        checked: true,
                        listed: 3,
                        exported: 3,
                        carried: 1,
                        ..Default::default()
                    },
                    crate::manifest::KindReport {
                        kind: "ivrs".into(),
                        checked: false,
                        ..Default::default()
                    },
                ],
            }),
            ..RunFigures::default()
        };
        let text = render(&f, None).unwrap();
        assert!(
            text.contains(r#"flowvault_last_run_objects{kind="prompts",outcome="exported"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"flowvault_last_run_objects{kind="prompts",outcome="carried"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"flowvault_last_run_kind_checked{kind="ivrs"} 0"#),
            "{text}"
        );
        assert!(!render(&RunFigures::default(), None).unwrap().contains("objects"));
    }

    #[tokio::test]
    async fn a_push_to_a_closed_port_says_the_pushgateway_is_not_there() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let err = push(&url, "acme", "x 1\n".into()).await.unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "cannot push metrics to http://127.0.0.1:{port}/metrics/job/flowvault/org/acme"
            )),
            "{err}"
        );
        assert!(err.contains("is the Pushgateway running"), "{err}");
    }
}
