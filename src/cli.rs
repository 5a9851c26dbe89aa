//! Command-line definitions. Every flag is declared once, with its help and its environment
//! variable next to it. Secrets have no flag that takes their value: only files and environment.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::sim::OversizePage;
use crate::sink::Format;

/// Back up every Genesys Cloud Architect flow to local disk or S3-compatible storage.
#[derive(Debug, Parser)]
#[command(name = "flowvault", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,

    /// Log format on stderr: `text` for people, `json` for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "FLOWVAULT_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// Log filter, e.g. `info`, `debug`, `flowvault=debug`.
    #[arg(long, global = true, default_value = "info", env = "FLOWVAULT_LOG")]
    pub log_level: String,
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Export every flow of a Genesys Cloud org to a local directory or an S3 bucket.
    Export(Box<ExportArgs>),
    /// Serve a simulated Genesys Cloud org over HTTP (for tests, pipelines and demos).
    Sim(Box<SimArgs>),
    /// Export a built-in simulated org to ./flowvault-demo/ with the real export code.
    Demo(DemoArgs),
}

/// Flags of `flowvault export`.
#[derive(Debug, Args, Clone, Default)]
pub struct ExportArgs {
    /// OAuth client id [env: GENESYSCLOUD_OAUTHCLIENT_ID, PURECLOUD_CLIENT_ID, or *_FILE].
    #[arg(long, help_heading = "Genesys Cloud")]
    pub client_id: Option<String>,
    /// Read the OAuth client id from this file.
    #[arg(long, value_name = "PATH", help_heading = "Genesys Cloud")]
    pub client_id_file: Option<PathBuf>,
    /// Read the OAuth client secret from this file [env: GENESYSCLOUD_OAUTHCLIENT_SECRET(_FILE),
    /// PURECLOUD_CLIENT_SECRET(_FILE)]. There is no flag for the secret's value: argv is public.
    #[arg(long, value_name = "PATH", help_heading = "Genesys Cloud")]
    pub client_secret_file: Option<PathBuf>,
    /// Region: a domain (usw2.pure.cloud) or AWS-style name (us-west-2) [env: GENESYSCLOUD_REGION,
    /// PURECLOUD_REGION] [default: mypurecloud.com].
    #[arg(long, help_heading = "Genesys Cloud")]
    pub region: Option<String>,
    /// Platform API base URL, overriding the region's (proxies, tests, new regions).
    #[arg(long, env = "FLOWVAULT_API_URL", help_heading = "Genesys Cloud")]
    pub api_url: Option<String>,
    /// OAuth login base URL, overriding the region's.
    #[arg(long, env = "FLOWVAULT_LOGIN_URL", help_heading = "Genesys Cloud")]
    pub login_url: Option<String>,
    /// Allow plain http:// API or login URLs to hosts other than loopback.
    #[arg(long, env = "FLOWVAULT_ALLOW_INSECURE_HTTP", help_heading = "Genesys Cloud")]
    pub allow_insecure_http: bool,

