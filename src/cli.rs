//! Command-line definitions: the only place that knows clap. `export`'s flags come from the
//! settings table ([`crate::settings`]); the simulator's and the demo's are declared here. Secrets
//! have no flag that takes their value: only files and environment.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Arg, ArgAction, ArgMatches, Args, Parser, Subcommand, ValueEnum};

use crate::settings::{self, Flags, Kind, Setting};
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
    Export(ExportArgs),
    /// Serve a simulated Genesys Cloud org over HTTP (for tests, pipelines and demos).
    Sim(Box<SimArgs>),
    /// Export a built-in simulated org to ./flowvault-demo/ with the real export code.
    Demo(DemoArgs),
    /// List the runs in a destination, newest first.
    Runs(RunsArgs),
    /// Prove a run: every document against its manifest's size and SHA-256 (exit 0 ok, 3 not).
    Verify(VerifyArgs),
    /// What changed between two runs: flows added, removed, renamed, moved and changed.
    Diff(DiffArgs),
    /// Put archived flows back into an org: a plan first, written only with --apply.
    Restore(Box<RestoreArgs>),
    /// What an export will cost (flows per type, requests, time) and whether the destination works; writes nothing.
    Plan(ExportArgs),
    /// Check settings, login, org, listing, reading, the destination and permissions, with a fix for each failure.
    Doctor(DoctorArgs),
}

/// Flags of `flowvault doctor`: export's settings, and which restore to check for.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub export: ExportArgs,
    /// Also check the permissions `restore --apply` needs: edit (save, check in), unlock (to give
    /// back a lock when a step fails, and for --force-unlock). Probed on a flow id that cannot
    /// exist, so nothing changes.
    #[arg(long, help_heading = "Restore")]
    pub restore: bool,
    /// With --restore: the restore publishes (architect:flow:publish).
    #[arg(long, requires = "restore", help_heading = "Restore")]
    pub publish: bool,
}

/// A list of settings that becomes a command's flags.
pub trait SettingList: std::fmt::Debug + Clone + Default + Send + Sync + 'static {
    /// The settings, each with its flag, help, section and allowed values declared once.
    const SETTINGS: &'static [&'static Setting];
}

/// `export`'s settings ([`settings::EXPORT`]).
#[derive(Debug, Clone, Default)]
pub struct ExportSettingList;
impl SettingList for ExportSettingList {
    const SETTINGS: &'static [&'static Setting] = settings::EXPORT;
}

/// The settings that reach a destination to read it ([`settings::READ`]).
#[derive(Debug, Clone, Default)]
pub struct ReadSettingList;
impl SettingList for ReadSettingList {
    const SETTINGS: &'static [&'static Setting] = settings::READ;
}

/// `restore`'s settings ([`settings::RESTORE`]).
#[derive(Debug, Clone, Default)]
pub struct RestoreSettingList;
impl SettingList for RestoreSettingList {
    const SETTINGS: &'static [&'static Setting] = settings::RESTORE;
}

/// Flags built from a settings list: the values given on the command line, by setting id.
#[derive(Debug, Clone, Default)]
pub struct SettingArgs<L: SettingList> {
    /// The values given on the command line, by setting id.
    pub flags: Flags,
    _list: std::marker::PhantomData<L>,
}

/// Flags of `flowvault export`.
pub type ExportArgs = SettingArgs<ExportSettingList>;
/// The S3 flags of the commands that read runs.
pub type StoreArgs = SettingArgs<ReadSettingList>;

fn export_arg(s: &'static Setting) -> Arg {
    let mut help = s.help.to_string();
    let env = s.env_note();
    if !env.is_empty() {
        help.push(' ');
        help.push_str(&env);
    }
    if let Some(d) = s.default {
        help.push_str(&format!(" [default: {d}]"));
    }
    let arg = Arg::new(s.id)
        .long(s.flag.trim_start_matches("--"))
        .help(help)
        .help_heading(s.heading)
        .hide(s.hidden);
    match s.kind {
        Kind::Switch => arg.action(ArgAction::SetTrue),
        Kind::List => arg.action(ArgAction::Append).value_delimiter(',').value_name("TYPE"),
        Kind::Value if !s.choices.is_empty() => arg.value_parser(PossibleValuesParser::new(s.choices)),
        Kind::Value => arg.allow_negative_numbers(true),
    }
}

