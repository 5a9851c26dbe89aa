//! The catalogue of a simulated org's objects, derived from a seed: names per kind (the standard
//! ones, then numbered extras up to [`ArchitectSizes`]), ids from the seed, and realistic bodies
//! derived from the names — so a rebuilt org's objects look the same under other ids. Prompts get
//! 1–3 language resources with WAV audio, data tables a schema and rows, schedule groups point at
//! schedules, IVRs at a schedule group (and flows, once bound), emergency groups at IVRs.

use std::collections::BTreeMap;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::sim::data::uuid_from;
use crate::sim::objects::{ArchitectSizes, Audio, ObjectKind, SimObject, SimObjects};

const DIVISION: (&str, &str) = ("7e0b6c5a-0000-4000-a000-000000000001", "Home");
/// The languages prompts are recorded in.
pub const LANGUAGES: [&str; 3] = ["en-us", "es-us", "fr-ca"];

fn standard_names(kind: ObjectKind) -> &'static [&'static str] {
    match kind {
        ObjectKind::Queue => &[
            "Sales",
            "Support",
            "Billing",
            "Claims",
            "Renewals",
            "Spanish Support",
            "VIP",
            "Callbacks",
            "Escalations",
            "After Hours",
            "Technical L2",
            "Retention",
        ],
        ObjectKind::DataAction => &[
            "Get Customer By ANI",
            "Create Case",
            "Get Account Balance",
            "Lookup Order Status",
            "Post Survey Result",
            "Verify PIN",
        ],
        ObjectKind::UserPrompt => &[
            "Welcome",
            "MainMenu",
            "ClosedMessage",
            "HolidayMessage",
            "HoldMusic",
            "TransferNotice",
            "Goodbye",
            "InvalidEntry",
            "EnterAccountNumber",
            "SurveyIntro",
        ],
        ObjectKind::DataTable => &["Holiday Dates", "Branch Directory", "VIP Numbers", "Routing Overrides"],
        ObjectKind::User => &["Jane Doe", "Sam Okafor", "Priya Raman", "Luis Ortega", "Mei Chen"],
        ObjectKind::FlowOutcome => &["Self Service Success", "Transferred To Agent", "Abandoned"],
        ObjectKind::FlowMilestone => &["Identified Caller", "Reached Menu", "Verified PIN"],
        ObjectKind::Schedule => &[
            "Weekdays 8-18",
            "Saturday 9-13",
            "Closed Sunday",
            "New Year",
            "Christmas Day",
            "Thanksgiving",
        ],
        ObjectKind::ScheduleGroup => &["Main Office Hours", "Support Hours", "Spanish Line Hours"],
        ObjectKind::EmergencyGroup => &["Building Evacuation", "Weather Closure"],
        ObjectKind::Ivr => &["Main Number", "Support Line", "Spanish Line"],
    }
}

fn wanted(kind: ObjectKind, sizes: &ArchitectSizes) -> usize {
    match kind {
        ObjectKind::UserPrompt => sizes.prompts,
        ObjectKind::DataTable => sizes.data_tables,
        ObjectKind::Schedule => sizes.schedules,
        ObjectKind::ScheduleGroup => sizes.schedule_groups,
        ObjectKind::EmergencyGroup => sizes.emergency_groups,
        ObjectKind::Ivr => sizes.ivrs,
        ObjectKind::FlowOutcome => sizes.outcomes,
        ObjectKind::FlowMilestone => sizes.milestones,
        ObjectKind::Queue | ObjectKind::DataAction | ObjectKind::User => 0,
    }
}

