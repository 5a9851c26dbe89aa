//! Reading the Architect objects flows stand on: every kind's listing and a data table's rows
//! through the one paging code (`pages.rs`), and a prompt's audio from its presigned `mediaUri`
//! (no Authorization header, no API rate limit; an expired URL is asked for again, a bounded
//! number of times). A 403 on a kind is told apart from other failures: it names the missing
//! permission, so a run can record the kind as not checked rather than fail.

use bytes::Bytes;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use tracing::{debug, warn};
use url::Url;

use super::client::{ApiError, FlowPage, GenesysClient};
use super::pages::{self, ListError, PageSize, Source};
use crate::architect::ArchitectKind;
use crate::document::RowsBuilder;
use crate::manifest::Division;

/// The page size Architect listings start at (the documented maximum for these kinds).
pub const ARCHITECT_PAGE_SIZE: u64 = 100;

/// Fresh `mediaUri`s asked for when a presigned audio URL has expired, per audio file.
pub const AUDIO_URL_REFRESHES: u32 = 3;

/// Keys that change from one read to the next without the object changing (presigned URLs and
/// self links): left out of listing fingerprints.
const VOLATILE: [&str; 3] = ["mediaUri", "uploadUri", "selfUri"];

/// Presigned URLs: they expire within the hour and carry a signature, so a stored object leaves
/// them out (the audio itself is stored beside it).
const PRESIGNED: [&str; 2] = ["mediaUri", "uploadUri"];

/// Why an Architect read failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchitectError {
    /// The role lacks the permission that reads this (HTTP 403).
    #[error("missing permission {permission}: the API refused to list {what} (HTTP 403: {message})")]
    MissingPermission {
        /// The permission the read needs.
        permission: String,
        /// What was being read.
        what: String,
        /// The API's words.
        message: String,
    },
    /// A listing failed otherwise.
    #[error("listing {what} failed: {source}")]
    List {
        /// What was being listed.
        what: String,
        /// Why.
        source: ListError,
    },
    /// A single read failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A prompt's audio could not be downloaded.
    #[error("the audio of prompt `{prompt}` ({language}) could not be downloaded: {reason}")]
    Audio {
        /// The prompt's name.
        prompt: String,
        /// The resource's language.
        language: String,
        /// Why (never the presigned URL's query).
        reason: String,
    },
}

impl ArchitectError {
    /// A listing error, with a 403 turned into the permission it names.
    fn from_list(source: ListError, permission: &str, what: String) -> ArchitectError {
        match source.api_error() {
            Some(ApiError::Forbidden { message, .. }) => ArchitectError::MissingPermission {
                permission: named_permission(message).unwrap_or_else(|| permission.to_string()),
                what,
                message: message.clone(),
            },
            _ => ArchitectError::List { what, source },
        }
    }

    /// The permission missing, when that is why the read failed.
    pub fn missing_permission(&self) -> Option<&str> {
        match self {
            ArchitectError::MissingPermission { permission, .. } => Some(permission),
            _ => None,
        }
    }

    /// True when the error concerns the whole run (credentials).
    pub fn is_fatal_for_run(&self) -> bool {
        match self {
            ArchitectError::List { source, .. } => source.is_credential_failure(),
            ArchitectError::Api(e) => e.is_fatal_for_run(),
            _ => false,
        }
    }
}

/// A permission named in an API message (`…:…:view`-shaped words), if any.
fn named_permission(message: &str) -> Option<String> {
    message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == ':' || c == '_'))
        .find(|w| w.split(':').count() == 3 && w.split(':').all(|p| !p.is_empty()))
        .map(str::to_string)
}

/// One listed Architect object, kept as served.
#[derive(Debug)]
pub struct ListedObject {
    /// Its kind.
    pub kind: ArchitectKind,
    /// Object id.
    pub id: String,
    /// Object name (empty when it has none).
    pub name: String,
    /// Its division, when the kind has one.
    pub division: Option<Division>,
    /// The object as listed.
    pub raw: Box<RawValue>,
}

/// One language resource of a prompt, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptResource {
    /// The language (`en-us`).
    pub language: String,
    /// The presigned audio URL, when the listing gave one.
    pub media_uri: Option<String>,
    /// True when the resource has audio (`uploadStatus` `transcoded`, or a `mediaUri`).
    pub has_audio: bool,
    /// Hex SHA-256 of the resource's listed fields without its URLs: unchanged when its audio is.
    pub fingerprint: String,
}

