//! The write side of the Architect objects flows stand on (prompts and their audio, data tables
//! and their rows, schedules, schedule groups, emergency groups, IVRs, outcomes, milestones).
//!
//! Every write is sent once ([`GenesysClient::write_once`]). A write whose outcome is unknown
//! (5xx, timeout) is settled by reading the object back — a create by name, an update by id (its
//! `version` moved and its fields are what was sent), a row by key — and never resent blind. An
//! upload to a presigned URL is judged by the resource's `uploadStatus`; an expired URL is
//! replaced by a new one.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use url::Url;

use super::client::{ApiError, GenesysClient, UploadAnswer};

/// Objects per listing page (the most these kinds serve).
const PAGE_SIZE: u64 = 100;
/// Pages read at most per listing, so a server that never ends one cannot keep a restore paging.
const MAX_PAGES: u64 = 1_000;
/// Read-backs after a create with an unknown outcome: listings can lag writes by seconds.
const SETTLE_READS: u32 = 5;
/// Fresh upload URLs asked for at most for one audio file (expired or unclear uploads).
const UPLOAD_TRIES: u32 = 3;

/// A write to an Architect object that did not go through.
#[derive(Debug, thiserror::Error)]
pub enum ArchitectWriteError {
    /// The API refused it or could not be read.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The write got no clear answer and reading back did not show it happened; it was not
    /// resent, so it cannot have happened twice.
    #[error(
        "{what}: no clear answer ({reason}) and reading it back does not show it happened; it was not resent — run the restore again to continue"
    )]
    Unsettled { what: String, reason: String },
    /// The write went through but the object read back differs from what was sent (someone
    /// else changed it meanwhile).
    #[error("{what}: after the write the object holds something else (changed by someone else meanwhile?)")]
    Overtaken { what: String },
    /// The audio was not accepted by the upload URL.
    #[error("{what}: the upload was refused (HTTP {status}: {message})")]
    UploadRefused { what: String, status: u16, message: String },
    /// Uploads kept expiring or answering unclearly.
    #[error("{what}: the audio could not be uploaded after {tries} fresh upload URLs ({last})")]
    UploadGaveUp { what: String, tries: u32, last: String },
    /// Transcoding failed in Genesys.
    #[error("{what}: Genesys could not transcode the uploaded audio (uploadStatus transcodeFailed)")]
    TranscodeFailed { what: String },
    /// Transcoding did not finish in time.
    #[error("{what}: still {status} after {polls} reads; the audio may yet be transcoded — check the prompt")]
    TranscodeTimeout { what: String, status: String, polls: u32 },
    /// An answer without what it must carry.
    #[error("{what}: the answer carries no {field}")]
    Malformed { what: String, field: &'static str },
}

impl ArchitectWriteError {
    /// True when the whole run cannot go on (credentials).
    pub fn is_fatal_for_run(&self) -> bool {
        matches!(self, ArchitectWriteError::Api(e) if e.is_fatal_for_run())
    }
}

/// What a write came to.
#[derive(Debug, Clone)]
pub struct Written {
    /// The object as answered or read back.
    pub object: Value,
    /// True when the outcome was unknown and reading back showed the write had happened.
    pub settled_by_reading: bool,
}

fn body_of(fetched: super::client::Fetched) -> Value {
    serde_json::from_str(fetched.body.get()).unwrap_or(Value::Null)
}

fn to_bytes(v: &Value) -> Result<Bytes, ApiError> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| ApiError::Setup(e.to_string()))
}

/// The path of an API path string (`/api/v2/architect/prompts`) as segments.
fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// True when every field of `sent` (besides `version`, `id`, `selfUri`) is in `read` alike.
pub fn holds_what_was_sent(sent: &Value, read: &Value) -> bool {
    holds(sent, read, true)
}

/// [`holds_what_was_sent`] at one level: the object's own `id`, `version` and `selfUri` are the
/// org's to set, but a reference's `id` (a schedule group's schedules, an IVR's flows) is what
/// a re-point changes, so below the top level every sent key counts.
fn holds(sent: &Value, read: &Value, top: bool) -> bool {
    match (sent, read) {
        (Value::Object(s), Value::Object(r)) => s
            .iter()
            .filter(|(k, _)| !(top && matches!(k.as_str(), "version" | "id" | "selfUri")))
            .all(|(k, v)| r.get(k).is_some_and(|rv| holds(v, rv, false))),
        (Value::Array(s), Value::Array(r)) => s.len() == r.len() && s.iter().zip(r).all(|(a, b)| holds(a, b, false)),
        _ => sent == read,
    }
}

fn version_of(v: &Value) -> Option<i64> {
    v.get("version").and_then(Value::as_i64)
}