/// The names of a kind: the standard ones, then `<Kind> NNNN` up to the size asked for.
fn names(kind: ObjectKind, sizes: &ArchitectSizes) -> Vec<String> {
    let standard = standard_names(kind);
    let mut out: Vec<String> = standard.iter().map(|s| s.to_string()).collect();
    let prefix = match kind {
        ObjectKind::UserPrompt => "Prompt",
        ObjectKind::DataTable => "Table",
        ObjectKind::Schedule => "Schedule",
        ObjectKind::ScheduleGroup => "Hours",
        ObjectKind::EmergencyGroup => "Emergency",
        ObjectKind::Ivr => "Line",
        ObjectKind::FlowOutcome => "Outcome",
        ObjectKind::FlowMilestone => "Milestone",
        _ => "Object",
    };
    // Prompt names hold no spaces (Architect allows letters, digits and underscores).
    let sep = if kind == ObjectKind::UserPrompt { "_" } else { " " };
    out.extend((standard.len()..wanted(kind, sizes)).map(|i| format!("{prefix}{sep}{i:04}")));
    out
}

/// A seed derived from a name (and a purpose), so an object's details follow its name.
fn seed_of(parts: &[&str]) -> u64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// Builds the catalogue: ids from `seed` (the standard names first, so growing a catalogue keeps
/// their ids), bodies and rows from the names.
pub fn build(seed: u64, sizes: &ArchitectSizes) -> SimObjects {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut extra_rng = StdRng::seed_from_u64(seed ^ 0x00E7_7A5E);
    let mut objects = Vec::new();
    for kind in ObjectKind::ALL {
        let standard = standard_names(kind).len();
        for (i, name) in names(kind, sizes).into_iter().enumerate() {
            let guid = uuid_from(if i < standard { &mut rng } else { &mut extra_rng });
            let id = match kind {
                ObjectKind::DataAction => format!("custom_-_{guid}"),
                _ => guid,
            };
            objects.push(SimObject {
                kind,
                id,
                name,
                body: Value::Null,
            });
        }
    }
    let mut out = SimObjects {
        objects,
        rows: BTreeMap::new(),
        audio: BTreeMap::new(),
    };
    let index: Vec<(ObjectKind, String, String)> = out
        .objects
        .iter()
        .map(|o| (o.kind, o.id.clone(), o.name.clone()))
        .collect();
    let refs = |kind: ObjectKind| -> Vec<Value> {
        index
            .iter()
            .filter(|(k, _, _)| *k == kind)
            .map(|(_, id, name)| json!({"id": id, "name": name, "selfUri": format!("{}/{id}", kind.path())}))
            .collect()
    };
    let (schedules, groups, ivrs) = (
        refs(ObjectKind::Schedule),
        refs(ObjectKind::ScheduleGroup),
        refs(ObjectKind::Ivr),
    );
    let mut rows = BTreeMap::new();
    let mut audio = BTreeMap::new();
    let mut ordinal: BTreeMap<ObjectKind, usize> = BTreeMap::new();
    for o in &mut out.objects {
        let i = *ordinal.entry(o.kind).and_modify(|n| *n += 1).or_insert(0);
        o.body = match o.kind {
            ObjectKind::UserPrompt => {
                let languages = sizes
                    .languages_per_prompt
                    .unwrap_or(1 + i % 3)
                    .clamp(1, LANGUAGES.len());
                for lang in &LANGUAGES[..languages] {
                    audio.insert(
                        (o.id.clone(), lang.to_string()),
                        Audio::Generated(seed_of(&[&o.name, lang])),
                    );
                }
                prompt_body(&o.id, &o.name, &LANGUAGES[..languages])
            }
            ObjectKind::DataTable => {
                let per_table = sizes.rows.map(|r| r / sizes.data_tables.max(1));
                let (body, table_rows) = table(&o.id, &o.name, per_table);
                rows.insert(o.id.clone(), table_rows);
                body
            }
            ObjectKind::Schedule => schedule_body(&o.id, &o.name, i),
            ObjectKind::ScheduleGroup => schedule_group_body(&o.id, &o.name, i, &schedules),
            ObjectKind::Ivr => ivr_body(&o.id, &o.name, i, &groups),
            ObjectKind::EmergencyGroup => emergency_group_body(&o.id, &o.name, i, &ivrs),
            _ => plain_body(o.kind, &o.id, &o.name),
        };
    }
    out.rows = rows;
    out.audio = audio;
    out
}