impl<L: SettingList> clap::Args for SettingArgs<L> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        // A flag given twice takes its last value (wrappers and scripts append overrides).
        let mut cmd = cmd.args_override_self(true);
        for s in L::SETTINGS.iter().filter(|s| !s.flag.is_empty()) {
            cmd = cmd.arg(export_arg(s));
        }
        cmd
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl<L: SettingList> clap::FromArgMatches for SettingArgs<L> {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = Flags::new();
        for s in L::SETTINGS.iter().filter(|s| !s.flag.is_empty()) {
            if m.value_source(s.id) != Some(clap::parser::ValueSource::CommandLine) {
                continue;
            }
            let value = match s.kind {
                Kind::Switch => m.get_flag(s.id).to_string(),
                Kind::List => m
                    .get_many::<String>(s.id)
                    .map(|v| v.cloned().collect::<Vec<_>>().join(","))
                    .unwrap_or_default(),
                Kind::Value => m.get_one::<String>(s.id).cloned().unwrap_or_default(),
            };
            flags.insert(s.id, value);
        }
        Ok(SettingArgs {
            flags,
            _list: std::marker::PhantomData,
        })
    }
    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

/// Flags of `flowvault runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// The destination: a directory or s3://bucket/prefix (what `export --to` was given).
    pub destination: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Which run a command reads.
#[derive(Debug, Args)]
pub struct RunArg {
    /// DEST/RUN, a path to a flows.tar.gz, s3://bucket/prefix/RUN, or DEST with --latest.
    pub run: String,
    /// Read the newest run of the destination given.
    #[arg(long, conflicts_with = "latest_complete")]
    pub latest: bool,
    /// Read the newest complete run of the destination given.
    #[arg(long)]
    pub latest_complete: bool,
}

/// Flags of `flowvault verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub run: RunArg,
    /// S3 objects only: compare the checksums S3 stored instead of downloading (a weaker check).
    #[arg(long)]
    pub quick: bool,
    /// Print a JSON report instead of lines.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Flags of `flowvault restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub run: RunArg,
    /// Restore this flow (by its id in the archive); repeatable.
    #[arg(long = "flow", value_name = "ID")]
    pub flows: Vec<String>,
    /// Restore flows whose name matches this pattern (`*`, `?`; case-insensitive).
    #[arg(long, value_name = "GLOB")]
    pub name: Option<String>,
    /// Restore flows of this type (e.g. inboundcall); repeatable; narrows --name.
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Restore every exported flow of the run.
    #[arg(long)]
    pub all: bool,
    /// Which configuration to restore: the published one where archived (default), the latest
    /// draft, or both (the published one, then the archived draft saved over it unpublished).
    #[arg(long, value_enum, default_value_t = RestoreContent::Published)]
    pub content: RestoreContent,
    /// Write to the org; without it only the plan is printed and nothing is written.
    #[arg(long)]
    pub apply: bool,
    /// Publish each restored flow after checking it in (only flows the archive holds as
    /// published: a never-published flow stays unpublished).
    #[arg(long)]
    pub publish: bool,
    /// Unlock flows locked by someone else (their unsaved work there is lost).
    #[arg(long)]
    pub force_unlock: bool,
    /// Allow restoring into an org other than the archive's, or when either org is unknown.
    #[arg(long)]
    pub to_other_org: bool,
    /// Where to write the restore report (default: beside a local run, else the current directory).
    #[arg(long, value_name = "PATH")]
    pub report: Option<std::path::PathBuf>,
    /// Print the report as JSON on stdout instead of lines.
    #[arg(long)]
    pub json: bool,
    /// Older spelling of --json (`--output json`).
    #[arg(long, hide = true, value_enum)]
    pub output: Option<OutputFormat>,
    /// How long a check-in or publish may run before the flow is reported failed.
    #[arg(long, default_value = "5m")]
    pub operation_timeout: String,
    #[command(flatten)]
    pub settings: SettingArgs<RestoreSettingList>,
}

/// `restore --content`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RestoreContent {
    /// The published configuration where archived, else the latest.
    Published,
    /// The latest saved configuration (the draft).
    Latest,
    /// The published configuration, then the archived draft over it (unpublished).
    Both,
}