/// A prompt resource's `uploadStatus`.
pub fn upload_status(resource: &Value) -> &str {
    resource.get("uploadStatus").and_then(Value::as_str).unwrap_or("")
}

impl GenesysClient {
    /// Every object of the collection at `path` (`/api/v2/architect/schedules`), paged until a
    /// page comes back short or empty; with `name`, only objects named exactly that (ignoring
    /// case, as Architect compares). `query` is added to each page's request.
    pub async fn architect_list(
        &self,
        path: &str,
        name: Option<&str>,
        query: &[(&str, &str)],
    ) -> Result<Vec<Value>, ApiError> {
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut url = self.endpoint(&segments(path));
            url.query_pairs_mut()
                .append_pair("pageNumber", &page.to_string())
                .append_pair("pageSize", &PAGE_SIZE.to_string());
            if let Some(n) = name {
                url.query_pairs_mut().append_pair("name", n);
            }
            for (k, v) in query {
                url.query_pairs_mut().append_pair(k, v);
            }
            let body = body_of(self.get_json(url).await?);
            let rows = body
                .get("entities")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let served = rows.len() as u64;
            out.extend(rows.into_iter().filter(|r| {
                name.is_none_or(|n| {
                    r.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|m| m.eq_ignore_ascii_case(n))
                })
            }));
            let size = body
                .get("pageSize")
                .and_then(Value::as_u64)
                .unwrap_or(PAGE_SIZE)
                .min(PAGE_SIZE);
            if served == 0 || served < size {
                break;
            }
        }
        Ok(out)
    }

    /// `GET {path}/{id}` with `query`.
    pub async fn architect_get(&self, path: &str, id: &str, query: &[(&str, &str)]) -> Result<Value, ApiError> {
        let mut segs = segments(path);
        segs.push(id);
        let mut url = self.endpoint(&segs);
        for (k, v) in query {
            url.query_pairs_mut().append_pair(k, v);
        }
        Ok(body_of(self.get_json(url).await?))
    }

    /// `POST {path}` once: the new object. An unknown outcome is settled by looking the object up
    /// by `name` (a few reads, since listings lag); found, it is what was created.
    pub async fn architect_create(&self, path: &str, name: &str, body: &Value) -> Result<Written, ArchitectWriteError> {
        let url = self.endpoint(&segments(path));
        match self.write_once(reqwest::Method::POST, url, Some(to_bytes(body)?)).await {
            Ok(f) => {
                let object = body_of(f);
                if object.get("id").and_then(Value::as_str).is_some() {
                    return Ok(Written {
                        object,
                        settled_by_reading: false,
                    });
                }
                // 202 with an operation (outcomes): the object appears in the listing later.
                self.settle_create(path, name, "the answer carries no id".into()).await
            }
            Err(ApiError::OutcomeUnknown { reason, .. }) => self.settle_create(path, name, reason).await,
            Err(e) => Err(e.into()),
        }
    }

    async fn settle_create(&self, path: &str, name: &str, reason: String) -> Result<Written, ArchitectWriteError> {
        let mut wait = Duration::from_millis(200);
        for read in 0..SETTLE_READS {
            if read > 0 {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            if let Some(object) = self.architect_list(path, Some(name), &[]).await?.into_iter().next() {
                return Ok(Written {
                    object,
                    settled_by_reading: true,
                });
            }
        }
        Err(ArchitectWriteError::Unsettled {
            what: format!("creating {name:?} at {path}"),
            reason,
        })
    }

    /// `PUT {path}/{id}` once with `body` (carrying the current `version` where the kind has
    /// one). An unknown outcome is settled by reading the object back: its version moved past the
    /// one sent and it holds what was sent.
    pub async fn architect_update(&self, path: &str, id: &str, body: &Value) -> Result<Written, ArchitectWriteError> {
        let mut segs = segments(path);
        segs.push(id);
        let url = self.endpoint(&segs);
        match self.write_once(reqwest::Method::PUT, url, Some(to_bytes(body)?)).await {
            Ok(f) => Ok(Written {
                object: body_of(f),
                settled_by_reading: false,
            }),
            Err(ApiError::OutcomeUnknown { reason, .. }) => {
                let read = self.architect_get(path, id, &[]).await?;
                let moved = match (version_of(body), version_of(&read)) {
                    (Some(sent), Some(now)) => now > sent,
                    _ => true,
                };
                match (moved, holds_what_was_sent(body, &read)) {
                    (true, true) => Ok(Written {
                        object: read,
                        settled_by_reading: true,
                    }),
                    (true, false) if version_of(body).is_some() => Err(ArchitectWriteError::Overtaken {
                        what: format!("updating {id} at {path}"),
                    }),
                    _ => Err(ArchitectWriteError::Unsettled {
                        what: format!("updating {id} at {path}"),
                        reason,
                    }),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A prompt's resource in `language`, or `None` when it has none.
    pub async fn prompt_resource_state(&self, prompt_id: &str, language: &str) -> Result<Option<Value>, ApiError> {
        let url = self.endpoint(&["api", "v2", "architect", "prompts", prompt_id, "resources", language]);
        match self.get_json(url).await {
            Ok(f) => Ok(Some(body_of(f))),
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST …/prompts/{id}/resources {language, ttsString, text}` once; an unknown outcome is
    /// settled by reading the resource in that language back.
    pub async fn create_prompt_resource(&self, prompt_id: &str, body: &Value) -> Result<Written, ArchitectWriteError> {
        let language = body
            .get("language")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let url = self.endpoint(&["api", "v2", "architect", "prompts", prompt_id, "resources"]);
        match self.write_once(reqwest::Method::POST, url, Some(to_bytes(body)?)).await {
            Ok(f) => Ok(Written {
                object: body_of(f),
                settled_by_reading: false,
            }),
            Err(ApiError::OutcomeUnknown { reason, .. }) => {
                match self.prompt_resource_state(prompt_id, &language).await? {
                    Some(object) => Ok(Written {
                        object,
                        settled_by_reading: true,
                    }),
                    None => Err(ArchitectWriteError::Unsettled {
                        what: format!("adding the {language} resource of prompt {prompt_id}"),
                        reason,
                    }),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `PUT …/prompts/{id}/resources/{language}` once; an unknown outcome is settled by reading
    /// the resource back and finding what was sent.
    pub async fn update_prompt_resource(
        &self,
        prompt_id: &str,
        language: &str,
        body: &Value,
    ) -> Result<Written, ArchitectWriteError> {
        let url = self.endpoint(&["api", "v2", "architect", "prompts", prompt_id, "resources", language]);
        match self.write_once(reqwest::Method::PUT, url, Some(to_bytes(body)?)).await {
            Ok(f) => Ok(Written {
                object: body_of(f),
                settled_by_reading: false,
            }),
            Err(ApiError::OutcomeUnknown { reason, .. }) => {
                match self.prompt_resource_state(prompt_id, language).await? {
                    Some(object) if holds_what_was_sent(body, &object) => Ok(Written {
                        object,
                        settled_by_reading: true,
                    }),
                    _ => Err(ArchitectWriteError::Unsettled {
                        what: format!("updating the {language} resource of prompt {prompt_id}"),
                        reason,
                    }),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A presigned upload for a prompt resource: `POST …/resources/{language}/uploads` →
    /// `{url, headers}`. Asking writes nothing to the org, so an unclear answer is simply asked
    /// again by the retry driver.
    async fn upload_target(
        &self,
        prompt_id: &str,
        language: &str,
    ) -> Result<(Url, Vec<(String, String)>), ArchitectWriteError> {
        let url = self.endpoint(&[
            "api",
            "v2",
            "architect",
            "prompts",
            prompt_id,
            "resources",
            language,
            "uploads",
        ]);
        let answer = body_of(self.post_json(url, &json!({})).await?);
        let what = || format!("the {language} upload of prompt {prompt_id}");
        let target = answer
            .get("url")
            .and_then(Value::as_str)
            .and_then(|u| Url::parse(u).ok())
            .ok_or_else(|| ArchitectWriteError::Malformed {
                what: what(),
                field: "url",
            })?;
        let headers = answer
            .get("headers")
            .and_then(Value::as_object)
            .map(|h| {
                h.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Ok((target, headers))
    }

    /// Uploads a prompt resource's audio through a presigned upload, each PUT sent once with
    /// exactly the headers given and no Authorization. An expired URL is replaced by a new one; an
    /// unclear answer is judged by the resource's `uploadStatus` (no longer `created`: it landed)
    /// before a new URL is asked for.
    pub async fn upload_prompt_audio(
        &self,
        prompt_id: &str,
        language: &str,
        audio: Bytes,
    ) -> Result<(), ArchitectWriteError> {
        let what = format!("uploading the {language} audio of prompt {prompt_id}");
        let mut last = String::new();
        for _ in 0..UPLOAD_TRIES {
            let (url, headers) = self.upload_target(prompt_id, language).await?;
            match self.put_presigned(&url, &headers, audio.clone()).await {
                UploadAnswer::Stored => return Ok(()),
                UploadAnswer::Expired => last = "the upload URL had expired".into(),
                UploadAnswer::Refused { status, message } => {
                    return Err(ArchitectWriteError::UploadRefused { what, status, message });
                }
                UploadAnswer::Unknown(reason) => {
                    let status = self.prompt_resource_state(prompt_id, language).await?;
                    if status
                        .as_ref()
                        .is_some_and(|r| !matches!(upload_status(r), "created" | ""))
                    {
                        return Ok(());
                    }
                    last = reason;
                }
            }
        }
        Err(ArchitectWriteError::UploadGaveUp {
            what,
            tries: UPLOAD_TRIES,
            last,
        })
    }

    /// Reads a prompt resource until it is `transcoded` (at most `polls` reads, backing off to
    /// 2 s); `transcodeFailed` fails at once.
    pub async fn wait_transcoded(
        &self,
        prompt_id: &str,
        language: &str,
        polls: u32,
    ) -> Result<Value, ArchitectWriteError> {
        let what = format!("the {language} audio of prompt {prompt_id}");
        let mut wait = Duration::from_millis(100);
        let mut status = String::from("unknown");
        for read in 0..polls.max(1) {
            if read > 0 {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            let Some(resource) = self.prompt_resource_state(prompt_id, language).await? else {
                status = "missing".into();
                continue;
            };
            match upload_status(&resource) {
                "transcoded" => return Ok(resource),
                "transcodeFailed" => return Err(ArchitectWriteError::TranscodeFailed { what }),
                other => status = other.to_string(),
            }
        }
        Err(ArchitectWriteError::TranscodeTimeout {
            what,
            status,
            polls: polls.max(1),
        })
    }

    /// Every row of data table `table_id`, whole (`showbrief=false`).
    pub async fn datatable_rows(&self, table_id: &str) -> Result<Vec<Value>, ApiError> {
        let path = format!("/api/v2/flows/datatables/{table_id}/rows");
        self.architect_list(&path, None, &[("showbrief", "false")]).await
    }

    /// One row by key, or `None`.
    pub async fn datatable_row(&self, table_id: &str, key: &str) -> Result<Option<Value>, ApiError> {
        let url = self.endpoint(&["api", "v2", "flows", "datatables", table_id, "rows", key]);
        match self.get_json(url).await {
            Ok(f) => Ok(Some(body_of(f))),
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes one row once: `POST …/rows` to add it, `PUT …/rows/{key}` to replace it, `DELETE`
    /// (`row` = `None`) to remove it. An unknown outcome is settled by reading the row back.
    pub async fn write_datatable_row(
        &self,
        table_id: &str,
        key: &str,
        row: Option<&Value>,
        exists: bool,
    ) -> Result<bool, ArchitectWriteError> {
        let (method, url) = match (row, exists) {
            (Some(_), false) => (
                reqwest::Method::POST,
                self.endpoint(&["api", "v2", "flows", "datatables", table_id, "rows"]),
            ),
            (Some(_), true) => (
                reqwest::Method::PUT,
                self.endpoint(&["api", "v2", "flows", "datatables", table_id, "rows", key]),
            ),
            (None, _) => (
                reqwest::Method::DELETE,
                self.endpoint(&["api", "v2", "flows", "datatables", table_id, "rows", key]),
            ),
        };
        let body = row.map(to_bytes).transpose()?;
        match self.write_once(method, url, body).await {
            Ok(_) => Ok(false),
            Err(ApiError::OutcomeUnknown { reason, .. }) => {
                let now = self.datatable_row(table_id, key).await?;
                let happened = match (row, now) {
                    (Some(sent), Some(read)) => holds_what_was_sent(sent, &read),
                    (None, None) => true,
                    _ => false,
                };
                if happened {
                    Ok(true)
                } else {
                    Err(ArchitectWriteError::Unsettled {
                        what: format!("writing row {key:?} of data table {table_id}"),
                        reason,
                    })
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_read_back_holds_what_was_sent_whatever_else_it_carries() {
        let sent = json!({"name": "Open", "version": 3, "openSchedules": [{"id": "s1"}]});
        let read = json!({"id": "g", "name": "Open", "version": 4, "openSchedules": [{"id": "s1", "name": "Mon"}], "selfUri": "/x"});
        assert!(holds_what_was_sent(&sent, &read));
    }

    #[test]
    fn an_object_read_back_with_another_value_does_not_hold_what_was_sent() {
        let sent = json!({"name": "Open", "openSchedules": [{"id": "s1"}]});
        let read = json!({"name": "Open", "openSchedules": [{"id": "s2"}]});
        assert!(!holds_what_was_sent(&sent, &read));
        assert!(!holds_what_was_sent(&json!({"a": [1, 2]}), &json!({"a": [1]})));
    }
}