fn division() -> Value {
    json!({"id": DIVISION.0, "name": DIVISION.1, "selfUri": format!("/api/v2/authorization/divisions/{}", DIVISION.0)})
}

fn plain_body(kind: ObjectKind, id: &str, name: &str) -> Value {
    match kind {
        ObjectKind::Queue => json!({"id": id, "name": name, "division": division(), "memberCount": 4,
            "mediaSettings": {"call": {"alertingTimeoutSeconds": 8}}}),
        ObjectKind::DataAction => json!({"id": id, "name": name, "category": "Salesforce",
            "integrationId": "3c1f0a2e-0000-4000-a000-00000000d0d0", "secure": false}),
        ObjectKind::User => json!({"id": id, "name": name, "division": division(),
            "email": format!("{}@example.com", name.to_lowercase().replace(' ', ".")), "state": "active"}),
        _ => json!({"id": id, "name": name, "description": format!("{name} ({})", kind.manifest_key()),
            "division": division()}),
    }
}

/// A prompt resource as stored (the served one adds `mediaUri`, `uploadUri`, `selfUri`).
pub fn resource(prompt_id: &str, name: &str, lang: &str, status: &str, duration: Option<f64>) -> Value {
    json!({
        "id": lang, "promptId": prompt_id, "language": lang,
        "ttsString": format!("{name} ({lang})"), "text": format!("{name} text in {lang}"),
        "uploadStatus": status, "durationSeconds": duration,
    })
}

fn prompt_body(id: &str, name: &str, languages: &[&str]) -> Value {
    let resources: Vec<Value> = languages
        .iter()
        .map(|l| {
            let seconds = wav_seconds(seed_of(&[name, l]));
            resource(id, name, l, "transcoded", Some(seconds))
        })
        .collect();
    json!({"id": id, "name": name, "description": format!("{name} prompt"), "resources": resources})
}

/// The fields (name, JSON type) a table's schema holds besides `key`.
fn table_fields(name: &str) -> Vec<(&'static str, &'static str)> {
    match name {
        "Holiday Dates" => vec![("date", "string"), ("closed", "boolean"), ("message", "string")],
        "Branch Directory" => vec![("city", "string"), ("phone", "string"), ("openHour", "integer")],
        "VIP Numbers" => vec![("tier", "integer"), ("agent", "string")],
        "Routing Overrides" => vec![("queue", "string"), ("enabled", "boolean"), ("weight", "number")],
        _ => vec![("label", "string"), ("priority", "integer"), ("active", "boolean")],
    }
}

/// A data table's schema for these fields (`key` first, required).
pub fn schema(fields: &[(&str, &str)]) -> Value {
    let mut properties = Map::new();
    properties.insert(
        "key".into(),
        json!({"type": "string", "title": "key", "$id": "/properties/key", "displayOrder": 0}),
    );
    for (i, (f, t)) in fields.iter().enumerate() {
        properties.insert(
            f.to_string(),
            json!({"type": t, "title": f, "$id": format!("/properties/{f}"), "displayOrder": i + 1}),
        );
    }
    json!({"$schema": "http://json-schema.org/draft-04/schema#", "additionalProperties": false,
        "properties": properties, "required": ["key"], "type": "object"})
}

fn cell(rng: &mut StdRng, field: &str, json_type: &str, i: usize) -> Value {
    match json_type {
        "boolean" => Value::Bool(rng.random_bool(0.5)),
        "integer" => json!(rng.random_range(0..24)),
        "number" => json!(f64::from(rng.random_range(0..1000u32)) / 10.0),
        _ => json!(format!("{field} {i} {:04x}", rng.random_range(0..0xffffu32))),
    }
}

