//! The simulated org's flows: metadata rows shaped like the API's `Flow` model, and configurations
//! generated on demand with realistic sizes (a real org measured p50 17 KB, p95 75 KB, bot flows up
//! to about 600 KB). Everything is derived from a seed, so the same org is served every time.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// The 21 flow types the API serves.
pub const FLOW_TYPES: [&str; 21] = [
    "BOT",
    "BUSINESSPROCESS",
    "COMMONMODULE",
    "DIGITALBOT",
    "EMAILSEND",
    "INBOUNDCALL",
    "INBOUNDCHAT",
    "INBOUNDEMAIL",
    "INBOUNDSHORTMESSAGE",
    "INQUEUECALL",
    "INQUEUEEMAIL",
    "INQUEUESHORTMESSAGE",
    "OUTBOUNDCALL",
    "SECURECALL",
    "SPEECH",
    "SURVEYINVITE",
    "VOICE",
    "VOICEMAIL",
    "VOICESURVEY",
    "WORKFLOW",
    "WORKITEM",
];

/// Names that have broken exporters: traversal, absolute paths, unicode, control characters,
/// very long names, reserved device names and duplicates.
pub const AWKWARD_NAMES: [&str; 10] = [
    "../../etc/passwd",
    "/absolute/root/flow",
    "Ünïcødé 流程 🚀 IVR",
    "ctrl\u{1}chars\n\tand\u{7f}more",
    "CON",
    "dots...and   spaces ...",
    "",
    "Main IVR",
    "Main IVR",
    "back\\slash:colon*star?\"quote<lt>gt|pipe",
];

/// How a flow's configuration is produced.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// Generated from a seed to roughly this many bytes.
    Generated { seed: u64, target_bytes: usize },
    /// Served exactly as given.
    Literal(String),
}

/// One flow of the simulated org.
#[derive(Debug, Clone)]
pub struct SimFlow {
    /// The metadata row served by the listing and `GET /api/v2/flows/{id}`.
    pub meta: Value,
    /// Its latest saved configuration (`savedVersion`).
    pub config: ConfigSource,
    /// The published version's configuration when it differs from the saved one (a draft exists);
    /// `None`: the published version is the saved one.
    pub published: Option<ConfigSource>,
    /// The flows its generated configurations call (by id and name), as Architect records them.
    pub calls: Vec<FlowRef>,
}

/// A flow another flow calls: what its configuration references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRef {
    /// The called flow's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its type (UPPERCASE).
    pub flow_type: String,
}

impl FlowRef {
    /// The reference to `flow`.
    pub fn to(flow: &SimFlow) -> FlowRef {
        FlowRef {
            id: flow.id().to_string(),
            name: flow
                .meta
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            flow_type: flow.flow_type().to_string(),
        }
    }
}

impl SimFlow {
    /// The flow id.
    pub fn id(&self) -> &str {
        self.meta.get("id").and_then(Value::as_str).unwrap_or_default()
    }

    /// The flow type (UPPERCASE).
    pub fn flow_type(&self) -> &str {
        self.meta.get("type").and_then(Value::as_str).unwrap_or_default()
    }

    /// The latest saved configuration exactly as served.
    pub fn configuration_json(&self) -> String {
        self.config.render(&self.meta, &self.calls)
    }

    /// A flow with this metadata and configuration, its published version the saved one.
    pub fn new(meta: Value, config: ConfigSource) -> SimFlow {
        SimFlow {
            meta,
            config,
            published: None,
            calls: Vec::new(),
        }
    }

    fn version_id(&self, key: &str) -> Option<&str> {
        self.meta.get(key)?.get("id")?.as_str()
    }

    /// `publishedVersion.id`, if the flow was ever published.
    pub fn published_version(&self) -> Option<&str> {
        self.version_id("publishedVersion")
    }

    /// `savedVersion.id`.
    pub fn saved_version(&self) -> Option<&str> {
        self.version_id("savedVersion")
    }

    /// Saves a new version holding `configuration`, as an edit in Architect does: `savedVersion`
    /// moves on (a listed field changes), the published version stays what it was. Returns the
    /// new version.
    pub fn save_version(&mut self, configuration: String) -> String {
        let next = format!("{}.0", self.highest_version() + 1);
        if self.published.is_none() && self.published_version().is_some() {
            self.published = Some(self.config.clone());
        }
        self.config = ConfigSource::Literal(configuration);
        let id = self.id().to_string();
        self.meta["savedVersion"] =
            serde_json::json!({"id": next, "name": next, "selfUri": format!("/api/v2/flows/{id}/versions/{next}")});
        next
    }

