//! The stored document `{"flow": <listing row>, "configuration": <as served>}`: one home for its
//! shape. Export builds it ([`build`]); verify identifies it ([`identify`]); diff and restore
//! parse it ([`Document::parse`]) to take its configuration byte for byte as it was embedded.
//!
//! The Architect objects' documents live here too: `{"kind", "object"}` ([`build_object`],
//! [`ObjectDocument`]) and a data table's rows `{"kind", "table", "rows"}` ([`RowsBuilder`],
//! [`RowsDocument`]); [`identify_object`] names the object either is about. Audio is stored as
//! served and has no shape to parse.

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

/// A body that is not an Architect object or rows document.
#[derive(Debug, thiserror::Error)]
#[error("not a {{\"kind\", \"object\"}} or {{\"kind\", \"table\", \"rows\"}} document: {0}")]
pub struct NotAnObjectDocument(#[from] serde_json::Error);

/// `{"kind": <kind>, "object": <as served>}`, the object embedded byte for byte.
pub fn build_object(kind: &str, object_json: &str) -> Vec<u8> {
    let kind = serde_json::Value::from(kind).to_string();
    let mut doc = Vec::with_capacity(object_json.len() + kind.len() + 24);
    doc.extend_from_slice(b"{\"kind\":");
    doc.extend_from_slice(kind.as_bytes());
    doc.extend_from_slice(b",\"object\":");
    doc.extend_from_slice(object_json.as_bytes());
    doc.extend_from_slice(b"}\n");
    doc
}

/// An Architect object's document, borrowing the object from its bytes.
#[derive(Debug, serde::Deserialize)]
pub struct ObjectDocument<'a> {
    /// The kind (`prompts`, `schedules`, …).
    pub kind: String,
    /// The object as served.
    #[serde(borrow)]
    pub object: &'a RawValue,
}

impl<'a> ObjectDocument<'a> {
    /// Parses `body` without copying the object.
    pub fn parse(body: &'a [u8]) -> Result<Self, NotAnObjectDocument> {
        Ok(serde_json::from_slice(body)?)
    }

    /// The object as a JSON value.
    pub fn value(&self) -> Result<serde_json::Value, NotAnObjectDocument> {
        Ok(serde_json::from_str(self.object.get())?)
    }
}

/// Builds a data table's rows document `{"kind":"datatables","table":{"id","name"},"rows":[…]}`
/// a page at a time, each row embedded byte for byte as served: a table's rows are never held
/// twice (as values and as the document).
#[derive(Debug)]
pub struct RowsBuilder {
    body: Vec<u8>,
    rows: u64,
}

impl RowsBuilder {
    /// Starts the document of table `id` named `name`.
    pub fn new(id: &str, name: &str) -> RowsBuilder {
        let table = serde_json::json!({"id": id, "name": name}).to_string();
        let mut body = Vec::with_capacity(4096);
        body.extend_from_slice(b"{\"kind\":\"datatables\",\"table\":");
        body.extend_from_slice(table.as_bytes());
        body.extend_from_slice(b",\"rows\":[");
        RowsBuilder { body, rows: 0 }
    }

    /// Appends one row (its JSON as served).
    pub fn push(&mut self, row_json: &str) {
        if self.rows > 0 {
            self.body.push(b',');
        }
        self.body.extend_from_slice(row_json.as_bytes());
        self.rows += 1;
    }

    /// Rows appended so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The finished document.
    pub fn finish(mut self) -> Vec<u8> {
        self.body.extend_from_slice(b"]}\n");
        self.body
    }
}

/// The table a rows document belongs to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct TableRef {
    /// Table id.
    pub id: String,
    /// Table name.
    #[serde(default)]
    pub name: String,
}

/// A data table's rows document, borrowing each row from its bytes.
#[derive(Debug, serde::Deserialize)]
pub struct RowsDocument<'a> {
    /// Always `datatables`.
    pub kind: String,
    /// Which table.
    pub table: TableRef,
    /// The rows as served.
    #[serde(borrow)]
    pub rows: Vec<&'a RawValue>,
}

impl<'a> RowsDocument<'a> {
    /// Parses `body` without copying the rows.
    pub fn parse(body: &'a [u8]) -> Result<Self, NotAnObjectDocument> {
        Ok(serde_json::from_slice(body)?)
    }
}

/// Which object an Architect document is about: its kind, id and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectIdentity {
    /// The document's `kind`.
    pub kind: String,
    /// The object's (or table's) id.
    pub id: String,
    /// The object's (or table's) name.
    pub name: String,
}

/// The object an object or rows document is about, parsed as a stream (rows are skipped).
pub fn identify_object(body: impl Read) -> Result<ObjectIdentity, NotAnObjectDocument> {
    #[derive(serde::Deserialize)]
    struct Doc {
        kind: String,
        #[serde(default)]
        object: Option<serde_json::Map<String, serde_json::Value>>,
        #[serde(default)]
        table: Option<serde_json::Map<String, serde_json::Value>>,
        #[serde(default)]
        #[allow(dead_code)]
        rows: Option<serde::de::IgnoredAny>,
    }
    let doc: Doc = serde_json::from_reader(body)?;
    let Some(fields) = doc.object.or(doc.table) else {
        return Err(NotAnObjectDocument(serde::de::Error::custom(
            "it has neither `object` nor `table`",
        )));
    };
    let field = |k: &str| fields.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    Ok(ObjectIdentity {
        kind: doc.kind,
        id: field("id"),
        name: field("name"),
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

    #[test]
    fn an_object_document_parses_back_to_its_object_byte_for_byte_and_names_it() {
        let object = r#"{"id":"s1","name":"Open \"hours\"","rrule":"FREQ=DAILY", "n": 1.50}"#;
        let body = build_object("schedules", object);
        let doc = ObjectDocument::parse(&body).unwrap();
        assert_eq!((doc.kind.as_str(), doc.object.get()), ("schedules", object));
        let who = identify_object(body.as_slice()).unwrap();
        assert_eq!(
            (who.kind.as_str(), who.id.as_str(), who.name.as_str()),
            ("schedules", "s1", "Open \"hours\"")
        );
    }

    #[test]
    fn a_rows_document_built_row_by_row_parses_back_to_the_rows_as_served() {
        let mut rows = RowsBuilder::new("t1", "Hours");
        rows.push(r#"{"key":"a","open":true}"#);
        rows.push(r#"{"key":"b", "n": 2.0}"#);
        assert_eq!(rows.rows(), 2);
        let body = rows.finish();
        let doc = RowsDocument::parse(&body).unwrap();
        assert_eq!(doc.kind, "datatables");
        assert_eq!(
            doc.table,
            TableRef {
                id: "t1".into(),
                name: "Hours".into()
            }
        );
        let got: Vec<&str> = doc.rows.iter().map(|r| r.get()).collect();
        assert_eq!(got, vec![r#"{"key":"a","open":true}"#, r#"{"key":"b", "n": 2.0}"#]);
        let who = identify_object(body.as_slice()).unwrap();
        assert_eq!((who.kind.as_str(), who.id.as_str()), ("datatables", "t1"));
        let empty = RowsBuilder::new("t2", "Empty").finish();
        assert!(RowsDocument::parse(&empty).unwrap().rows.is_empty());
    }

    #[test]
    fn a_body_without_kind_and_object_or_table_is_not_an_object_document() {
        assert!(identify_object(br#"{"kind":"schedules"}"#.as_slice()).is_err());
        assert!(identify_object(br#"{"flow":{},"configuration":{}}"#.as_slice()).is_err());
        assert!(ObjectDocument::parse(b"{}").is_err());
    }
}