/// Flags of `flowvault diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older run (DEST/RUN, a flows.tar.gz, or s3://bucket/prefix/RUN).
    pub run_a: String,
    /// The newer run.
    pub run_b: String,
    /// Exit 3 when the runs differ (like `git diff --exit-code`).
    #[arg(long)]
    pub exit_code: bool,
    /// Print JSON instead of lines.
    #[arg(long)]
    pub json: bool,
    /// Show a structural diff of this flow's configuration (JSON paths added, removed, changed).
    #[arg(long, value_name = "ID")]
    pub flow: Option<String>,
    /// With --flow: which configuration to compare.
    #[arg(long, value_enum, default_value_t = DiffContent::Latest)]
    pub content: DiffContent,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Compare runs of two different orgs (refused otherwise: their flows share no history).
    #[arg(long)]
    pub across_orgs: bool,
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
    /// What a larger page size gets: `reject` (400), `clamp` (serve the maximum and report it),
    /// or `silent-clamp` (serve the maximum but report the size asked for, and a pageCount to match).
    #[arg(
        long,
        default_value = "reject",
        value_parser = PossibleValuesParser::new(["reject", "clamp", "silent-clamp"]).try_map(|s| s.parse::<OversizePage>())
    )]
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
    /// `--oversize-page` applies from this listing page on (a server that refuses a size only on page 2+).
    #[arg(long, default_value_t = 1)]
    pub oversize_from_page: u64,
    /// Every Kth flow's configuration answers 503 with a Retry-After first.
    #[arg(long)]
    pub unavailable_every: Option<usize>,
    /// The Retry-After (seconds) of those 503s.
    #[arg(long, default_value_t = 2)]
    pub unavailable_retry_after: u64,
    /// Deleted flows answer 410 `architect.flow.deleted` instead of 404.
    #[arg(long)]
    pub deleted_answers_gone: bool,
    /// Delete this many flows of the first page right after the first listing page is served.
    #[arg(long, default_value_t = 0)]
    pub delete_while_listing: usize,
    /// Create this many flows (at the front) right after the first listing page is served.
    #[arg(long, default_value_t = 0)]
    pub create_while_listing: usize,
    /// Serve this many listing rows that are not flows, at the end of the listing.
    #[arg(long, default_value_t = 0)]
    pub malformed_rows: usize,
    /// After this many API requests every token is refused (401), as for a revoked client.
    #[arg(long)]
    pub revoke_after_requests: Option<u64>,
    /// The org's short name (thirdPartyOrgName) served by /api/v2/organizations/me.
    #[arg(long, default_value = "sim-org")]
    pub org_short_name: String,
    /// This many flows sit in a division the client cannot list: only divisionviews names them.
    #[arg(long, default_value_t = 0)]
    pub hidden_flows: usize,
    /// The client lacks architect:flow:search: divisionviews answers 403.
    #[arg(long)]
    pub deny_flow_search: bool,
    /// The first this-many export jobs fail with "could not find the flow … exit code 107".
    #[arg(long, default_value_t = 0)]
    pub export_jobs_throttled: u32,
    /// Check-in and publish operations complete after this long.
    #[arg(long, default_value = "100ms")]
    pub operation_delay: String,
    /// Check-ins end in FAILURE with this error code.
    #[arg(long, value_name = "CODE")]
    pub fail_checkin: Option<String>,
    /// Publishes end in FAILURE with this error code.
    #[arg(long, value_name = "CODE")]
    pub fail_publish: Option<String>,
    /// Every Kth flow is deleted right after its configuration is served (gone for export jobs).
    #[arg(long)]
    pub deleted_after_fetch_every: Option<usize>,
    /// Hold the org's queues, data actions, prompts, data tables, users, outcomes and milestones
    /// under new ids (same names), as an org rebuilt from scratch does.
    #[arg(long)]
    pub rebuilt_objects: bool,
    /// Leave this object out of the org, e.g. `queue:Sales` (repeatable): publishing a flow that
    /// references it fails with missing dependencies.
    #[arg(long, value_name = "KIND:NAME")]
    pub drop_object: Vec<String>,
    /// A write that happens and then answers badly, spent once: STEP:ANSWER with STEP create,
    /// save, checkin or publish and ANSWER 500, timeout or no-id; repeatable.
    #[arg(long = "write-fault", value_name = "STEP:ANSWER")]
    pub write_faults: Vec<String>,
    /// Saves are refused (400) with this error code.
    #[arg(long, value_name = "CODE")]
    pub refuse_save: Option<String>,
    /// Publishes end in SUCCESS without moving publishedVersion.
    #[arg(long)]
    pub publish_without_version: bool,
    /// A VALIDATE operation replaces a completed check-in or publish in currentOperation.
    #[arg(long)]
    pub validate_after_operation: bool,
    /// GET /api/v2/organizations/me answers this status (403, 503) instead of the org.
    #[arg(long, value_name = "STATUS")]
    pub organization_status: Option<u16>,
    /// The client lacks architect:flow:unlock: unlocking answers 403.
    #[arg(long)]
    pub deny_unlock: bool,
    /// Seconds a presigned prompt mediaUri (and upload URL) stays valid; then it answers 403.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub media_url_ttl: u64,
    /// The client's role lacks this permission (repeatable), e.g. routing:callRoute:view: what
    /// needs it answers 403 missing.permissions naming it.
    #[arg(long, value_name = "PERM")]
    pub deny_permission: Vec<String>,
    /// Reads of an uploaded prompt resource that still show `uploaded` before `transcoded`.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub transcode_polls: u32,
    /// Uploads to this prompt (by name) end in `transcodeFailed` (repeatable).
    #[arg(long, value_name = "NAME")]
    pub transcode_fail: Vec<String>,
    /// How long a created flow outcome stays out of the listing (its create is asynchronous).
    #[arg(long, value_name = "DURATION", default_value = "500ms")]
    pub outcome_delay: String,
    /// The first write of this Architect kind happens, then answers STATUS, e.g. prompts:503
    /// (repeatable).
    #[arg(long, value_name = "KIND:STATUS")]
    pub object_write_fault: Vec<String>,
    /// Hold no Architect objects (prompts, tables, schedules…): an org rebuilt before a restore;
    /// with --rebuilt-objects its queues, data actions and users have new ids.
    #[arg(long)]
    pub no_architect_objects: bool,
    /// Size the Architect catalogue as the benchmark does: 300 prompts (900 audio files), 50 data
    /// tables (20,000 rows), 40 schedules, 100 IVRs; the flags below override single counts.
    #[arg(long)]
    pub bench_catalogue: bool,
    /// User prompts in the org (at least the standard 10).
    #[arg(long, value_name = "N")]
    pub prompts: Option<usize>,
    /// Languages (audio files) per prompt, 1-3.
    #[arg(long, value_name = "N")]
    pub languages_per_prompt: Option<usize>,
    /// Data tables in the org (at least the standard 4).
    #[arg(long, value_name = "N")]
    pub data_tables: Option<usize>,
    /// Rows over all data tables.
    #[arg(long, value_name = "N")]
    pub table_rows: Option<usize>,
    /// Schedules in the org (at least the standard 6).
    #[arg(long, value_name = "N")]
    pub schedules: Option<usize>,
    /// Schedule groups in the org (at least the standard 3).
    #[arg(long, value_name = "N")]
    pub schedule_groups: Option<usize>,
    /// Emergency groups in the org (at least the standard 2).
    #[arg(long, value_name = "N")]
    pub emergency_groups: Option<usize>,
    /// IVR configurations in the org (at least the standard 3).
    #[arg(long, value_name = "N")]
    pub ivrs: Option<usize>,
    /// This object sits in a division the client cannot see, e.g. `scheduleGroup:Support Hours`
    /// (repeatable): never listed, 404 when read, yet flows using it publish.
    #[arg(long, value_name = "KIND:NAME")]
    pub hidden_object: Vec<String>,
}

/// Flags of `flowvault demo`.
#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Where to write the demo run.
    #[arg(long, default_value = "./flowvault-demo")]
    pub to: String,
    /// Layout of the demo run: tar-gz or objects.
    #[arg(
        long,
        default_value = "tar-gz",
        value_parser = PossibleValuesParser::new(["tar-gz", "objects"]).try_map(|s| s.parse::<Format>())
    )]
    pub format: Format,
    /// Number of flows in the simulated org.
    #[arg(long, default_value_t = 60)]
    pub flows: usize,
}

/// The older `restore --output` (hidden; `--json` is the spelling every command shares).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Lines for people.
    Text,
    /// One JSON document.
    Json,
}

/// `diff --flow ID --content`: which configuration of the flow to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffContent {
    /// The latest saved configuration (may be a draft).
    Latest,
    /// The published configuration.
    Published,
}