impl ListedObject {
    /// The object `raw` of `kind` whose id is `id`.
    pub fn new(kind: ArchitectKind, raw: Box<RawValue>, id: String) -> ListedObject {
        #[derive(serde::Deserialize)]
        struct Fields {
            #[serde(default)]
            name: Option<String>,
            #[serde(default)]
            division: Option<Division>,
        }
        let fields = serde_json::from_str::<Fields>(raw.get()).ok();
        let (name, division) = fields.map_or((None, None), |f| (f.name, f.division));
        ListedObject {
            kind,
            id,
            name: name.unwrap_or_default(),
            division,
            raw,
        }
    }

    /// Hex SHA-256 of the object as listed, canonicalized, its URLs (`mediaUri`, `uploadUri`,
    /// `selfUri`) left out: what an incremental run compares.
    pub fn listing_sha256(&self) -> String {
        fingerprint(self.raw.get())
    }

    /// The object as stored: as listed, without its presigned URLs (field order kept). Two runs
    /// of an unchanged object store the same bytes.
    pub fn stored_json(&self) -> std::borrow::Cow<'_, str> {
        let raw = self.raw.get();
        if !PRESIGNED.iter().any(|k| raw.contains(&format!("\"{k}\""))) {
            return raw.into();
        }
        match serde_json::from_str::<serde_json::Value>(raw) {
            Ok(mut value) => {
                strip(&mut value, &PRESIGNED);
                value.to_string().into()
            }
            Err(_) => raw.into(),
        }
    }

    /// A prompt's language resources (none for other kinds).
    pub fn resources(&self) -> Vec<PromptResource> {
        #[derive(serde::Deserialize)]
        struct Prompt {
            #[serde(default)]
            resources: Vec<serde_json::Value>,
        }
        let Ok(prompt) = serde_json::from_str::<Prompt>(self.raw.get()) else {
            return Vec::new();
        };
        prompt
            .resources
            .iter()
            .filter_map(|r| {
                let language = r.get("language")?.as_str()?.to_string();
                let media_uri = r
                    .get("mediaUri")
                    .and_then(|u| u.as_str())
                    .filter(|u| !u.is_empty())
                    .map(str::to_string);
                let transcoded = r.get("uploadStatus").and_then(|u| u.as_str()) == Some("transcoded");
                Some(PromptResource {
                    language,
                    has_audio: transcoded || media_uri.is_some(),
                    media_uri,
                    fingerprint: fingerprint(&r.to_string()),
                })
            })
            .collect()
    }
}

/// The canonical SHA-256 of a JSON text without its volatile keys (at any depth).
fn fingerprint(json: &str) -> String {
    let mut out = Vec::with_capacity(json.len());
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(mut value) => {
            strip(&mut value, &VOLATILE);
            super::flow::write_canonical(&value, &mut out);
        }
        Err(_) => out.extend_from_slice(json.as_bytes()),
    }
    hex::encode(Sha256::digest(&out))
}

/// Removes `keys` at any depth.
fn strip(value: &mut serde_json::Value, keys: &[&str]) {
    match value {
        serde_json::Value::Object(map) => {
            for key in keys {
                map.shift_remove(*key);
            }
            map.values_mut().for_each(|v| strip(v, keys));
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| strip(v, keys)),
        _ => {}
    }
}

/// Every object of one kind, and what listing it cost.
#[derive(Debug, Default)]
pub struct KindListing {
    /// The objects, in listing order.
    pub objects: Vec<ListedObject>,
    /// Pages requested.
    pub pages: u64,
    /// The API's `total` on the last page.
    pub api_total: Option<u64>,
    /// Rows that had no id.
    pub malformed: u64,
}

/// A data table's rows document and what reading it cost.
#[derive(Debug)]
pub struct TableRows {
    /// `{"kind":"datatables","table":…,"rows":[…]}`.
    pub document: Vec<u8>,
    /// Rows in it.
    pub rows: u64,
    /// Pages requested.
    pub pages: u64,
}

