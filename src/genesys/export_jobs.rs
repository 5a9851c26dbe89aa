//! Architect export jobs (Archy YAML): register a job for flow versions, poll it until it ends,
//! download its result from the signed URL, and split a zip into its files.

use std::io::Read;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::client::{ApiError, GenesysClient};

/// How an export job ended.
#[derive(Debug)]
pub enum JobEnd {
    /// The result: YAML (one flow) or a zip (several).
    Success(Bytes),
    /// The job failed; `throttled` when the message is the exit-code-107 disguise of rate limiting.
    Failure { message: String, throttled: bool },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobState {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    download_url: Option<String>,
    #[serde(default)]
    messages: Vec<JobMessage>,
}

#[derive(Debug, Deserialize)]
struct JobMessage {
    #[serde(default)]
    text: Option<String>,
}

/// True when a failure message carries Archy's exit code 107, the backend's disguise of
/// throttling. Genesys writes "… Setting the Archy exit code to 107"; CX as Code matches
/// "exit code: 107": "exit code", then spaces, `:`, `=`, `is` or `to`, then the number 107.
pub fn is_throttling_disguise(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.match_indices("exit code").any(|(at, found)| {
        let mut rest = m[at + found.len()..].trim_start_matches([' ', ':', '=']);
        for word in ["to ", "is ", "was "] {
            rest = rest.strip_prefix(word).unwrap_or(rest);
        }
        let digits: String = rest.trim_start().chars().take_while(char::is_ascii_digit).collect();
        digits == "107"
    })
}

/// True when a failure message says a flow could not be found: throttling in disguise, or a flow
/// that is really gone — only re-reading the flow tells them apart.
pub fn names_a_missing_flow(message: &str) -> bool {
    message.to_ascii_lowercase().contains("could not find the flow")
}

/// Longest a job may run before it is given up.
const JOB_DEADLINE: Duration = Duration::from_secs(600);

impl GenesysClient {
    /// Registers an export job for `flows` (id, version), polls it until it ends, and downloads
    /// the result on success. Each entry's `fileName` is its flow id (ids are letters, digits and
    /// `-`, as `fileName` must be), so the result's files can be matched to flows exactly.
    pub async fn run_export_job(&self, flows: &[(String, String)]) -> Result<JobEnd, ApiError> {
        let url = self.endpoint(&["api", "v2", "flows", "export", "jobs"]);
        let body = json!({
            "flows": flows.iter().map(|(id, v)| json!({
                "flow": {"id": id, "version": v},
                "exportType": "Yaml",
                "fileName": file_name_for(id),
            })).collect::<Vec<_>>()
        });
        let created = self.post_json(url.clone(), &body).await?;
        let job: JobState = parse(&url, created.body.get())?;
        let Some(id) = job.id else {
            return Err(garbage(&url, "the export job has no id"));
        };
        let job_url = {
            let mut u = self.endpoint(&["api", "v2", "flows", "export", "jobs", &id]);
            u.query_pairs_mut().append_pair("expand", "messages");
            u
        };
        let started = tokio::time::Instant::now();
        let mut wait = Duration::from_millis(200);
        loop {
            let state: JobState = parse(&job_url, self.get_json(job_url.clone()).await?.body.get())?;
            match state.status.as_deref() {
                Some("Success") => {
                    let Some(link) = state.download_url.as_deref().and_then(|u| Url::parse(u).ok()) else {
                        return Err(garbage(&job_url, "the job succeeded without a valid downloadUrl"));
                    };
                    return Ok(JobEnd::Success(self.download(&link).await?));
                }
                Some("Failure") => {
                    let message = state
                        .messages
                        .iter()
                        .filter_map(|m| m.text.as_deref())
                        .collect::<Vec<_>>()
                        .join("; ");
                    let throttled = is_throttling_disguise(&message);
                    return Ok(JobEnd::Failure { message, throttled });
                }
                _ if started.elapsed() > JOB_DEADLINE => {
                    return Err(garbage(&job_url, "the export job did not finish within 10 minutes"));
                }
                _ => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// The `fileName` of a flow's entry: its id, with anything but letters, digits, `_` and `-`
/// replaced by `_` (a Genesys flow id is a UUID, so in practice the id itself).
pub fn file_name_for(flow_id: &str) -> String {
    flow_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl GenesysClient {
    /// Whether a flow still exists, asked of `GET /api/v2/flows/{id}`: `Ok(false)` only on 404 or
    /// 410 (deleted), so a 404 elsewhere is never taken for a deletion without asking the flow.
    pub async fn flow_exists(&self, flow_id: &str) -> Result<bool, ApiError> {
        let url = self.endpoint(&["api", "v2", "flows", flow_id]);
        match self.get_json(url).await {
            Ok(_) => Ok(true),
            Err(ApiError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// After `not_found` (a 404 on one of a flow's configurations): `Ok(())` when the flow itself
    /// is gone (deleted after it was listed); otherwise the error to record, which says the flow
    /// is still there, or why that could not be asked.
    pub async fn confirm_deleted(&self, flow_id: &str, not_found: ApiError) -> Result<(), ApiError> {
        let ApiError::NotFound { url, .. } = &not_found else {
            return Err(not_found);
        };
        match self.flow_exists(flow_id).await {
            Ok(false) => {
                tracing::info!("flow {flow_id} was deleted after it was listed; recording it as not_found");
                Ok(())
            }
            Ok(true) => Err(ApiError::Rejected {
                url: url.clone(),
                status: 404,
                message: format!(
                    "this configuration was not found, yet flow {flow_id} still exists (GET /api/v2/flows/{flow_id} answered it): \
                     it has no saved configuration of that kind"
                ),
                correlation_id: None,
            }),
            Err(e) => Err(ApiError::Rejected {
                url: url.clone(),
                status: 404,
                message: format!("not found, and whether flow {flow_id} still exists could not be asked: {e}"),
                correlation_id: None,
            }),
        }
    }
}

fn parse<T: for<'de> Deserialize<'de>>(url: &Url, body: &str) -> Result<T, ApiError> {
    serde_json::from_str(body).map_err(|e| garbage(url, &format!("unexpected export job answer ({e})")))
}

fn garbage(url: &Url, why: &str) -> ApiError {
    ApiError::Exhausted {
        url: url.to_string(),
        attempts: 1,
        last: why.to_string(),
    }
}

/// The files of an export job's result: a zip's entries (directories skipped), or the one YAML
/// document served as is (named `""`).
pub fn unpack(result: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    if !result.starts_with(b"PK\x03\x04") {
        return Ok(vec![(String::new(), result.to_vec())]);
    }
    let mut zip =
        zip::ZipArchive::new(std::io::Cursor::new(result)).map_err(|e| format!("the export zip is unreadable: {e}"))?;
    let mut files = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| format!("the export zip is unreadable: {e}"))?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().map(|n| n.to_string()).unwrap_or_default();
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| format!("the export zip entry {name} is unreadable: {e}"))?;
        files.push((name, bytes));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_107_message_is_read_as_throttling() {
        assert!(is_throttling_disguise(
            "Could not find the flow with id abc and version 2.0. Exit code 107."
        ));
        assert!(!is_throttling_disguise("Flow is not published"));
    }

    #[test]
    fn the_107_is_matched_as_genesys_writes_it_and_as_cx_as_code_matches_it() {
        assert!(is_throttling_disguise(
            "Could not find the flow with id 'f1' and version '2.0'. Setting the Archy exit code to 107"
        ));
        assert!(is_throttling_disguise("archy failed (exit code: 107)"));
        assert!(!is_throttling_disguise("Setting the Archy exit code to 1070"));
        assert!(!is_throttling_disguise("exit code 1; 107 flows exported"));
    }

    #[test]
    fn a_missing_flow_alone_is_not_throttling() {
        let gone = "Could not find the flow with id 'f1' and version '2.0'.";
        assert!(!is_throttling_disguise(gone));
        assert!(names_a_missing_flow(gone));
    }

    #[test]
    fn a_plain_yaml_result_is_one_unnamed_file() {
        let files = unpack(b"inboundCall:\n  name: x\n").unwrap();
        assert_eq!(files, vec![(String::new(), b"inboundCall:\n  name: x\n".to_vec())]);
    }
}
