//! Issue 26, the export side: the Architect objects flows stand on (prompts with their audio,
//! data tables with their rows, schedules, schedule groups, emergency groups, IVRs, outcomes,
//! milestones) exported beside the flows by the real binary against the simulated org over HTTP,
//! into local directories and S3 servers, in both formats; verified; a kind the role cannot
//! read; an incremental run after one data table changed.

use std::collections::BTreeMap;

use flowvault::document::{ObjectDocument, RowsDocument};
use flowvault::manifest::{Content, Manifest, ObjectRecord, Outcome, Source};
use flowvault::sim::{SimConfig, SimServer};
use serde_json::{Value, json};

use crate::support::targets::{ALL_TARGETS, Place, Target};
use crate::support::*;

const KINDS: [&str; 8] = [
    "schedules",
    "schedulegroups",
    "prompts",
    "datatables",
    "outcomes",
    "milestones",
    "emergencygroups",
    "ivrs",
];

fn objects_of<'a>(m: &'a Manifest, kind: &str) -> Vec<&'a ObjectRecord> {
    m.objects.iter().filter(|o| o.kind == kind).collect()
}

/// A token for the test client, to change the simulated org as a user of the API would.
async fn token(sim: &SimServer) -> String {
    flowvault::tls::init();
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/oauth/token", sim.url()))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().unwrap().to_string()
}