/// A prompt's audio and the API requests getting it took (fresh URLs; the downloads are not
/// API requests).
#[derive(Debug)]
pub struct Audio {
    /// The bytes as served.
    pub bytes: Bytes,
    /// API requests for fresh URLs.
    pub requests: u64,
}

impl GenesysClient {
    /// One page of an Architect kind's collection (prompts with resources and media URLs,
    /// data tables with their schema).
    pub async fn architect_page(&self, kind: ArchitectKind, page_number: u64, size: u64) -> Result<FlowPage, ApiError> {
        let mut url = self.url_of(kind.path());
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("pageNumber", &page_number.to_string());
            q.append_pair("pageSize", &size.to_string());
            match kind {
                ArchitectKind::Prompts => {
                    q.append_pair("includeMediaUris", "true");
                    q.append_pair("includeResources", "true");
                }
                ArchitectKind::DataTables => {
                    q.append_pair("expand", "schema");
                }
                _ => {}
            }
        }
        self.get_page(url).await
    }

    /// One page of a data table's rows, every field (`showbrief=false`).
    pub async fn datatable_rows_page(&self, table_id: &str, page_number: u64, size: u64) -> Result<FlowPage, ApiError> {
        let mut url = self.endpoint(&["api", "v2", "flows", "datatables", table_id, "rows"]);
        url.query_pairs_mut()
            .append_pair("showbrief", "false")
            .append_pair("pageNumber", &page_number.to_string())
            .append_pair("pageSize", &size.to_string());
        self.get_page(url).await
    }

    /// `GET /api/v2/architect/prompts/{id}/resources/{language}`: the resource with a fresh
    /// `mediaUri`.
    pub async fn prompt_resource(&self, prompt_id: &str, language: &str) -> Result<Option<String>, ApiError> {
        let url = self.endpoint(&["api", "v2", "architect", "prompts", prompt_id, "resources", language]);
        let fetched = self.get_json(url).await?;
        let value: serde_json::Value = serde_json::from_str(fetched.body.get()).unwrap_or_default();
        Ok(value
            .get("mediaUri")
            .and_then(|u| u.as_str())
            .filter(|u| !u.is_empty())
            .map(str::to_string))
    }

    fn url_of(&self, path: &str) -> Url {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        self.endpoint(&segments)
    }

    async fn get_page(&self, url: Url) -> Result<FlowPage, ApiError> {
        let fetched = self.get_json(url.clone()).await?;
        serde_json::from_str(fetched.body.get()).map_err(|e| ApiError::Exhausted {
            url: url.to_string(),
            attempts: fetched.attempts,
            last: format!("the response is not a paged listing ({e})"),
        })
    }
}

/// Lists every object of `kind`.
pub async fn list_kind(
    client: &GenesysClient,
    kind: ArchitectKind,
    page_size: u64,
) -> Result<KindListing, ArchitectError> {
    let mut size = PageSize::new(page_size.min(ARCHITECT_PAGE_SIZE));
    let mut objects = Vec::new();
    let walked = pages::walk_raw(client, &Source::Architect(kind), &mut size, "id", |raw, id| {
        objects.push(ListedObject::new(kind, raw, id));
    })
    .await
    .map_err(|e| ArchitectError::from_list(e, kind.view_permission(), kind.as_str().to_string()))?;
    if walked.malformed > 0 {
        warn!(kind = %kind, "{} {kind} rows without an id were left out of the listing", walked.malformed);
    }
    Ok(KindListing {
        objects,
        pages: walked.pages,
        api_total: walked.api_total,
        malformed: walked.malformed,
    })
}

/// Reads every row of data table `id`, each page appended to the document as it comes (one
/// table's rows in memory at a time, never as values).
pub async fn table_rows(
    client: &GenesysClient,
    id: &str,
    name: &str,
    page_size: u64,
) -> Result<TableRows, ArchitectError> {
    let mut size = PageSize::new(page_size.min(ARCHITECT_PAGE_SIZE));
    let mut builder = RowsBuilder::new(id, name);
    let walked = pages::walk_raw(client, &Source::Rows(id.to_string()), &mut size, "key", |raw, _| {
        builder.push(raw.get());
    })
    .await
    .map_err(|e| {
        ArchitectError::from_list(
            e,
            ArchitectKind::ROWS_PERMISSION,
            format!("the rows of data table `{name}`"),
        )
    })?;
    if walked.malformed > 0 {
        warn!(
            "{} rows of data table `{name}` had no key and were left out",
            walked.malformed
        );
    }
    Ok(TableRows {
        rows: builder.rows(),
        document: builder.finish(),
        pages: walked.pages,
    })
}

