//! Prompt audio: resources served with a presigned absolute `mediaUri` (it expires after
//! `media_url_ttl` and refuses an `Authorization` header, as a storage service's signed URL does)
//! and a presigned upload; an upload moves the resource `uploaded` → `transcoded` after
//! `transcode_polls` reads (or `transcodeFailed` for a prompt named in `transcode_fail`, or bytes
//! that are not WAV). Audio transfers are not rate limited; they are counted apart.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::catalogue::duration_of;
use super::{Query, admit_kind, base_url, count_audio, lock, not_found, page_of, storage_error};
use crate::sim::SimState;
use crate::sim::json_response;
use crate::sim::objects::{Audio, ObjectKind, SimObjects};

/// The headers a presigned upload must carry, exactly (they are part of its signature).
pub const UPLOAD_HEADERS: [(&str, &str); 2] = [
    ("Content-Type", "audio/wav"),
    ("x-amz-server-side-encryption", "AES256"),
];

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The server's URL token (part of every presigned path).
fn token(s: &SimState) -> String {
    hex::encode(&Sha256::digest(s.architect.secret)[..8])
}

fn signature(s: &SimState, path: &str, expires: u64) -> String {
    let mut h = Sha256::new();
    h.update(s.architect.secret);
    h.update(path.as_bytes());
    h.update(expires.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// `path?expires=…&signature=…` under `base`, valid for the configured TTL.
fn presign(s: &SimState, base: &str, path: &str) -> String {
    let expires = now_unix() + s.config.media_url_ttl.as_secs();
    format!(
        "{base}{path}?expires={expires}&signature={}",
        signature(s, path, expires)
    )
}

/// Why a presigned request is refused: an Authorization header (400), a bad or expired signature
/// (403); `None` when it is good.
fn refused(s: &SimState, headers: &HeaderMap, path: &str, query: Option<String>) -> Option<Response> {
    if headers.contains_key(header::AUTHORIZATION) {
        return Some(storage_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
        ));
    }
    let q = Query::parse(query);
    let expires: u64 = q.flags.get("expires").and_then(|e| e.parse().ok()).unwrap_or(0);
    let given = q.flags.get("signature").cloned().unwrap_or_default();
    if given != signature(s, path, expires) {
        return Some(storage_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided",
        ));
    }
    if now_unix() >= expires {
        return Some(storage_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Request has expired",
        ));
    }
    None
}

/// Moves an uploaded resource on once it has been read `transcode_polls` times.
fn advance(s: &SimState, objects: &mut SimObjects, prompt: &str, lang: &str) {
    let audio = objects
        .audio
        .get(&(prompt.to_string(), lang.to_string()))
        .map(Audio::bytes);
    let Some(p) = objects.find_mut(ObjectKind::UserPrompt, prompt) else {
        return;
    };
    let fail = s.config.transcode_fail.contains(&p.name);
    let Some(r) = p.body["resources"]
        .as_array_mut()
        .and_then(|rs| rs.iter_mut().find(|r| r["language"] == lang))
    else {
        return;
    };
    if r["uploadStatus"] != "uploaded" {
        return;
    }
    let mut reads = lock(&s.architect.resource_reads);
    let n = reads.entry((prompt.to_string(), lang.to_string())).or_default();
    *n += 1;
    if *n <= s.config.transcode_polls {
        return;
    }
    match audio.as_deref().and_then(duration_of).filter(|_| !fail) {
        Some(seconds) => {
            r["uploadStatus"] = "transcoded".into();
            r["durationSeconds"] = seconds.into();
        }
        None => r["uploadStatus"] = "transcodeFailed".into(),
    }
}