    /// Changes the latest configuration without any listed field changing (hostile: an edit the
    /// listing does not show, which only a full run can catch).
    pub fn edit_unlisted(&mut self, configuration: String) {
        if self.published.is_none() && self.published_version().is_some() {
            self.published = Some(self.config.clone());
        }
        self.config = ConfigSource::Literal(configuration);
    }

    /// The highest version number the flow has had (0 for a flow never saved).
    pub fn highest_version(&self) -> u32 {
        ["savedVersion", "publishedVersion", "checkedInVersion"]
            .iter()
            .filter_map(|k| self.version_id(k)?.split('.').next()?.parse().ok())
            .max()
            .unwrap_or(0)
    }

    /// The configuration of version `version` (the saved or the published one), as served.
    pub fn version_configuration(&self, version: &str) -> Option<String> {
        if self.saved_version() == Some(version) {
            Some(self.configuration_json())
        } else if self.published_version() == Some(version) {
            Some(
                self.published
                    .as_ref()
                    .unwrap_or(&self.config)
                    .render(&self.meta, &self.calls),
            )
        } else {
            None
        }
    }

    /// Gives the flow an unpublished draft: the saved version moves one ahead of the published
    /// one, whose configuration stays `published`.
    pub fn with_draft(mut self, draft: ConfigSource) -> SimFlow {
        let published = std::mem::replace(&mut self.config, draft);
        let id = self.id().to_string();
        let next = match self
            .published_version()
            .and_then(|v| v.split('.').next()?.parse::<u32>().ok())
        {
            Some(n) => format!("{}.0", n + 1),
            None => "2.0".into(),
        };
        self.meta["savedVersion"] = version_ref(&id, &next);
        self.published = Some(published);
        self
    }

    /// Makes the flow one that was never published: no published or checked-in version.
    pub fn never_published(mut self) -> SimFlow {
        if let Some(m) = self.meta.as_object_mut() {
            m.remove("publishedVersion");
            m.remove("checkedInVersion");
        }
        self.published = None;
        self
    }
}

impl ConfigSource {
    fn render(&self, meta: &Value, calls: &[FlowRef]) -> String {
        match self {
            ConfigSource::Literal(s) => s.clone(),
            ConfigSource::Generated { seed, target_bytes } => {
                super::configuration::generate_configuration(meta, *seed, *target_bytes, calls)
            }
        }
    }
}

fn version_ref(flow_id: &str, v: &str) -> Value {
    json!({"id": v, "name": v, "selfUri": format!("/api/v2/flows/{flow_id}/versions/{v}")})
}