fn table(id: &str, name: &str, per_table: Option<usize>) -> (Value, Vec<Value>) {
    let fields = table_fields(name);
    let body = json!({"id": id, "name": name, "description": format!("{name} lookup"), "division": division(),
        "schema": schema(&fields)});
    let mut rng = StdRng::seed_from_u64(seed_of(&[name, "rows"]));
    let n = per_table.unwrap_or_else(|| rng.random_range(5..=25));
    let mut rows: Vec<Value> = (0..n)
        .map(|i| {
            let mut row = Map::new();
            row.insert("key".into(), json!(format!("{name} {i:05}")));
            for (f, t) in &fields {
                row.insert(f.to_string(), cell(&mut rng, f, t, i));
            }
            Value::Object(row)
        })
        .collect();
    rows.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
    (body, rows)
}

fn schedule_body(id: &str, name: &str, i: usize) -> Value {
    let (start, end, rrule) = match name {
        "Weekdays 8-18" => (
            "2026-01-05T08:00:00.000",
            "2026-01-05T18:00:00.000",
            "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
        ),
        "Saturday 9-13" => (
            "2026-01-10T09:00:00.000",
            "2026-01-10T13:00:00.000",
            "FREQ=WEEKLY;BYDAY=SA",
        ),
        "Closed Sunday" => (
            "2026-01-11T00:00:00.000",
            "2026-01-12T00:00:00.000",
            "FREQ=WEEKLY;BYDAY=SU",
        ),
        "New Year" => (
            "2026-01-01T00:00:00.000",
            "2026-01-02T00:00:00.000",
            "FREQ=YEARLY;BYMONTH=1;BYMONTHDAY=1",
        ),
        "Christmas Day" => (
            "2026-12-25T00:00:00.000",
            "2026-12-26T00:00:00.000",
            "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=25",
        ),
        "Thanksgiving" => (
            "2026-11-26T00:00:00.000",
            "2026-11-27T00:00:00.000",
            "FREQ=YEARLY;BYMONTH=11;BYDAY=4TH",
        ),
        _ => (
            "2026-02-02T07:00:00.000",
            "2026-02-02T19:00:00.000",
            "FREQ=WEEKLY;BYDAY=MO,WE,FR",
        ),
    };
    let start = if i >= 6 {
        start.replace("07:", &format!("{:02}:", 6 + i % 4))
    } else {
        start.to_string()
    };
    json!({"id": id, "name": name, "description": format!("{name} schedule"), "start": start, "end": end,
        "rrule": rrule, "version": 1, "state": "active"})
}

fn schedule_group_body(id: &str, name: &str, i: usize, schedules: &[Value]) -> Value {
    let at = |k: usize| {
        schedules
            .get(k % schedules.len().max(1))
            .cloned()
            .into_iter()
            .collect::<Vec<_>>()
    };
    let (open, closed, holiday): (Vec<Value>, Vec<Value>, Vec<Value>) = match i {
        0 => ([at(0), at(1)].concat(), at(2), [at(3), at(4)].concat()),
        1 => (at(0), Vec::new(), at(5)),
        2 => (at(0), at(2), at(4)),
        _ => (at(6 + i), Vec::new(), at(3)),
    };
    let zone = ["America/Indiana/Indianapolis", "America/New_York", "America/Chicago"][i % 3];
    json!({"id": id, "name": name, "description": format!("{name} group"), "state": "active",
        "timeZone": zone,
        "openSchedules": open, "closedSchedules": closed, "holidaySchedules": holiday, "version": 1})
}

fn ivr_body(id: &str, name: &str, i: usize, groups: &[Value]) -> Value {
    let dnis: Vec<String> = (0..1 + i % 2)
        .map(|k| format!("+1317555{:04}", 100 + i * 2 + k))
        .collect();
    json!({"id": id, "name": name, "description": format!("{name} call route"), "state": "active",
        "dnis": dnis, "openHoursFlow": null, "closedHoursFlow": null, "holidayHoursFlow": null,
        "scheduleGroup": groups.get(i % groups.len().max(1)).cloned().unwrap_or(Value::Null), "version": 1})
}