    /// Destination: a local directory or s3://bucket/prefix.
    #[arg(
        long,
        env = "FLOWVAULT_TO",
        default_value = "./flowvault-backups",
        help_heading = "Output"
    )]
    pub to: String,
    /// Layout: one tar.gz archive, or one JSON object per flow.
    #[arg(long, value_enum, env = "FLOWVAULT_FORMAT", default_value_t = Format::TarGz, help_heading = "Output")]
    pub format: Format,
    /// Run id: the directory or prefix of this run [default: UTC time, e.g. 20261128T210812Z].
    #[arg(long, env = "FLOWVAULT_RUN_ID", help_heading = "Output")]
    pub run_id: Option<String>,

    /// Export only flows of this type (repeatable, or comma-separated), e.g. inboundcall.
    #[arg(
        long = "type",
        value_name = "TYPE",
        env = "FLOWVAULT_TYPES",
        value_delimiter = ',',
        help_heading = "Selection"
    )]
    pub types: Vec<String>,

    /// Configuration requests in flight at once [default: derived from the rate limit].
    #[arg(
        long,
        env = "FLOWVAULT_CONCURRENCY",
        allow_negative_numbers = true,
        help_heading = "Pace and retries"
    )]
    pub concurrency: Option<usize>,
    /// Client-side request rate limit: `300/min` (the documented per-token limit), `5/s`, `off`.
    #[arg(
        long,
        env = "FLOWVAULT_RATE_LIMIT",
        default_value = "300/min",
        help_heading = "Pace and retries"
    )]
    pub rate_limit: String,
    /// Flows per listing page to ask for (smaller sizes are tried if the API refuses it).
    #[arg(
        long,
        env = "FLOWVAULT_PAGE_SIZE",
        default_value_t = 500,
        help_heading = "Pace and retries"
    )]
    pub page_size: u64,
    /// Retries for transient faults (5xx, timeouts, resets) per request.
    #[arg(
        long,
        env = "FLOWVAULT_MAX_RETRIES",
        default_value_t = 8,
        help_heading = "Pace and retries"
    )]
    pub max_retries: u32,
    /// Retries for 429 responses per request (each waits the server's Retry-After).
    #[arg(
        long,
        env = "FLOWVAULT_MAX_THROTTLE_RETRIES",
        default_value_t = 40,
        help_heading = "Pace and retries"
    )]
    pub max_throttle_retries: u32,
    /// Time limit for one HTTP request, e.g. `60s`.
    #[arg(
        long,
        env = "FLOWVAULT_REQUEST_TIMEOUT",
        default_value = "60s",
        help_heading = "Pace and retries"
    )]
    pub request_timeout: String,
    /// Upper bound of one backoff delay, e.g. `30s`.
    #[arg(
        long,
        env = "FLOWVAULT_MAX_BACKOFF",
        default_value = "30s",
        help_heading = "Pace and retries"
    )]
    pub max_backoff: String,

    /// After SIGTERM/SIGINT or --max-duration, how long requests in flight may finish.
    #[arg(
        long,
        env = "FLOWVAULT_SHUTDOWN_GRACE",
        default_value = "10s",
        help_heading = "Run control"
    )]
    pub shutdown_grace: String,
    /// Stop the run (as if interrupted) once it has run this long, e.g. `45m`.
    #[arg(long, env = "FLOWVAULT_MAX_DURATION", help_heading = "Run control")]
    pub max_duration: Option<String>,

    /// S3 endpoint URL for S3-compatible stores [env: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL].
    #[arg(long, env = "FLOWVAULT_S3_ENDPOINT", help_heading = "S3")]
    pub s3_endpoint: Option<String>,
    /// S3 region [default: from the AWS configuration chain, else us-east-1].
    #[arg(long, env = "FLOWVAULT_S3_REGION", help_heading = "S3")]
    pub s3_region: Option<String>,
    /// Path-style addressing (http://host/bucket/key), as MinIO and Ceph often need.
    #[arg(long, env = "FLOWVAULT_S3_FORCE_PATH_STYLE", help_heading = "S3")]
    pub s3_force_path_style: bool,
    /// Multipart part size for the tar-gz format, e.g. `8MiB` (minimum 5 MiB).
    #[arg(
        long,
        env = "FLOWVAULT_PART_SIZE",
        default_value = "8MiB",
        allow_hyphen_values = true,
        help_heading = "S3"
    )]
    pub part_size: String,
    /// Uploads in flight at once (parts or objects).
    #[arg(long, env = "FLOWVAULT_S3_UPLOADS", default_value_t = 4, help_heading = "S3")]
    pub s3_uploads: usize,
    /// Server-side encryption: AES256 or aws:kms.
    #[arg(long, env = "FLOWVAULT_SSE", help_heading = "S3")]
    pub sse: Option<String>,
    /// KMS key id for --sse aws:kms.
    #[arg(long, env = "FLOWVAULT_SSE_KMS_KEY_ID", help_heading = "S3")]
    pub sse_kms_key_id: Option<String>,
    /// Storage class, e.g. STANDARD_IA.
    #[arg(long, env = "FLOWVAULT_STORAGE_CLASS", help_heading = "S3")]
    pub storage_class: Option<String>,
    /// Send checksums only when S3 requires them (for stores that reject streaming checksums:
    /// Ceph, JuiceFS). flowvault still sends an explicit SHA-256 per object it writes whole.
    #[arg(long, env = "FLOWVAULT_S3_CHECKSUM_WHEN_REQUIRED", help_heading = "S3")]
    pub s3_checksum_when_required: bool,
}