/// A prompt's resources as served: transcoding advanced, `selfUri`, a fresh presigned `mediaUri`
/// (when transcoded and asked for) and `uploadUri`.
pub(super) fn served_resources(
    s: &SimState,
    objects: &mut SimObjects,
    prompt: &str,
    base: &str,
    with_media: bool,
) -> Vec<Value> {
    let langs: Vec<String> = objects
        .find(ObjectKind::UserPrompt, prompt)
        .and_then(|p| p.body["resources"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|r| r["language"].as_str().map(str::to_string))
        .collect();
    let mut out = Vec::new();
    for lang in langs {
        advance(s, objects, prompt, &lang);
        let Some(mut r) = objects.find(ObjectKind::UserPrompt, prompt).and_then(|p| {
            p.body["resources"]
                .as_array()?
                .iter()
                .find(|r| r["language"] == lang.as_str())
                .cloned()
        }) else {
            continue;
        };
        let self_path = format!("{}/{prompt}/resources/{lang}", ObjectKind::UserPrompt.path());
        r["selfUri"] = self_path.into();
        let has_audio = objects.audio.contains_key(&(prompt.to_string(), lang.clone()));
        if with_media && has_audio && r["uploadStatus"] == "transcoded" {
            r["mediaUri"] = presign(s, base, &format!("/sim-media/{}/{prompt}/{lang}.wav", token(s))).into();
        }
        r["uploadUri"] = presign(s, base, &format!("/sim-upload/{}/{prompt}/{lang}", token(s))).into();
        out.push(r);
    }
    out
}

/// The presigned upload for one resource: `{url, headers}`.
pub(super) fn upload_target(s: &SimState, base: &str, prompt: &str, lang: &str) -> Value {
    let headers: serde_json::Map<String, Value> = UPLOAD_HEADERS
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    json!({"url": presign(s, base, &format!("/sim-upload/{}/{prompt}/{lang}", token(s))), "headers": headers})
}

/// `GET /api/v2/architect/prompts/{id}/resources`: a prompt's resources, paged.
pub(super) async fn list_resources(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    Path(id): Path<String>,
) -> Response {
    let kind = ObjectKind::UserPrompt;
    if let Err(r) = admit_kind(&s, &headers, kind, kind.view_permission()).await {
        return r;
    }
    let q = Query::parse(query);
    let resources = {
        let mut objects = s.objects();
        if objects.find(kind, &id).is_none() {
            return not_found(kind, &id);
        }
        served_resources(&s, &mut objects, &id, &base_url(&headers), true)
    };
    match page_of(resources, &q, 100, &format!("{}/{id}/resources", kind.path())) {
        Ok(body) => json_response(body.to_string()),
        Err(r) => r,
    }
}

/// `GET /api/v2/architect/prompts/{id}/resources/{language}`: one resource, with a fresh URL.
pub(super) async fn get_resource(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path((id, lang)): Path<(String, String)>,
) -> Response {
    let kind = ObjectKind::UserPrompt;
    if let Err(r) = admit_kind(&s, &headers, kind, kind.view_permission()).await {
        return r;
    }
    let mut objects = s.objects();
    let found = served_resources(&s, &mut objects, &id, &base_url(&headers), true)
        .into_iter()
        .find(|r| r["language"] == lang.as_str());
    match found {
        Some(r) => json_response(r.to_string()),
        None => not_found(kind, &format!("{id}/resources/{lang}")),
    }
}

/// `GET /sim-media/{token}/{prompt}/{lang}.wav?expires=&signature=`: the audio, no auth header.
pub(super) async fn download(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    Path((tok, prompt, file)): Path<(String, String, String)>,
) -> Response {
    count_audio(&s, false);
    let path = format!("/sim-media/{tok}/{prompt}/{file}");
    if let Some(r) = refused(&s, &headers, &path, query) {
        return r;
    }
    let lang = file.trim_end_matches(".wav").to_string();
    let audio = s.objects().audio.get(&(prompt, lang)).map(Audio::bytes);
    match audio {
        Some(bytes) => ([(header::CONTENT_TYPE, "audio/wav")], bytes).into_response(),
        None => storage_error(StatusCode::NOT_FOUND, "NoSuchKey", "The specified key does not exist."),
    }
}

/// `PUT /sim-upload/{token}/{prompt}/{lang}?expires=&signature=`: the presigned upload. Needs the
/// headers the upload request returned, exactly, and no Authorization header.
pub(super) async fn upload(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    Path((tok, prompt, lang)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    count_audio(&s, true);
    let path = format!("/sim-upload/{tok}/{prompt}/{lang}");
    if let Some(r) = refused(&s, &headers, &path, query) {
        return r;
    }
    let signed = UPLOAD_HEADERS
        .iter()
        .all(|(k, v)| headers.get(*k).and_then(|h| h.to_str().ok()) == Some(*v));
    if !signed {
        return storage_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your headers.",
        );
    }
    let mut objects = s.objects();
    let Some(p) = objects.find_mut(ObjectKind::UserPrompt, &prompt) else {
        return storage_error(StatusCode::NOT_FOUND, "NoSuchKey", "The specified key does not exist.");
    };
    let Some(r) = p.body["resources"]
        .as_array_mut()
        .and_then(|rs| rs.iter_mut().find(|r| r["language"] == lang.as_str()))
    else {
        return storage_error(StatusCode::NOT_FOUND, "NoSuchKey", "The specified key does not exist.");
    };
    r["uploadStatus"] = "uploaded".into();
    r["durationSeconds"] = Value::Null;
    objects
        .audio
        .insert((prompt.clone(), lang.clone()), Audio::Uploaded(body));
    lock(&s.architect.resource_reads).remove(&(prompt, lang));
    StatusCode::OK.into_response()
}