/// Sends one API request to the simulated org; the answer's status and body.
async fn api(sim: &SimServer, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let token = token(sim).await;
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", sim.url()))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let resp = request.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// `archive` with the member `path`'s byte at `at` flipped.
fn flip_member(archive: &[u8], path: &str, at: usize) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (name, mut body) in read_tar_gz(archive) {
        if name == path {
            body[at] ^= 0x01;
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, &name, body.as_slice()).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// Flips one byte of the stored document `path` of run `id`, whatever the format.
async fn flip_stored_byte(place: &Place, id: &str, path: &str) {
    if place.format == "tar-gz" {
        let archive = place.read(&format!("{id}/flows.tar.gz")).await;
        place
            .write(&format!("{id}/flows.tar.gz"), flip_member(&archive, path, 100))
            .await;
    } else {
        let mut body = place.read(&format!("{id}/{path}")).await;
        body[100] ^= 0x01;
        place.write(&format!("{id}/{path}"), body).await;
    }
}

/// Checks that every kind was read and stored as the contract says.
fn assert_every_kind_stored(m: &Manifest, documents: &BTreeMap<String, Vec<u8>>, case: &str) {
    let section = m.architect.as_ref().expect("an architect section");
    let reported: Vec<&str> = section.kinds.iter().map(|k| k.kind.as_str()).collect();
    assert_eq!(reported, KINDS, "{case}: every kind, in restore order");
    for k in &section.kinds {
        assert!(k.checked, "{case}: {} checked", k.kind);
        assert!(k.listed > 0 && k.exported == k.listed, "{case}: {k:?}");
        assert!(k.requests > 0, "{case}: {k:?}");
    }
    for o in &m.objects {
        assert_eq!(o.outcome, Outcome::Exported, "{case}: {o:?}");
        let doc = o.document(Content::Object).expect("an object document");
        assert!(
            doc.path.starts_with(&format!("architect/{}/", o.kind)),
            "{case}: {}",
            doc.path
        );
        let body = &documents[&doc.path];
        let parsed = ObjectDocument::parse(body).unwrap();
        assert_eq!(parsed.kind, o.kind);
        assert_eq!(parsed.value().unwrap()["id"], o.id.as_str(), "{case}");
    }
    let tables = objects_of(m, "datatables");
    let with_fields = tables.iter().any(|t| {
        let rows = &documents[&t.document(Content::Rows).expect("a rows document").path];
        let rows = RowsDocument::parse(rows).unwrap();
        assert_eq!(rows.table.id, t.id);
        rows.rows.iter().any(|r| {
            let row: Value = serde_json::from_str(r.get()).unwrap();
            row.as_object().is_some_and(|f| f.len() > 1)
        })
    });
    assert!(
        with_fields,
        "{case}: rows are stored with every field (showbrief=false)"
    );
    let audio: Vec<_> = objects_of(m, "prompts")
        .into_iter()
        .flat_map(|p| p.documents.iter().filter(|d| d.holds(Content::Audio)))
        .collect();
    assert!(!audio.is_empty(), "{case}: prompts' audio is stored");
    for a in audio {
        assert!(
            a.path.ends_with(&format!(".{}.wav", a.language.as_deref().unwrap())),
            "{}",
            a.path
        );
        assert_eq!(
            &documents[&a.path][..4],
            b"RIFF",
            "{case}: {} is the WAV as served",
            a.path
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_is_exported_and_verifies_and_a_flipped_audio_byte_is_named_with_its_prompt() {
    for target in ALL_TARGETS {
        let case = format!("{target:?}");
        let sim = start_sim(org(6)).await;
        let place = Place::new(target).await;
        let run = place.export_read(&sim, "r1", &[]).await;
        assert_eq!(run.code, Some(0), "{case}: {}", run.text);
        assert!(run.manifest.complete, "{case}");
        assert_eq!(run.manifest.totals.exported, 6, "{case}: the flows too");
        assert_every_kind_stored(&run.manifest, &run.documents, &case);
        let verified = place.flowvault(&["verify", &place.run("r1")]).await;
        assert_eq!(verified.status.code(), Some(0), "{case}: {}", all_output(&verified));

        let prompt = objects_of(&run.manifest, "prompts")
            .into_iter()
            .find(|p| p.documents.iter().any(|d| d.holds(Content::Audio)))
            .unwrap()
            .clone();
        let audio = prompt.documents.iter().find(|d| d.holds(Content::Audio)).unwrap();
        flip_stored_byte(&place, "r1", &audio.path).await;
        let damaged = place.flowvault(&["verify", &place.run("r1")]).await;
        let text = all_output(&damaged);
        assert_eq!(damaged.status.code(), Some(3), "{case}: {text}");
        let line = text
            .lines()
            .find(|l| l.starts_with("PROBLEM") && l.contains(&audio.path))
            .unwrap_or_else(|| panic!("{case}: the audio file is named: {text}"));
        assert!(
            line.contains(&prompt.name) && line.contains(&prompt.id),
            "{case}: {line}"
        );
        assert!(line.contains("SHA-256 differs"), "{case}: {line}");
        assert_eq!(
            text.lines().filter(|l| l.starts_with("PROBLEM")).count(),
            1,
            "{case}: only that file: {text}"
        );
    }
}

fn denying(permission: &str) -> SimConfig {
    let mut config = org(4);
    config.denied_permissions.insert(permission.to_string());
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_the_role_cannot_read_is_a_warning_and_a_note_and_the_run_is_complete() {
    for target in [Target::LocalTarGz, Target::SeaweedObjects] {
        let case = format!("{target:?}");
        let sim = start_sim(denying("routing:callRoute:view")).await;
        let place = Place::new(target).await;
        let run = place.export_read(&sim, "r", &[]).await;
        assert_eq!(run.code, Some(0), "{case}: {}", run.text);
        let m = &run.manifest;
        assert!(m.complete && m.incomplete_reason.is_none(), "{case}");
        let kinds = &m.architect.as_ref().unwrap().kinds;
        let ivrs = kinds.iter().find(|k| k.kind == "ivrs").unwrap();
        assert!(!ivrs.checked, "{case}");
        assert!(
            ivrs.note
                .as_deref()
                .unwrap_or_default()
                .contains("routing:callRoute:view"),
            "{case}: {ivrs:?}"
        );
        assert!(objects_of(m, "ivrs").is_empty(), "{case}");
        assert!(
            kinds
                .iter()
                .filter(|k| k.kind != "ivrs")
                .all(|k| k.checked && k.exported > 0),
            "{case}: {kinds:?}"
        );
        assert!(
            run.text
                .lines()
                .any(|l| l.contains("WARN") && l.contains("ivrs") && l.contains("routing:callRoute:view")),
            "{case}: one warning: {}",
            run.text
        );
        let verified = place.flowvault(&["verify", &place.run("r")]).await;
        assert_eq!(verified.status.code(), Some(0), "{case}: {}", all_output(&verified));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_named_in_kinds_that_the_role_cannot_read_makes_the_run_incomplete_naming_the_permission() {
    for target in [Target::LocalObjects, Target::MotoTarGz] {
        let case = format!("{target:?}");
        let sim = start_sim(denying("routing:callRoute:view")).await;
        let place = Place::new(target).await;
        let run = place.export_read(&sim, "r", &["--kinds", "ivrs,flows"]).await;
        assert_eq!(run.code, Some(3), "{case}: {}", run.text);
        let m = &run.manifest;
        assert!(!m.complete, "{case}");
        let reason = m.incomplete_reason.as_deref().unwrap_or_default();
        assert!(reason.contains("routing:callRoute:view"), "{case}: {reason}");
        assert_eq!(m.totals.exported, 4, "{case}: the flows are still exported");
        let kinds: Vec<&str> = m
            .architect
            .as_ref()
            .unwrap()
            .kinds
            .iter()
            .map(|k| k.kind.as_str())
            .collect();
        assert_eq!(kinds, ["ivrs"], "{case}: only the kinds named");
        assert!(run.text.contains("routing:callRoute:view"), "{case}: {}", run.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinds_flows_is_todays_run_without_a_single_architect_request() {
    let sim = start_sim(org(4)).await;
    let place = Place::new(Target::LocalObjects).await;
    let run = place.export_read(&sim, "r", &["--kinds", "flows"]).await;
    assert_eq!(run.code, Some(0), "{}", run.text);
    assert!(run.manifest.architect.is_none() && run.manifest.objects.is_empty());
    assert!(
        run.documents.keys().all(|p| p.starts_with("flows/")),
        "{:?}",
        run.documents.keys()
    );
    let stats = sim.stats().to_json();
    let architect: u64 = KINDS
        .iter()
        .chain(["datatables.rows"].iter())
        .map(|k| sim.stats().architect_requests(k))
        .sum();
    assert_eq!(architect, 0, "{stats}");
    assert_eq!(stats["audio_downloads"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audio_url_that_keeps_expiring_fails_its_prompt_by_name_after_bounded_retries() {
    let mut config = org(2);
    config.media_url_ttl = std::time::Duration::ZERO;
    let sim = start_sim(config).await;
    let place = Place::new(Target::LocalObjects).await;
    let run = place.export_read(&sim, "r", &["--kinds", "prompts,flows"]).await;
    assert_eq!(run.code, Some(3), "{}", run.text);
    let prompts = objects_of(&run.manifest, "prompts");
    let failed: Vec<_> = prompts.iter().filter(|p| p.outcome == Outcome::Failed).collect();
    assert!(!failed.is_empty());
    let error = failed[0].error.as_deref().unwrap();
    assert!(error.contains(&failed[0].name) && error.contains("fresh"), "{error}");
    assert!(!run.text.contains("signature="), "no presigned query in any message");
}

/// The stored documents of every object, by path, with their SHA-256.
fn object_hashes(m: &Manifest) -> BTreeMap<String, String> {
    m.object_documents()
        .map(|(_, d)| (d.path.clone(), d.sha256.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_run_after_one_table_changed_reads_only_that_tables_rows_and_stores_what_a_full_run_does() {
    for target in [Target::LocalTarGz, Target::SeaweedObjects] {
        let case = format!("{target:?}");
        let sim = start_sim(org(4)).await;
        let place = Place::new(target).await;
        let first = place.export_read(&sim, "r1", &[]).await;
        assert_eq!(first.code, Some(0), "{case}: {}", first.text);
        let tables = objects_of(&first.manifest, "datatables");
        assert!(tables.len() >= 2, "{case}: the org has several tables");
        let changed = tables[0].id.clone();
        let (status, mut table) = api(
            &sim,
            reqwest::Method::GET,
            &format!("/api/v2/flows/datatables/{changed}?expand=schema"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{case}");
        table["description"] = json!("edited between the runs");
        let put = api(
            &sim,
            reqwest::Method::PUT,
            &format!("/api/v2/flows/datatables/{changed}"),
            Some(table),
        )
        .await;
        assert_eq!(put.0, 200, "{case}: {:?}", put.1);
        let added = api(
            &sim,
            reqwest::Method::POST,
            &format!("/api/v2/flows/datatables/{changed}/rows"),
            Some(json!({"key": "added-between-runs"})),
        )
        .await;
        assert!(added.0 < 300, "{case}: {:?}", added.1);
        let before: BTreeMap<String, u64> = tables
            .iter()
            .map(|t| (t.id.clone(), sim.stats().row_requests(&t.id)))
            .collect();
        let audio_before = sim.stats().audio_downloads.load(std::sync::atomic::Ordering::SeqCst);

        let second = place.export_read(&sim, "r2", &["--since", "r1"]).await;
        assert_eq!(second.code, Some(0), "{case}: {}", second.text);
        for t in &tables {
            let asked = sim.stats().row_requests(&t.id) - before[&t.id];
            if t.id == changed {
                assert!(asked > 0, "{case}: the changed table's rows are read");
            } else {
                assert_eq!(asked, 0, "{case}: table {} is carried", t.name);
            }
        }
        let audio_after = sim.stats().audio_downloads.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(audio_after, audio_before, "{case}: no audio downloaded again");
        let m = &second.manifest;
        for o in &m.objects {
            let expected = if o.id == changed {
                Source::Fetched
            } else {
                Source::Carried
            };
            assert_eq!(o.source, Some(expected), "{case}: {} {}", o.kind, o.name);
        }
        let rows = objects_of(m, "datatables")
            .into_iter()
            .find(|t| t.id == changed)
            .and_then(|t| t.document(Content::Rows))
            .unwrap();
        let rows = RowsDocument::parse(&second.documents[&rows.path]).unwrap();
        assert!(
            rows.rows.iter().any(|r| r.get().contains("added-between-runs")),
            "{case}: the added row is stored"
        );
        let verified = place.flowvault(&["verify", &place.run("r2")]).await;
        assert_eq!(verified.status.code(), Some(0), "{case}: {}", all_output(&verified));

        let full = place.export_read(&sim, "r3", &[]).await;
        assert_eq!(full.code, Some(0), "{case}: {}", full.text);
        assert_eq!(
            object_hashes(m),
            object_hashes(&full.manifest),
            "{case}: what a full run stores"
        );
    }
}

/// A store over a local directory that refuses the documents `bad` picks.
struct Refusing {
    inner: flowvault::sink::local::LocalStore,
    bad: Box<dyn Fn(&str) -> bool + Send + Sync>,
}

#[async_trait::async_trait]
impl flowvault::sink::RunStore for Refusing {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn put(&self, name: &str, bytes: bytes::Bytes, content_type: &str) -> Result<(), flowvault::sink::SinkError> {
        if (self.bad)(name) {
            return Err(flowvault::sink::SinkError::Store {
                message: format!("the store refused {name}"),
                retryable: false,
            });
        }
        self.inner.put(name, bytes, content_type).await
    }

    async fn create_upload(
        &self,
        name: &str,
        content_type: &str,
    ) -> Result<Box<dyn flowvault::sink::Upload>, flowvault::sink::SinkError> {
        self.inner.create_upload(name, content_type).await
    }

    async fn remove(&self, name: &str) -> Result<(), flowvault::sink::SinkError> {
        self.inner.remove(name).await
    }

    async fn copy(
        &self,
        name: &str,
        from: &flowvault::sink::CopySource,
        sha256: &str,
    ) -> Result<(), flowvault::sink::SinkError> {
        self.inner.copy(name, from, sha256).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audio_file_the_store_refuses_fails_its_own_prompt_row_before_the_manifest_is_sealed() {
    use flowvault::export::{self, Ending, ExportOptions, StopSignal};
    let sim = start_sim(org(3)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut inner = flowvault::sink::local::LocalStore::open(dir.path(), "r").await.unwrap();
    inner.claim().await.unwrap();
    let store = Refusing {
        inner,
        bad: Box::new(|name| name.contains("/Welcome--") && name.ends_with(".en-us.wav")),
    };
    let url = url::Url::parse(sim.url()).unwrap();
    let client = std::sync::Arc::new(
        flowvault::genesys::GenesysClient::connect(flowvault::genesys::ClientConfig {
            api_url: url.clone(),
            login_url: url,
            client_id: CLIENT_ID.into(),
            client_secret: flowvault::secret::Secret::new(CLIENT_SECRET),
            rate_per_second: None,
            concurrency: 4,
            retry: flowvault::genesys::RetryConfig::default(),
        })
        .unwrap(),
    );
    client.authenticate().await.unwrap();
    let sink = flowvault::sink::with_format(std::sync::Arc::new(store), flowvault::sink::Format::Objects, 2);
    let options = ExportOptions {
        run_id: "r".into(),
        format: flowvault::sink::Format::Objects,
        destination: "local".into(),
        region: None,
        type_filter: Vec::new(),
        page_size: 100,
        max_list_passes: 5,
        concurrency: 4,
        shutdown_grace: std::time::Duration::from_secs(1),
        content: export::ContentMode::Both,
        kinds: flowvault::architect::KindSelection::all(),
        yaml: None,
        organization: None,
        progress: None,
        since: None,
    };
    let report = export::run(client, sink, options, StopSignal::default()).await;
    assert!(matches!(report.ending, Ending::Incomplete(_)), "{:?}", report.ending);
    let m = read_manifest(&dir.path().join("r"));
    assert!(!m.complete);
    let welcome = m
        .objects
        .iter()
        .find(|o| o.kind == "prompts" && o.name == "Welcome")
        .unwrap();
    assert_eq!(welcome.outcome, Outcome::Failed, "{welcome:?}");
    assert!(welcome.audio("en-us").is_none(), "the refused file is not claimed");
    assert!(welcome.error.as_deref().unwrap().contains(".en-us.wav"), "{welcome:?}");
    assert!(welcome.document(Content::Object).is_some(), "its other documents stay");
    let others = m.objects.iter().filter(|o| o.id != welcome.id);
    assert!(others.clone().all(|o| o.outcome == Outcome::Exported));
    let prompts = m
        .architect
        .as_ref()
        .unwrap()
        .kinds
        .iter()
        .find(|k| k.kind == "prompts")
        .unwrap();
    assert_eq!(prompts.failed, 1, "{prompts:?}");
    assert_eq!(m.totals.failed, 0, "the flows are unaffected");
    for (_, doc) in m.object_documents() {
        let bytes = std::fs::read(dir.path().join("r").join(&doc.path)).unwrap();
        assert_eq!(sha256_hex(&bytes), doc.sha256, "{}", doc.path);
    }
}