/// Flags of `flowvault sim`.
#[derive(Debug, Args, Clone)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Port to listen on; 0 picks a free one (the URL is printed).
    #[arg(long, default_value_t = 8980)]
    pub port: u16,
    /// Number of flows in the org.
    #[arg(long, default_value_t = 100)]
    pub flows: usize,
    /// Seed for generating the org (the same seed serves the same org).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The OAuth client id the org accepts.
    #[arg(long, env = "FLOWVAULT_SIM_CLIENT_ID", default_value = "flowvault-sim")]
    pub client_id: String,
    /// The OAuth client secret the org accepts (a test value, not a real secret).
    #[arg(long, env = "FLOWVAULT_SIM_CLIENT_SECRET", default_value = "flowvault-sim-secret")]
    pub client_secret: String,
    /// Give the first flows awkward names (`../../etc/passwd`, unicode, 300 characters, duplicates...).
    #[arg(long)]
    pub awkward_names: bool,
    /// Make one flow a large bot flow with about this many actions (e.g. 4000).
    #[arg(long)]
    pub big_flow_actions: Option<usize>,
    /// Rate limit, e.g. `50/s` or `300/min` (sliding window; 429 + Retry-After beyond it).
    #[arg(long)]
    pub rate_limit: Option<String>,
    /// Send this Retry-After (seconds) on every 429.
    #[arg(long)]
    pub retry_after: Option<u64>,
    /// Send 429s without Retry-After.
    #[arg(long)]
    pub no_retry_after: bool,
    /// Delay before each API response, e.g. `100ms`.
    #[arg(long, default_value = "0s")]
    pub latency: String,
    /// Lifetime of issued tokens, e.g. `86399s` or `5s`.
    #[arg(long, default_value = "86399s")]
    pub token_lifetime: String,
    /// Largest page size served.
    #[arg(long, default_value_t = 500)]
    pub max_page_size: u64,
    /// What a larger page size gets.
    #[arg(long, value_enum, default_value_t = OversizePage::Reject)]
    pub oversize_page: OversizePage,
    /// Every Kth flow's configuration fails --flaky-failures times first.
    #[arg(long)]
    pub flaky_every: Option<usize>,
    /// How many times a flaky flow fails before it succeeds.
    #[arg(long, default_value_t = 2)]
    pub flaky_failures: u32,
    /// Status of those failures (500, 502, 503, 504).
    #[arg(long, default_value_t = 503)]
    pub flaky_status: u16,
    /// Every Kth flow is listed but deleted before its configuration is fetched (404).
    #[arg(long)]
    pub deleted_every: Option<usize>,
    /// Every Kth flow is in a division the client cannot see (403).
    #[arg(long)]
    pub forbidden_every: Option<usize>,
}

/// Flags of `flowvault demo`.
#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Where to write the demo run.
    #[arg(long, default_value = "./flowvault-demo")]
    pub to: String,
    /// Layout of the demo run.
    #[arg(long, value_enum, default_value_t = Format::TarGz)]
    pub format: Format,
    /// Number of flows in the simulated org.
    #[arg(long, default_value_t = 60)]
    pub flows: usize,
}
