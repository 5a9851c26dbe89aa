//! A flow as listed by `GET /api/v2/flows`: the row exactly as served, plus the few fields
//! flowvault reads from it. Unknown fields are never dropped, because the raw row is what is stored.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A division reference as it appears on a flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DivisionRef {
    /// Division id.
    #[serde(default)]
    pub id: Option<String>,
    /// Division name.
    #[serde(default)]
    pub name: Option<String>,
}

/// How the manifest records a flow's division.
impl From<DivisionRef> for crate::manifest::Division {
    fn from(d: DivisionRef) -> Self {
        crate::manifest::Division { id: d.id, name: d.name }
    }
}

#[derive(Deserialize, Default)]
struct VersionRef {
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FlowFields {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "type")]
    flow_type: Option<String>,
    #[serde(default)]
    division: Option<DivisionRef>,
    #[serde(default)]
    published_version: Option<VersionRef>,
    #[serde(default)]
    saved_version: Option<VersionRef>,
}

/// One listed flow.
#[derive(Debug)]
pub struct FlowSummary {
    /// The listing row exactly as the API served it.
    pub raw: Box<RawValue>,
    /// Flow id (empty if the API sent none).
    pub id: String,
    /// Flow name (empty if none).
    pub name: String,
    /// Flow type as served (UPPERCASE, an open set).
    pub flow_type: String,
    /// The flow's division.
    pub division: Option<DivisionRef>,
    /// `publishedVersion.id`.
    pub published_version: Option<String>,
    /// `savedVersion.id`.
    pub saved_version: Option<String>,
}

impl FlowSummary {
    /// Reads the fields flowvault needs from a listing row; the row back if it is not a JSON object.
    /// Hex SHA-256 of the row as listed, canonicalized (object keys sorted at every depth, no
    /// whitespace): every field counts, their order and spacing do not. What an incremental run
    /// compares to decide that a flow is unchanged.
    pub fn listing_sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut canonical = Vec::with_capacity(self.raw.get().len());
        match serde_json::from_str::<serde_json::Value>(self.raw.get()) {
            Ok(value) => write_canonical(&value, &mut canonical),
            Err(_) => canonical.extend_from_slice(self.raw.get().as_bytes()),
        }
        hex::encode(Sha256::digest(&canonical))
    }

    pub fn from_raw(raw: Box<RawValue>) -> Result<FlowSummary, Box<RawValue>> {
        let Ok(f) = serde_json::from_str::<FlowFields>(raw.get()) else {
            return Err(raw);
        };
        Ok(FlowSummary {
            id: f.id.unwrap_or_default(),
            name: f.name.unwrap_or_default(),
            flow_type: f.flow_type.unwrap_or_default(),
            division: f.division,
            published_version: f.published_version.and_then(|v| v.id),
            saved_version: f.saved_version.and_then(|v| v.id),
            raw,
        })
    }
}

/// Compact JSON with object keys sorted at every depth.
pub(crate) fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(serde_json::to_string(key).unwrap_or_default().as_bytes());
                out.push(b':');
                write_canonical(&map[key], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_fingerprint_sees_every_field_but_not_order_or_spacing() {
        let summary = |json: &str| FlowSummary::from_raw(RawValue::from_string(json.into()).unwrap()).unwrap();
        let a = summary(r#"{"id":"f","name":"N","type":"BOT","x":{"b":1,"a":[1,{"d":2,"c":3}]}}"#);
        let same = summary(r#"{ "x": {"a": [1, {"c":3, "d":2}], "b": 1}, "type":"BOT", "name":"N", "id":"f" }"#);
        let other = summary(r#"{"id":"f","name":"N","type":"BOT","x":{"b":1,"a":[1,{"d":2,"c":4}]}}"#);
        let added =
            summary(r#"{"id":"f","name":"N","type":"BOT","x":{"b":1,"a":[1,{"d":2,"c":3}]},"lockedUser":null}"#);
        assert_eq!(a.listing_sha256(), same.listing_sha256());
        assert_ne!(a.listing_sha256(), other.listing_sha256());
        assert_ne!(a.listing_sha256(), added.listing_sha256());
    }

    #[test]
    fn keeps_the_row_as_served_and_reads_its_fields() {
        let json = r#"{"id":"f1","name":"Main IVR","type":"INBOUNDCALL","futureField":{"x":1.50},
            "division":{"id":"d1","name":"Home","selfUri":"/x"},"publishedVersion":{"id":"3.0","name":"3.0"}}"#;
        let raw = RawValue::from_string(json.to_string()).unwrap();
        let f = FlowSummary::from_raw(raw).unwrap();
        assert_eq!(
            (f.id.as_str(), f.name.as_str(), f.flow_type.as_str()),
            ("f1", "Main IVR", "INBOUNDCALL")
        );
        assert_eq!(f.published_version.as_deref(), Some("3.0"));
        assert_eq!(f.saved_version, None);
        assert_eq!(f.raw.get(), json);
    }

    #[test]
    fn a_row_that_is_not_an_object_is_refused() {
        let refused = FlowSummary::from_raw(RawValue::from_string("42".into()).unwrap());
        assert_eq!(
            refused.map(|_| ()).unwrap_err().get(),
            "42",
            "the row comes back as served"
        );
    }
}
