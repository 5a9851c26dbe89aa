//! The simulated org's Architect objects over HTTP, as specifications of its rules: every kind
//! listed, paged and name-filtered; prompt audio at presigned URLs that expire and refuse an
//! Authorization header; per-kind permissions; data table rows with `showbrief`; versions and
//! 409s; the presigned upload and transcoding; asynchronous outcomes; write faults; and a publish
//! that fails when a referenced Architect object is gone.

use std::time::Duration;

use flowvault::sim::{MISSING_DEPENDENCIES, ObjectKind, ObjectWriteFault, SimConfig, SimObjects, SimServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{CLIENT_ID, CLIENT_SECRET, org, start_sim};

/// An authenticated client of the simulated org.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn new(sim: &SimServer) -> Api {
        flowvault::tls::init();
        let http = reqwest::Client::new();
        let token: Value = http
            .post(format!("{}/oauth/token", sim.url()))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Api {
            http,
            base: sim.url().to_string(),
            token: token["access_token"].as_str().unwrap().to_string(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// Every entity of a listing, page by page.
    async fn all(&self, path: &str, page_size: u64) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut out = Vec::new();
        for page in 1.. {
            let (status, body) = self
                .get(&format!("{path}{sep}pageSize={page_size}&pageNumber={page}"))
                .await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            out.extend(body["entities"].as_array().unwrap().iter().cloned());
            if page >= body["pageCount"].as_u64().unwrap() {
                break;
            }
        }
        out
    }
}

fn with(change: impl FnOnce(&mut SimConfig)) -> SimConfig {
    let mut config = org(22);
    change(&mut config);
    config
}

/// The standard prompt `name` and its first resource's mediaUri, as listed.
async fn media_uri(api: &Api, name: &str) -> String {
    let (_, body) = api
        .get(&format!(
            "/api/v2/architect/prompts?name={name}&includeMediaUris=true&includeResources=true"
        ))
        .await;
    body["entities"][0]["resources"][0]["mediaUri"]
        .as_str()
        .expect("a transcoded resource has a mediaUri")
        .to_string()
}

#[tokio::test]
async fn every_architect_kind_is_listed_in_pages_and_filtered_by_name() {
    let sim = start_sim(org(22)).await;
    let api = Api::new(&sim).await;
    let objects = sim.objects();
    for kind in ObjectKind::ARCHITECT {
        let all = api.all(kind.path(), 2).await;
        let names: Vec<&str> = all.iter().map(|e| e["name"].as_str().unwrap()).collect();
        let expected: Vec<&str> = objects.of_kind(kind).map(|o| o.name.as_str()).collect();
        assert_eq!(names, expected, "{kind:?}");
        let one = &expected[1];
        let (_, filtered) = api.get(&format!("{}?name={}", kind.path(), urlencode(one))).await;
        assert_eq!(filtered["total"], 1, "{kind:?} {one}: {filtered}");
        assert_eq!(filtered["entities"][0]["name"], *one);
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn architect_listings_refuse_a_page_size_over_100() {
    let sim = start_sim(org(5)).await;
    let api = Api::new(&sim).await;
    let (status, body) = api.get("/api/v2/architect/schedules?pageSize=101").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        api.get("/api/v2/architect/schedules?pageSize=100").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn prompt_audio_downloads_from_its_absolute_presigned_url_without_authorization() {
    let sim = start_sim(org(5)).await;
    let api = Api::new(&sim).await;
    let uri = media_uri(&api, "Welcome").await;
    assert!(
        uri.starts_with("http://") && uri.contains("expires=") && uri.contains("signature="),
        "{uri}"
    );
    let before = sim.stats().api_requests.load(std::sync::atomic::Ordering::Relaxed);
    let resp = reqwest::get(&uri).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(&bytes[..4], b"RIFF");
    assert!((20_000..=120_044).contains(&bytes.len()), "{}", bytes.len());
    let stats = sim.stats().to_json();
    assert_eq!(stats["audio_downloads"], 1);
    assert_eq!(
        sim.stats().api_requests.load(std::sync::atomic::Ordering::Relaxed),
        before,
        "audio is not an API request (not rate limited)"
    );
}

#[tokio::test]
async fn a_media_url_refuses_an_authorization_header() {
    let sim = start_sim(org(5)).await;
    let api = Api::new(&sim).await;
    let uri = media_uri(&api, "Welcome").await;
    let resp = api.http.get(&uri).bearer_auth(&api.token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_media_url_past_its_expiry_answers_403() {
    let sim = start_sim(with(|c| c.media_url_ttl = Duration::ZERO)).await;
    let api = Api::new(&sim).await;
    let uri = media_uri(&api, "Welcome").await;
    let resp = reqwest::get(&uri).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.text().await.unwrap().contains("expired"));
}

#[tokio::test]
async fn a_media_url_with_a_changed_expiry_answers_403() {
    let sim = start_sim(org(5)).await;
    let api = Api::new(&sim).await;
    let uri = media_uri(&api, "Welcome").await;
    let tampered = uri.replace("expires=", "expires=9");
    assert_eq!(reqwest::get(&tampered).await.unwrap().status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn prompts_carry_one_to_three_language_resources() {
    let sim = start_sim(org(5)).await;
    let api = Api::new(&sim).await;
    let prompts = api
        .all(
            "/api/v2/architect/prompts?includeMediaUris=true&includeResources=true",
            100,
        )
        .await;
    let counts: Vec<usize> = prompts
        .iter()
        .map(|p| p["resources"].as_array().unwrap().len())
        .collect();
    assert!(
        counts.iter().all(|n| (1..=3).contains(n)) && counts.contains(&3),
        "{counts:?}"
    );
    let r = &prompts[2]["resources"][1];
    for field in [
        "id",
        "promptId",
        "language",
        "mediaUri",
        "ttsString",
        "text",
        "uploadStatus",
        "uploadUri",
        "durationSeconds",
        "selfUri",
    ] {
        assert!(r.get(field).is_some(), "{field} in {r}");
    }
    let (_, fresh) = api
        .get(&format!(
            "/api/v2/architect/prompts/{}/resources/{}",
            prompts[2]["id"].as_str().unwrap(),
            r["language"].as_str().unwrap()
        ))
        .await;
    assert!(fresh["mediaUri"].as_str().unwrap().starts_with("http://"), "{fresh}");
}

#[tokio::test]
async fn a_kind_the_role_cannot_read_answers_403_naming_the_permission() {
    let sim = start_sim(with(|c| {
        c.denied_permissions.insert("routing:callRoute:view".into());
    }))
    .await;
    let api = Api::new(&sim).await;
    let (status, body) = api.get("/api/v2/architect/ivrs").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "missing.permissions");
    assert_eq!(body["messageParams"]["permissions"], "routing:callRoute:view");
    let ivr = &sim.objects().of_kind(ObjectKind::Ivr).next().unwrap().id.clone();
    assert_eq!(
        api.get(&format!("/api/v2/architect/ivrs/{ivr}")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(api.get("/api/v2/architect/schedules").await.0, StatusCode::OK);
}

#[tokio::test]
async fn reading_rows_takes_its_own_permission() {
    let sim = start_sim(with(|c| {
        c.denied_permissions.insert("architect:datatableRow:view".into());
    }))
    .await;
    let api = Api::new(&sim).await;
    let table = sim.objects().of_kind(ObjectKind::DataTable).next().unwrap().id.clone();
    assert_eq!(
        api.get("/api/v2/flows/datatables?expand=schema").await.0,
        StatusCode::OK
    );
    let (status, body) = api.get(&format!("/api/v2/flows/datatables/{table}/rows")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["messageParams"]["permissions"], "architect:datatableRow:view");
}

#[tokio::test]
async fn rows_are_keys_only_unless_showbrief_is_false() {
    let sim = start_sim(org(5)).await;
    let api = Api::new(&sim).await;
    let objects = sim.objects();
    let table = objects.named(ObjectKind::DataTable, "Branch Directory").unwrap();
    let brief = api.all(&format!("/api/v2/flows/datatables/{}/rows", table.id), 7).await;
    assert!(
        brief
            .iter()
            .all(|r| r.as_object().unwrap().len() == 1 && r["key"].is_string())
    );
    let full = api
        .all(
            &format!("/api/v2/flows/datatables/{}/rows?showbrief=false", table.id),
            7,
        )
        .await;
    assert_eq!(&full, &objects.rows[&table.id]);
    assert!(full.len() >= 5 && full[0]["city"].is_string(), "{full:?}");
    assert_eq!(
        sim.stats().row_requests(&table.id),
        (brief.len().div_ceil(7) * 2) as u64
    );
}

#[tokio::test]
async fn data_tables_serve_their_schema_with_expand_schema() {
    let sim = start_sim(org(5)).await;
    let api = Api::new(&sim).await;
    let (_, plain) = api.get("/api/v2/flows/datatables").await;
    assert!(plain["entities"][0].get("schema").is_none());
    let (_, expanded) = api.get("/api/v2/flows/datatables?expand=schema").await;
    let schema = &expanded["entities"][0]["schema"];
    assert_eq!(schema["properties"]["key"]["type"], "string");
    assert_eq!(schema["required"], json!(["key"]));
    assert_eq!(schema["additionalProperties"], false);
}

#[tokio::test]
async fn call_routes_and_groups_reference_the_orgs_objects() {
    let config = org(22);
    let sim = start_sim(config).await;
    let objects = sim.objects();
    let flows = sim.flows();
    for ivr in objects.of_kind(ObjectKind::Ivr) {
        let flow = ivr.body["openHoursFlow"]["id"].as_str().unwrap();
        assert!(flows.iter().any(|f| f.id() == flow && f.flow_type() == "INBOUNDCALL"));
        let group = ivr.body["scheduleGroup"]["id"].as_str().unwrap();
        assert!(objects.find(ObjectKind::ScheduleGroup, group).is_some());
        assert!(ivr.body["dnis"][0].as_str().unwrap().starts_with("+1317555"));
    }
    for g in objects.of_kind(ObjectKind::EmergencyGroup) {
        let call = &g.body["emergencyCallFlows"][0];
        assert!(
            flows
                .iter()
                .any(|f| Some(f.id()) == call["emergencyFlow"]["id"].as_str())
        );
        assert!(
            objects
                .find(ObjectKind::Ivr, call["ivrs"][0]["id"].as_str().unwrap())
                .is_some()
        );
    }
    for g in objects.of_kind(ObjectKind::ScheduleGroup) {
        let open = g.body["openSchedules"][0]["id"].as_str().unwrap();
        assert!(objects.find(ObjectKind::Schedule, open).is_some());
    }
}

#[tokio::test]
async fn configurations_reference_architect_objects_in_the_manifest_and_in_actions() {
    let sim = start_sim(org(22)).await;
    let objects = sim.objects();
    let mut seen = std::collections::HashSet::new();
    for f in sim.flows() {
        let config: Value = serde_json::from_str(&f.configuration_json()).unwrap();
        let actions = config["flowSequenceItemList"].to_string();
        for key in [
            "userPrompt",
            "dataTable",
            "schedule",
            "scheduleGroup",
            "emergencyGroup",
            "flowOutcome",
            "flowMilestone",
        ] {
            for e in config["manifest"][key].as_array().into_iter().flatten() {
                let kind = ObjectKind::from_manifest_key(key).unwrap();
                let id = e["id"].as_str().unwrap();
                assert_eq!(objects.find(kind, id).map(|o| o.name.as_str()), e["name"].as_str());
                assert!(actions.contains(id), "{key} {id} is used by an action");
                seen.insert(key);
            }
        }
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
}

#[tokio::test]
async fn stats_count_requests_per_architect_kind() {
    let sim = start_sim(org(5)).await;
    let api = Api::new(&sim).await;
    api.get("/api/v2/architect/schedules").await;
    api.get("/api/v2/architect/schedules").await;
    api.get("/api/v2/architect/ivrs").await;
    let stats: Value = reqwest::get(format!("{}/sim/stats", sim.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["architect_requests"]["schedules"], 2);
    assert_eq!(stats["architect_requests"]["ivrs"], 1);
}

// The write side.

#[tokio::test]
async fn an_update_with_a_stale_version_is_refused_with_409() {
    let sim = start_sim(org(5)).await;
    let api = Api::new(&sim).await;
    let schedule = sim.objects().of_kind(ObjectKind::Schedule).next().unwrap().clone();
    let path = format!("/api/v2/architect/schedules/{}", schedule.id);
    let mut body = schedule.body.clone();
    body["rrule"] = "FREQ=WEEKLY;BYDAY=MO".into();
    let (status, updated) = api.put(&path, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["version"], 2);
    let (status, _) = api.put(&path, body).await;
    assert_eq!(status, StatusCode::CONFLICT, "version 1 is stale now");
    assert_eq!(api.get(&path).await.1["rrule"], "FREQ=WEEKLY;BYDAY=MO");
}

#[tokio::test]
async fn an_ivr_with_a_dnis_another_ivr_holds_is_refused_with_400() {
    let sim = start_sim(org(22)).await;
    let api = Api::new(&sim).await;
    let taken = sim.objects().of_kind(ObjectKind::Ivr).next().unwrap().body["dnis"][0].clone();
    let (status, body) = api
        .post("/api/v2/architect/ivrs", json!({"name": "Copy Line", "dnis": [taken]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("already in use"), "{body}");
    let (status, _) = api
        .post(
            "/api/v2/architect/ivrs",
            json!({"name": "New Line", "dnis": ["+13175559999"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn references_to_objects_the_org_does_not_hold_are_refused_with_400() {
    let sim = start_sim(org(22)).await;
    let api = Api::new(&sim).await;
    let (status, _) = api
        .post(
            "/api/v2/architect/schedulegroups",
            json!({"name": "Ghost Hours", "timeZone": "UTC", "openSchedules": [{"id": "no-such-schedule"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api
        .post(
            "/api/v2/architect/ivrs",
            json!({"name": "Ghost", "dnis": [], "openHoursFlow": {"id": "no-such-flow"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_row_with_an_existing_key_is_refused_and_put_by_key_updates_it() {
    let sim = start_sim(org(5)).await;
    let api = Api::new(&sim).await;
    let table = sim
        .objects()
        .named(ObjectKind::DataTable, "VIP Numbers")
        .unwrap()
        .id
        .clone();
    let rows = format!("/api/v2/flows/datatables/{table}/rows");
    let row = json!({"key": "+15550001", "tier": 1, "agent": "Jane"});
    assert_eq!(api.post(&rows, row.clone()).await.0, StatusCode::OK);
    assert_eq!(api.post(&rows, row).await.0, StatusCode::CONFLICT);
    let changed = json!({"key": "+15550001", "tier": 2, "agent": "Sam"});
    assert_eq!(
        api.put(&format!("{rows}/%2B15550001"), changed.clone()).await.0,
        StatusCode::OK
    );
    assert_eq!(api.get(&format!("{rows}/%2B15550001")).await.1, changed);
    let (status, _) = api.post(&rows, json!({"key": "x", "unknown": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a field outside the schema");
}

/// Creates prompt `name` with one `en-us` resource; its id.
async fn new_prompt(api: &Api, name: &str) -> String {
    let (status, p) = api
        .post("/api/v2/architect/prompts", json!({"name": name, "description": "d"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    let id = p["id"].as_str().unwrap().to_string();
    let (status, r) = api
        .post(
            &format!("/api/v2/architect/prompts/{id}/resources"),
            json!({"language": "en-us", "ttsString": "hi", "text": "hi"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["uploadStatus"], "created");
    id
}

/// Uploads `bytes` through the presigned upload, as a client must: the returned headers, no auth.
async fn upload(api: &Api, id: &str, bytes: Vec<u8>) -> StatusCode {
    let (_, target) = api
        .post(
            &format!("/api/v2/architect/prompts/{id}/resources/en-us/uploads"),
            json!({}),
        )
        .await;
    let mut req = api.http.put(target["url"].as_str().unwrap()).body(bytes);
    for (k, v) in target["headers"].as_object().unwrap() {
        req = req.header(k, v.as_str().unwrap());
    }
    req.send().await.unwrap().status()
}

async fn status_after_read(api: &Api, id: &str) -> Value {
    api.get(&format!("/api/v2/architect/prompts/{id}/resources/en-us"))
        .await
        .1["uploadStatus"]
        .clone()
}

#[tokio::test]
async fn an_upload_is_uploaded_then_transcoded_after_the_configured_reads() {
    let sim = start_sim(with(|c| c.transcode_polls = 2)).await;
    let api = Api::new(&sim).await;
    let id = new_prompt(&api, "Fresh_Prompt").await;
    let wav = flowvault::sim::architect::catalogue::wav(5).to_vec();
    assert_eq!(upload(&api, &id, wav.clone()).await, StatusCode::OK);
    assert_eq!(status_after_read(&api, &id).await, "uploaded");
    assert_eq!(status_after_read(&api, &id).await, "uploaded");
    assert_eq!(status_after_read(&api, &id).await, "transcoded");
    let (_, r) = api
        .get(&format!("/api/v2/architect/prompts/{id}/resources/en-us"))
        .await;
    assert!(r["durationSeconds"].as_f64().unwrap() > 0.0);
    let served = reqwest::get(r["mediaUri"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(served.to_vec(), wav);
}

#[tokio::test]
async fn an_upload_to_a_prompt_named_to_fail_ends_transcode_failed() {
    let sim = start_sim(with(|c| {
        c.transcode_polls = 0;
        c.transcode_fail.insert("Broken_Prompt".into());
    }))
    .await;
    let api = Api::new(&sim).await;
    let id = new_prompt(&api, "Broken_Prompt").await;
    let wav = flowvault::sim::architect::catalogue::wav(5).to_vec();
    assert_eq!(upload(&api, &id, wav).await, StatusCode::OK);
    assert_eq!(status_after_read(&api, &id).await, "transcodeFailed");
}

#[tokio::test]
async fn an_upload_without_the_signed_headers_or_with_authorization_is_refused() {
    let sim = start_sim(org(5)).await;
    let api = Api::new(&sim).await;
    let id = new_prompt(&api, "Strict_Prompt").await;
    let (_, target) = api
        .post(
            &format!("/api/v2/architect/prompts/{id}/resources/en-us/uploads"),
            json!({}),
        )
        .await;
    let url = target["url"].as_str().unwrap();
    let bare = api.http.put(url).body(vec![1, 2, 3]).send().await.unwrap();
    assert_eq!(bare.status(), StatusCode::FORBIDDEN);
    let mut with_auth = api.http.put(url).bearer_auth(&api.token).body(vec![1, 2, 3]);
    for (k, v) in target["headers"].as_object().unwrap() {
        with_auth = with_auth.header(k, v.as_str().unwrap());
    }
    assert_eq!(with_auth.send().await.unwrap().status(), StatusCode::BAD_REQUEST);
    assert_eq!(status_after_read(&api, &id).await, "created");
}

#[tokio::test]
async fn a_prompt_name_architect_refuses_is_refused_with_400() {
    let sim = start_sim(org(5)).await;
    let api = Api::new(&sim).await;
    let (status, _) = api
        .post("/api/v2/architect/prompts", json!({"name": "Has Spaces"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_created_outcome_is_accepted_and_listed_only_later() {
    let sim = start_sim(with(|c| c.outcome_visibility_delay = Duration::from_secs(2))).await;
    let api = Api::new(&sim).await;
    let (status, created) = api
        .post("/api/v2/flows/outcomes", json!({"name": "Late Outcome"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let listed = |body: Value| body["total"] == 1;
    assert!(!listed(api.get("/api/v2/flows/outcomes?name=Late%20Outcome").await.1));
    let mut seen = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if listed(api.get("/api/v2/flows/outcomes?name=Late%20Outcome").await.1) {
            seen = true;
            break;
        }
    }
    assert!(seen, "the outcome {} shows up", created["id"]);
}

#[tokio::test]
async fn an_object_write_fault_commits_the_write_then_answers_its_status() {
    let sim = start_sim(with(|c| {
        c.object_write_faults = vec!["schedules:503".parse::<ObjectWriteFault>().unwrap()]
    }))
    .await;
    let api = Api::new(&sim).await;
    let body = json!({"name": "Fault Hours", "start": "2026-01-05T08:00:00.000", "end": "2026-01-05T09:00:00.000", "rrule": "FREQ=DAILY"});
    let (status, _) = api.post("/api/v2/architect/schedules", body.clone()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        sim.objects().named(ObjectKind::Schedule, "Fault Hours").is_some(),
        "the write happened"
    );
    let (status, _) = api.post("/api/v2/architect/schedules", body).await;
    assert_eq!(status, StatusCode::CONFLICT, "a blind resend finds the name taken");
}

#[tokio::test]
async fn publishing_a_flow_whose_schedule_group_is_gone_fails_with_missing_dependencies() {
    let sim = start_sim(with(|c| c.operation_delay = Duration::from_millis(20))).await;
    let api = Api::new(&sim).await;
    let flow = sim
        .flows()
        .into_iter()
        .find(|f| f.flow_type() == "INBOUNDCALL")
        .unwrap();
    let config: Value = serde_json::from_str(&flow.configuration_json()).unwrap();
    let group = config["manifest"]["scheduleGroup"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(sim.delete_object(ObjectKind::ScheduleGroup, &group));
    let id = flow.id();
    assert_eq!(
        api.post(&format!("/api/v2/flows/actions/checkout?flow={id}"), json!({}))
            .await
            .0,
        StatusCode::OK
    );
    let (_, op) = api
        .post(&format!("/api/v2/flows/actions/publish?flow={id}"), json!({}))
        .await;
    let mut outcome = Value::Null;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let current = api.get(&format!("/api/v2/flows/{id}")).await.1["currentOperation"].clone();
        if current["id"] == op["id"] && current["complete"] == true {
            outcome = current;
            break;
        }
    }
    assert_eq!(outcome["actionStatus"], "FAILURE", "{outcome}");
    assert_eq!(outcome["errorCode"], MISSING_DEPENDENCIES);
}

#[tokio::test]
async fn an_org_without_architect_objects_serves_empty_listings_and_takes_creates() {
    let mut config = SimConfig::with_flows(Vec::new(), CLIENT_ID, CLIENT_SECRET);
    config.objects = SimObjects::rebuilt_without_architect(3);
    let sim = start_sim(config).await;
    let api = Api::new(&sim).await;
    for kind in ObjectKind::ARCHITECT {
        assert_eq!(api.get(kind.path()).await.1["total"], 0, "{kind:?}");
    }
    assert!(api.get("/api/v2/routing/queues").await.1["total"].as_u64().unwrap() > 0);
    let (status, s) = api
        .post("/api/v2/architect/schedules", json!({"name": "Weekdays 8-18", "start": "2026-01-05T08:00:00.000", "end": "2026-01-05T18:00:00.000", "rrule": "FREQ=WEEKLY"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api
        .post("/api/v2/architect/schedulegroups", json!({"name": "Main Office Hours", "timeZone": "UTC", "openSchedules": [{"id": s["id"], "name": "Weekdays 8-18"}]}))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_deleted_schedule_is_gone_and_outcomes_cannot_be_deleted() {
    let sim = start_sim(org(5)).await;
    let api = Api::new(&sim).await;
    let objects = sim.objects();
    let schedule = objects.of_kind(ObjectKind::Schedule).next().unwrap();
    let path = format!("/api/v2/architect/schedules/{}", schedule.id);
    assert_eq!(api.call(Method::DELETE, &path, None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(api.get(&path).await.0, StatusCode::NOT_FOUND);
    let outcome = objects.of_kind(ObjectKind::FlowOutcome).next().unwrap();
    let path = format!("/api/v2/flows/outcomes/{}", outcome.id);
    assert_eq!(
        api.call(Method::DELETE, &path, None).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(api.get(&path).await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_object_in_a_division_the_role_cannot_see_is_neither_listed_nor_read() {
    let sim = start_sim(with(|c| {
        c.hidden_objects = vec![(ObjectKind::ScheduleGroup, "Support Hours".into())]
    }))
    .await;
    let api = Api::new(&sim).await;
    let names: Vec<String> = api
        .all("/api/v2/architect/schedulegroups", 100)
        .await
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect();
    assert!(!names.contains(&"Support Hours".to_string()) && names.contains(&"Main Office Hours".to_string()));
    let id = sim
        .objects()
        .named(ObjectKind::ScheduleGroup, "Support Hours")
        .unwrap()
        .id
        .clone();
    assert_eq!(
        api.get(&format!("/api/v2/architect/schedulegroups/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_single_data_table_read_carries_its_schema_only_with_expand_schema() {
    let sim = start_sim(org(5)).await;
    let api = Api::new(&sim).await;
    let id = sim.objects().of_kind(ObjectKind::DataTable).next().unwrap().id.clone();
    assert!(
        api.get(&format!("/api/v2/flows/datatables/{id}"))
            .await
            .1
            .get("schema")
            .is_none()
    );
    let (_, t) = api.get(&format!("/api/v2/flows/datatables/{id}?expand=schema")).await;
    assert_eq!(t["schema"]["required"], json!(["key"]));
}
