//! The stored document `{"flow": <listing row>, "configuration": <as served>}`: one home for its
//! shape. Export builds it ([`build`]); verify identifies it ([`identify`]); diff and restore
//! parse it ([`Document::parse`]) to take its configuration byte for byte as it was embedded.

use std::io::Read;

use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// A body that is not a stored document.
#[derive(Debug, thiserror::Error)]
#[error("not a {{\"flow\", \"configuration\"}} document: {0}")]
pub struct NotADocument(#[from] serde_json::Error);

/// `{"flow": <row as listed>, "configuration": <as served>}`, both embedded byte for byte.
pub fn build(flow_json: &str, configuration_json: &str) -> Vec<u8> {
    let mut doc = Vec::with_capacity(flow_json.len() + configuration_json.len() + 32);
    doc.extend_from_slice(b"{\"flow\":");
    doc.extend_from_slice(flow_json.as_bytes());
    doc.extend_from_slice(b",\"configuration\":");
    doc.extend_from_slice(configuration_json.as_bytes());
    doc.extend_from_slice(b"}\n");
    doc
}

/// A stored document, borrowing both members from its bytes.
#[derive(Debug, serde::Deserialize)]
pub struct Document<'a> {
    /// The flow's listing row, as listed.
    #[serde(borrow)]
    pub flow: &'a RawValue,
    /// The configuration, as served.
    #[serde(borrow)]
    pub configuration: &'a RawValue,
}

impl<'a> Document<'a> {
    /// Parses `body` without copying either member.
    pub fn parse(body: &'a [u8]) -> Result<Self, NotADocument> {
        Ok(serde_json::from_slice(body)?)
    }

    /// The configuration's bytes, exactly as embedded (what export hashed).
    pub fn configuration_bytes(&self) -> &'a [u8] {
        self.configuration.get().as_bytes()
    }

    /// The SHA-256 (hex) of the configuration as embedded: the manifest's `configuration_sha256`.
    pub fn configuration_sha256(&self) -> String {
        hex::encode(Sha256::digest(self.configuration_bytes()))
    }

    /// The flow row as a JSON value.
    pub fn flow_row(&self) -> Result<serde_json::Value, NotADocument> {
        Ok(serde_json::from_str(self.flow.get())?)
    }
}

/// Which flow a document is about: its row's id, name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: String,
    pub name: String,
    pub flow_type: String,
}

/// The flow a document is about, parsed as a stream (the configuration is skipped, not held).
pub fn identify(body: impl Read) -> Result<Identity, NotADocument> {
    #[derive(serde::Deserialize)]
    struct Doc {
        flow: serde_json::Map<String, serde_json::Value>,
        #[allow(dead_code)]
        configuration: serde::de::IgnoredAny,
    }
    let doc: Doc = serde_json::from_reader(body)?;
    let field = |k: &str| doc.flow.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    Ok(Identity {
        id: field("id"),
        name: field("name"),
        flow_type: field("type"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_document_parses_back_to_its_members_byte_for_byte() {
        let flow = r#"{"id":"f1","name":"Main  Menu","type":"INBOUNDCALL"}"#;
        let configuration = r#"{"b": 1.50, "a":"é"}"#;
        let body = build(flow, configuration);
        let doc = Document::parse(&body).unwrap();
        assert_eq!(doc.flow.get(), flow);
        assert_eq!(doc.configuration_bytes(), configuration.as_bytes());
        assert_eq!(
            doc.configuration_sha256(),
            hex::encode(Sha256::digest(configuration.as_bytes()))
        );
        let who = identify(body.as_slice()).unwrap();
        assert_eq!(
            (who.id.as_str(), who.name.as_str(), who.flow_type.as_str()),
            ("f1", "Main  Menu", "INBOUNDCALL")
        );
    }

    #[test]
    fn a_body_without_both_members_is_not_a_document() {
        let e = identify(br#"{"flow":{"id":"x"}}"#.as_slice()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("not a {\"flow\", \"configuration\"} document: "),
            "{e}"
        );
        assert!(Document::parse(b"[1]").is_err());
    }
}