/// Downloads one resource's audio from its presigned URL (no Authorization header, outside the
/// API rate limit). An expired URL (403) is asked for again, at most [`AUDIO_URL_REFRESHES`]
/// times.
pub async fn prompt_audio(
    client: &GenesysClient,
    prompt: &ListedObject,
    resource: &PromptResource,
) -> Result<Audio, ArchitectError> {
    let failed = |reason: String| ArchitectError::Audio {
        prompt: prompt.name.clone(),
        language: resource.language.clone(),
        reason,
    };
    let mut requests = 0;
    let mut media = resource.media_uri.clone();
    let mut refreshes = 0;
    loop {
        let uri = match media.take() {
            Some(u) => u,
            None if refreshes < AUDIO_URL_REFRESHES => {
                refreshes += 1;
                requests += 1;
                client
                    .prompt_resource(&prompt.id, &resource.language)
                    .await?
                    .ok_or_else(|| failed("the resource has no mediaUri".into()))?
            }
            None => {
                return Err(failed(format!(
                    "its URL was still refused after {AUDIO_URL_REFRESHES} fresh ones"
                )));
            }
        };
        let url = Url::parse(&uri).map_err(|e| failed(format!("its mediaUri is not a URL ({e})")))?;
        match client.download(&url).await {
            Ok(bytes) => return Ok(Audio { bytes, requests }),
            Err(ApiError::Rejected { status: 403, .. }) => {
                debug!(prompt = %prompt.name, language = %resource.language, "the audio URL expired; asking for a fresh one");
            }
            Err(e) => return Err(failed(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: ArchitectKind, json: &str) -> ListedObject {
        ListedObject::new(kind, RawValue::from_string(json.into()).unwrap(), "p1".into())
    }

    #[test]
    fn a_prompts_fingerprint_ignores_its_presigned_urls_but_not_its_fields() {
        let a = object(
            ArchitectKind::Prompts,
            r#"{"id":"p1","name":"Hi","selfUri":"/a","resources":[{"language":"en-us","mediaUri":"http://x/1?sig=a","uploadUri":"u1","text":"Hi"}]}"#,
        );
        let again = object(
            ArchitectKind::Prompts,
            r#"{"resources":[{"text":"Hi","language":"en-us","mediaUri":"http://x/1?sig=b"}],"name":"Hi","id":"p1"}"#,
        );
        let edited = object(
            ArchitectKind::Prompts,
            r#"{"id":"p1","name":"Hi","resources":[{"language":"en-us","mediaUri":"http://x/1?sig=a","text":"Hello"}]}"#,
        );
        assert_eq!(a.listing_sha256(), again.listing_sha256());
        assert_eq!(
            a.stored_json(),
            r#"{"id":"p1","name":"Hi","selfUri":"/a","resources":[{"language":"en-us","text":"Hi"}]}"#,
            "stored without its presigned URLs, in its own order"
        );
        let schedule = object(ArchitectKind::Schedules, r#"{"id":"s", "name":"S"}"#);
        assert_eq!(schedule.stored_json(), r#"{"id":"s", "name":"S"}"#, "byte for byte");
        assert_ne!(a.listing_sha256(), edited.listing_sha256());
        assert_eq!(a.name, "Hi");
        let (ra, rb) = (a.resources(), again.resources());
        assert_eq!(ra[0].media_uri.as_deref(), Some("http://x/1?sig=a"));
        assert_eq!(ra[0].fingerprint, rb[0].fingerprint);
        assert_ne!(ra[0].fingerprint, edited.resources()[0].fingerprint);
    }

    #[test]
    fn a_permission_named_by_the_api_is_found_in_its_message() {
        assert_eq!(
            named_permission(
                "You are missing the following permission(s): routing:callRoute:view [missing.permissions]"
            )
            .as_deref(),
            Some("routing:callRoute:view")
        );
        assert_eq!(named_permission("Forbidden [missing.permissions]"), None);
    }
}
