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
        self.config.render(&self.meta)
    }

    /// A flow with this metadata and configuration, its published version the saved one.
    pub fn new(meta: Value, config: ConfigSource) -> SimFlow {
        SimFlow {
            meta,
            config,
            published: None,
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
            Some(self.published.as_ref().unwrap_or(&self.config).render(&self.meta))
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
    fn render(&self, meta: &Value) -> String {
        match self {
            ConfigSource::Literal(s) => s.clone(),
            ConfigSource::Generated { seed, target_bytes } => generate_configuration(meta, *seed, *target_bytes),
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
/// were never published (every eleventh, from the sixth).
pub fn generate_org(n: usize, seed: u64, awkward: bool) -> Vec<SimFlow> {
    let mut rng = StdRng::seed_from_u64(seed);
    let divisions = [
        ("7e0b6c5a-0000-4000-a000-000000000001", "Home"),
        ("7e0b6c5a-0000-4000-a000-000000000002", "Support"),
    ];
    (0..n)
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
            let flow = SimFlow::new(meta, ConfigSource::Generated { seed, target_bytes });
            if i % 11 == 5 {
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

fn title_case(t: &str) -> String {
    let lower = t.to_lowercase();
    let mut c = lower.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Sizes from a log-normal with median 17 KB and p95 75 KB; bot flows are larger, up to ~620 KB.
fn sample_size(rng: &mut StdRng, flow_type: &str) -> usize {
    // Box-Muller for a standard normal.
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    let median = if matches!(flow_type, "BOT" | "DIGITALBOT") {
        60_000.0
    } else {
        17_000.0
    };
    let size = median * (0.902 * z).exp();
    size.clamp(1_500.0, 620_000.0) as usize
}

/// A configuration shaped like Architect's: settings, variables and a task list of actions,
/// padded with actions until it reaches about `target_bytes`.
pub fn generate_configuration(meta: &Value, seed: u64, target_bytes: usize) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let id = meta.get("id").and_then(Value::as_str).unwrap_or_default();
    let name = meta.get("name").and_then(Value::as_str).unwrap_or_default();
    let flow_type = meta.get("type").and_then(Value::as_str).unwrap_or_default();
    let mut actions = Vec::new();
    let mut size = 600usize;
    let kinds = [
        "setParticipantData",
        "playAudio",
        "decision",
        "transferToAcd",
        "callData",
        "updateData",
        "loop",
        "collectInput",
    ];
    let mut i = 0u32;
    while size < target_bytes {
        let kind = kinds[rng.random_range(0..kinds.len())];
        let action = json!({
            "id": format!("a{i}"),
            "type": kind,
            "name": format!("{kind} {i}"),
            "trackingId": rng.random_range(0..1_000_000u32),
            "properties": {"expression": format!("If(Flow.var{} == \"{}\", Append(\"x\", ToString({})), \"y\")", i % 17, rng.random_range(0..9999u32), i), "timeoutSeconds": rng.random_range(1..120u32)},
            "outputs": [{"name": "success", "nextAction": format!("a{}", i + 1)}, {"name": "failure", "nextAction": "end"}]
        });
        size += action.to_string().len() + 1;
        actions.push(action);
        i += 1;
    }
    json!({
        "id": id,
        "name": name,
        "type": flow_type,
        "version": 1,
        "settings": {"defaultLanguage": "en-us", "supportedLanguages": ["en-us"], "errorHandling": {"type": "disconnect"}},
        "variables": [{"name": "Flow.result", "type": "string"}, {"name": "Flow.count", "type": "integer", "initialValue": 0}],
        "tasks": [{"id": "t0", "name": "Main task", "actionCount": i, "actions": actions}]
    })
    .to_string()
}

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