fn emergency_group_body(id: &str, name: &str, i: usize, ivrs: &[Value]) -> Value {
    let ivr = ivrs.get(i % ivrs.len().max(1)).cloned().into_iter().collect::<Vec<_>>();
    json!({"id": id, "name": name, "description": format!("{name} override"), "state": "active",
        "enabled": i % 2 == 1, "emergencyCallFlows": [{"emergencyFlow": null, "ivrs": ivr}], "version": 1})
}

/// Points IVRs and emergency groups at these inbound call flows (`{id, name}`), in turn.
pub fn bind_flows(objects: &mut SimObjects, inbound: &[Value]) {
    if inbound.is_empty() {
        return;
    }
    let at = |k: usize| inbound[k % inbound.len()].clone();
    for (i, o) in objects
        .objects
        .iter_mut()
        .filter(|o| o.kind == ObjectKind::Ivr)
        .enumerate()
    {
        o.body["openHoursFlow"] = at(i);
        o.body["closedHoursFlow"] = at(i + 1);
        o.body["holidayHoursFlow"] = at(i + 1);
    }
    for (k, o) in objects
        .objects
        .iter_mut()
        .filter(|o| o.kind == ObjectKind::EmergencyGroup)
        .enumerate()
    {
        if let Some(calls) = o.body["emergencyCallFlows"].as_array_mut() {
            for c in calls {
                c["emergencyFlow"] = at(k + 2);
            }
        }
    }
}

/// The PCM bytes of [`wav`]`(seed)`, drawn first from the seed.
fn pcm_len(rng: &mut StdRng) -> usize {
    rng.random_range(20_000..120_000usize) & !1
}

/// The seconds [`wav`]`(seed)` lasts, without generating it.
pub fn wav_seconds(seed: u64) -> f64 {
    let data_len = pcm_len(&mut StdRng::seed_from_u64(seed));
    (data_len as f64 / 16_000.0 * 100.0).round() / 100.0
}

/// Deterministic WAV audio (8 kHz, 16-bit mono PCM) of 20–120 KB.
pub fn wav(seed: u64) -> Bytes {
    let mut rng = StdRng::seed_from_u64(seed);
    let data_len = pcm_len(&mut rng);
    let mut out = Vec::with_capacity(data_len + 44);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((36 + data_len) as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&16000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data_len as u32).to_le_bytes());
    let tone = rng.random_range(200.0..800.0f64);
    for n in 0..data_len / 2 {
        let t = n as f64 / 8000.0;
        let sample = ((2.0 * std::f64::consts::PI * tone * t).sin() * 8000.0) as i16 + rng.random_range(-300..300);
        out.extend_from_slice(&sample.to_le_bytes());
    }
    Bytes::from(out)
}

/// The seconds of audio a WAV holds, or `None` when the bytes are not a PCM WAV file.
pub fn duration_of(bytes: &[u8]) -> Option<f64> {
    if bytes.len() < 44 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let byte_rate = u32::from_le_bytes([bytes[28], bytes[29], bytes[30], bytes[31]]);
    (byte_rate > 0).then(|| ((bytes.len() - 44) as f64 / f64::from(byte_rate) * 100.0).round() / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_audio_is_a_wav_file_of_realistic_size() {
        let w = wav(9);
        assert!((20_000..=120_044).contains(&w.len()), "{}", w.len());
        assert_eq!(duration_of(&w), Some(wav_seconds(9)));
        assert_eq!(wav(9), w);
    }

    #[test]
    fn schedule_groups_point_at_schedules_of_the_same_catalogue() {
        let org = build(3, &ArchitectSizes::standard());
        let group = org.of_kind(ObjectKind::ScheduleGroup).next().unwrap();
        let open = group.body["openSchedules"][0]["id"].as_str().unwrap();
        assert!(org.find(ObjectKind::Schedule, open).is_some());
    }
}