/// A deterministic UUID-shaped id.
pub fn uuid_from(rng: &mut StdRng) -> String {
    let b: [u8; 16] = rng.random();
    let h = hex::encode(b);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// A metadata row like the API's for a flow.
pub fn flow_meta(id: &str, name: &str, flow_type: &str, division: (&str, &str), version: u32) -> Value {
    let v = format!("{version}.0");
    json!({
        "id": id,
        "name": name,
        "division": {"id": division.0, "name": division.1, "selfUri": format!("/api/v2/authorization/divisions/{}", division.0)},
        "description": format!("{name} ({})", flow_type.to_lowercase()),
        "type": flow_type,
        "active": true,
        "system": false,
        "deleted": false,
        "publishedVersion": version_ref(id, &v),
        "savedVersion": version_ref(id, &v),
        "checkedInVersion": version_ref(id, &v),
        "supportedLanguages": [{"language": "en-us", "isDefault": true}],
        "compatibleFlowTypes": [flow_type],
        "virtualAgentEnabled": false,
        "selfUri": format!("/api/v2/flows/{id}")
    })
}

/// `n` flows of every type with realistic sizes; with `awkward`, the first ones get awkward names.
/// Like a real org, some flows have an unpublished draft (every fifth, from the fourth) and some
/// were never published (every eleventh, from the sixth). Flows call flows as in a real org: in
/// every block of 21 flows the inbound call, chat and email flows call the block's common module,
/// and the first inbound call flow and the first secure call flow call each other (a cycle).
pub fn generate_org(n: usize, seed: u64, awkward: bool) -> Vec<SimFlow> {
    let mut rng = StdRng::seed_from_u64(seed);
    let divisions = [
        ("7e0b6c5a-0000-4000-a000-000000000001", "Home"),
        ("7e0b6c5a-0000-4000-a000-000000000002", "Support"),
    ];
    let metas: Vec<(Value, u64, usize)> = (0..n)
        .map(|i| {
            let flow_type = FLOW_TYPES[i % FLOW_TYPES.len()];
            let id = uuid_from(&mut rng);
            let name = if awkward && i < AWKWARD_NAMES.len() {
                AWKWARD_NAMES[i].to_string()
            } else if awkward && i == AWKWARD_NAMES.len() {
                "x".repeat(300)
            } else {
                format!("{} flow {i:05}", title_case(flow_type))
            };
            let target_bytes = sample_size(&mut rng, flow_type);
            let meta = flow_meta(&id, &name, flow_type, divisions[i % 2], 1 + (i % 7) as u32);
            let seed: u64 = rng.random();
            (meta, seed, target_bytes)
        })
        .collect();
    let flows: Vec<SimFlow> = metas
        .iter()
        .map(|(meta, _, _)| SimFlow::new(meta.clone(), ConfigSource::Literal(String::new())))
        .collect();
    metas
        .into_iter()
        .enumerate()
        .map(|(i, (meta, seed, target_bytes))| {
            let mut flow = SimFlow::new(meta, ConfigSource::Generated { seed, target_bytes });
            flow.calls = callees(i, n).into_iter().map(|c| FlowRef::to(&flows[c])).collect();
            // A flow other flows call is published: Architect refuses to publish its callers otherwise.
            if i % 11 == 5 && !is_called(i, n) {
                flow.never_published()
            } else if i % 5 == 3 {
                flow.with_draft(ConfigSource::Generated {
                    seed: seed.wrapping_add(1),
                    target_bytes: target_bytes + 200,
                })
            } else {
                flow
            }
        })
        .collect()
}

/// The flows (by index) flow `i` of an org of `n` calls.
fn callees(i: usize, n: usize) -> Vec<usize> {
    let block = i - i % FLOW_TYPES.len();
    let (module, inbound, secure) = (block + 2, 5, 13);
    let mut out = Vec::new();
    if matches!(i % FLOW_TYPES.len(), 5..=7) && module < n {
        out.push(module);
    }
    if n > secure && i == inbound {
        out.push(secure);
    }
    if n > secure && i == secure {
        out.push(inbound);
    }
    out
}

/// True when another flow of an org of `n` calls flow `i` (the inverse of [`callees`]).
fn is_called(i: usize, n: usize) -> bool {
    let block = i - i % FLOW_TYPES.len();
    (i % FLOW_TYPES.len() == 2 && block + 5 < n) || (n > 13 && (i == 5 || i == 13))
}

fn title_case(t: &str) -> String {
    let lower = t.to_lowercase();
    let mut c = lower.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Sizes from a log-normal around each type's typical size (the compact sizes of sanitized real
/// configurations: short message 14 KB, workflow 28 KB, voice survey 44 KB, outbound call 47 KB,
/// inbound email 49 KB, inbound call 65 KB, in-queue call 66 KB, secure call 90 KB, digital bot
/// 198 KB, bot 504 KB; the many small flows of other types about 9 KB), at most 626 KB.
fn sample_size(rng: &mut StdRng, flow_type: &str) -> usize {
    // Box-Muller for a standard normal.
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    let median = match flow_type {
        "INBOUNDSHORTMESSAGE" => 14_000.0,
        "WORKFLOW" => 28_000.0,
        "VOICESURVEY" => 44_000.0,
        "OUTBOUNDCALL" => 47_000.0,
        "INBOUNDEMAIL" => 49_000.0,
        "INBOUNDCALL" => 65_000.0,
        "INQUEUECALL" => 66_000.0,
        "SECURECALL" => 90_000.0,
        "DIGITALBOT" => 198_000.0,
        "BOT" => 504_000.0,
        _ => 9_000.0,
    };
    let size = median * (0.5 * z).exp();
    size.clamp(3_000.0, 626_000.0) as usize
}

pub use super::configuration::generate_configuration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_org() {
        let a = generate_org(30, 7, true);
        let b = generate_org(30, 7, true);
        assert_eq!(a.len(), 30);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.meta, y.meta);
            assert_eq!(x.configuration_json(), y.configuration_json());
        }
    }

    #[test]
    fn sizes_are_realistic() {
        let org = generate_org(400, 1, false);
        let mut sizes: Vec<usize> = org
            .iter()
            .filter(|f| f.flow_type() != "BOT" && f.flow_type() != "DIGITALBOT")
            .map(|f| f.configuration_json().len())
            .collect();
        sizes.sort();
        let p50 = sizes[sizes.len() / 2];
        assert!((10_000..30_000).contains(&p50), "p50 {p50}");
    }
}
