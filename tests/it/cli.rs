//! Bad input, table-driven: each case is run as a user runs the binary and must end with the
//! documented exit code, one clear line naming the setting, and no secret anywhere in the output.

use crate::support;

use std::ffi::OsString;

use support::*;

struct Case {
    name: &'static str,
    args: Vec<OsString>,
    env: Vec<(&'static str, String)>,
    code: i32,
    says: &'static str,
}

fn case(name: &'static str, args: &[&str], env: &[(&'static str, &str)], code: i32, says: &'static str) -> Case {
    Case {
        name,
        args: args.iter().map(OsString::from).collect(),
        env: env.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        code,
        says,
    }
}

const ID: (&str, &str) = ("GENESYSCLOUD_OAUTHCLIENT_ID", CLIENT_ID);
const SECRET: (&str, &str) = ("GENESYSCLOUD_OAUTHCLIENT_SECRET", CLIENT_SECRET);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_one_clear_line_and_the_documented_exit_code() {
    let sim = start_sim(org(2)).await;
    let scratch = tempfile::tempdir().unwrap();
    let a_file = scratch.path().join("a-file");
    std::fs::write(&a_file, "x").unwrap();
    let empty_file = scratch.path().join("empty");
    std::fs::write(&empty_file, "\n").unwrap();
    let to = scratch.path().join("out").to_string_lossy().into_owned();
    let dead_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = format!("http://127.0.0.1:{dead_port}");
    let url = sim.url().to_string();
    let both = [ID, SECRET];
    let with_api = |extra: &[&str]| -> Vec<String> {
        let mut v = vec![
            "export".to_string(),
            "--api-url".into(),
            url.clone(),
            "--to".into(),
            to.clone(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let owned =
        |v: Vec<String>| -> Vec<&'static str> { v.into_iter().map(|s| &*Box::leak(s.into_boxed_str())).collect() };
    let a = |extra: &[&str]| owned(with_api(extra));

    let mut cases = vec![
        case(
            "missing client id",
            &a(&[]),
            &[SECRET],
            2,
            "missing client id: set GENESYSCLOUD_OAUTHCLIENT_ID",
        ),
        case(
            "missing secret",
            &a(&[]),
            &[ID],
            2,
            "missing client secret: set GENESYSCLOUD_OAUTHCLIENT_SECRET",
        ),
        case(
            "empty secret file",
            &a(&[]),
            &[
                ID,
                ("GENESYSCLOUD_OAUTHCLIENT_SECRET_FILE", empty_file.to_str().unwrap()),
            ],
            2,
            "is empty",
        ),
        case(
            "secret file missing",
            &a(&[]),
            &[ID, ("GENESYSCLOUD_OAUTHCLIENT_SECRET_FILE", "/nonexistent/secret")],
            2,
            "GENESYSCLOUD_OAUTHCLIENT_SECRET_FILE: cannot read /nonexistent/secret (no such file)",
        ),
        case(
            "secret flag file missing",
            &a(&["--client-secret-file", "/nonexistent/s"]),
            &[ID],
            2,
            "--client-secret-file: cannot read",
        ),
        case(
            "secret file is a directory",
            &a(&["--client-secret-file", "/tmp"]),
            &[ID],
            2,
            "--client-secret-file: cannot read /tmp",
        ),
        case(
            "client id file missing",
            &a(&["--client-id-file", "/nonexistent/id"]),
            &[SECRET],
            2,
            "--client-id-file: cannot read",
        ),
        case(
            "unknown region",
            &["export", "--region", "mars-north-1", "--to", &to],
            &both,
            2,
            "unknown Genesys Cloud region `mars-north-1`",
        ),
        case(
            "unknown region from env",
            &["export", "--to", &to],
            &[ID, SECRET, ("GENESYSCLOUD_REGION", "atlantis")],
            2,
            "GENESYSCLOUD_REGION",
        ),
        case(
            "malformed api url",
            &["export", "--api-url", "not a url", "--to", &to],
            &both,
            2,
            "--api-url / FLOWVAULT_API_URL `not a url` is not a valid URL",
        ),
        case(
            "api url with other scheme",
            &["export", "--api-url", "ftp://api.mypurecloud.com", "--to", &to],
            &both,
            2,
            "use https://",
        ),
        case(
            "plain http to a remote host",
            &["export", "--api-url", "http://api.example.com", "--to", &to],
            &both,
            2,
            "--allow-insecure-http",
        ),
        case(
            "credentials in the api url",
            &["export", "--api-url", "https://u:p@api.example.com", "--to", &to],
            &both,
            2,
            "must not carry credentials",
        ),
        case(
            "malformed login url",
            &a(&["--login-url", "::"]),
            &both,
            2,
            "--login-url / FLOWVAULT_LOGIN_URL",
        ),
        case(
            "s3 without bucket",
            &["export", "--to", "s3://"],
            &both,
            2,
            "bucket name is missing",
        ),
        case(
            "s3 bucket with capitals",
            &["export", "--to", "s3://Bad_Bucket/x"],
            &both,
            2,
            "may hold only lowercase letters",
        ),
        case(
            "s3 bucket too short",
            &["export", "--to", "s3://ab"],
            &both,
            2,
            "3 to 63 characters",
        ),
        case(
            "s3 prefix traversal",
            &["export", "--to", "s3://bucket-ok/../x"],
            &both,
            2,
            "must not contain `.` or `..`",
        ),
        case(
            "unsupported scheme",
            &["export", "--to", "gs://bucket"],
            &both,
            2,
            "unsupported scheme `gs://`",
        ),
        case(
            "empty destination",
            &["export", "--to", ""],
            &both,
            2,
            "--to / FLOWVAULT_TO: invalid destination",
        ),
        case(
            "zero concurrency",
            &a(&["--concurrency", "0"]),
            &both,
            2,
            "--concurrency / FLOWVAULT_CONCURRENCY must be at least 1",
        ),
        case(
            "negative concurrency",
            &a(&["--concurrency", "-1"]),
            &both,
            2,
            "--concurrency",
        ),
        case(
            "absurd concurrency",
            &a(&["--concurrency", "100000"]),
            &both,
            2,
            "is too high",
        ),
        case(
            "part size below S3's minimum",
            &a(&["--part-size", "1MiB"]),
            &both,
            2,
            "outside S3's limits",
        ),
        case(
            "negative part size",
            &a(&["--part-size", "-5"]),
            &both,
            2,
            "is not a size",
        ),
        case(
            "absurd part size",
            &a(&["--part-size", "999GiB"]),
            &both,
            2,
            "outside S3's limits",
        ),
        case(
            "unknown type",
            &a(&["--type", "pizza"]),
            &both,
            2,
            "--type `pizza` is not a flow type",
        ),
        case(
            "unfilterable type",
            &a(&["--type", "businessprocess"]),
            &both,
            2,
            "run without --type",
        ),
        case(
            "rate without unit",
            &a(&["--rate-limit", "300"]),
            &both,
            2,
            "--rate-limit / FLOWVAULT_RATE_LIMIT `300` has no unit",
        ),
        case("unknown format", &a(&["--format", "zip"]), &both, 2, "--format"),
        case(
            "run id with traversal",
            &a(&["--run-id", "../x"]),
            &both,
            2,
            "--run-id `../x`",
        ),
        case(
            "kms key without kms",
            &["export", "--to", "s3://bucket-ok", "--sse-kms-key-id", "k"],
            &both,
            2,
            "--sse-kms-key-id needs --sse aws:kms",
        ),
        case(
            "unknown sse",
            &["export", "--to", "s3://bucket-ok", "--sse", "DES"],
            &both,
            2,
            "--sse `DES` is not supported",
        ),
        case(
            "sse on a local destination",
            &a(&["--sse", "AES256"]),
            &both,
            2,
            "apply only to s3://",
        ),
        case(
            "zero request timeout",
            &a(&["--request-timeout", "0s"]),
            &both,
            2,
            "--request-timeout must be more than 0s",
        ),
        case(
            "duration with unknown unit",
            &a(&["--max-duration", "5x"]),
            &both,
            2,
            "--max-duration `5x` has unknown unit",
        ),
        case("zero page size", &a(&["--page-size", "0"]), &both, 2, "--page-size 0"),
        case(
            "--since of another scheme",
            &a(&["--since", "gs://bucket/run"]),
            &both,
            2,
            "--since: invalid destination `gs://bucket/run`: unsupported scheme",
        ),
        case(
            "--full-every not a duration",
            &a(&["--since", "latest", "--full-every", "weekly"]),
            &both,
            2,
            "--full-every `weekly` is not a duration",
        ),
        case(
            "malformed s3 endpoint",
            &["export", "--to", "s3://bucket-ok", "--s3-endpoint", "nope"],
            &both,
            2,
            "--s3-endpoint `nope` is not a valid URL",
        ),
        case("unknown flag", &a(&["--frobnicate"]), &both, 2, "--frobnicate"),
        case(
            "destination is a file",
            &["export", "--api-url", &url, "--to", a_file.to_str().unwrap()],
            &both,
            1,
            "is a file, not a directory",
        ),
        case(
            "destination cannot be created",
            &["export", "--api-url", &url, "--to", "/proc/flowvault-cannot-write"],
            &both,
            1,
            "cannot create the destination directory /proc/flowvault-cannot-write",
        ),
        case(
            "wrong secret",
            &a(&[]),
            &[ID, ("GENESYSCLOUD_OAUTHCLIENT_SECRET", "wrong-secret")],
            1,
            "rejected the OAuth client credentials",
        ),
        case(
            "unknown client id",
            &a(&[]),
            &[("GENESYSCLOUD_OAUTHCLIENT_ID", "nobody"), SECRET],
            1,
            "HTTP 400: client not found",
        ),
        case(
            "unreachable API",
            &["export", "--api-url", &dead, "--to", &to, "--max-retries", "1"],
            &both,
            1,
            "could not get an OAuth token",
        ),
        case(
            "tutorial variable names",
            &a(&["--run-id", "tutorial"]),
            &[("PURECLOUD_CLIENT_ID", CLIENT_ID), ("PURECLOUD_CLIENT_SECRET", "wrong")],
            1,
            "rejected the OAuth client credentials",
        ),
    ];
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        cases.push(Case {
            name: "non-UTF-8 destination",
            args: vec![
                "export".into(),
                "--to".into(),
                OsString::from_vec(vec![b'o', 0xff, b'x']),
            ],
            env: both.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            code: 2,
            says: "invalid UTF-8",
        });
    }
    assert!(cases.len() >= 30);

    for c in &cases {
        let mut cmd = flowvault();
        cmd.args(&c.args).args(
            ["--max-backoff", "50ms"]
                .iter()
                .filter(|_| c.args.first().is_some_and(|a| a == "export")),
        );
        for (k, v) in &c.env {
            cmd.env(k, v);
        }
        let out = run(&mut cmd).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(c.code),
            "case `{}`: {}",
            c.name,
            all_output(&out)
        );
        assert!(
            stderr.contains(c.says),
            "case `{}` should say `{}`; stderr was:\n{stderr}",
            c.name,
            c.says
        );
        assert_no_secrets(&all_output(&out), &sim);
        if c.code == 2 && !stderr.starts_with("error:") {
            assert_eq!(
                stderr.trim_end().lines().count(),
                1,
                "case `{}`: one line, got:\n{stderr}",
                c.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_can_come_from_a_file_and_the_tutorial_variables() {
    let sim = start_sim(org(3)).await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{CLIENT_SECRET}\n")).unwrap();
    let out = run(flowvault()
        .args(["export", "--api-url", sim.url(), "--rate-limit", "off", "--run-id", "f"])
        .arg("--to")
        .arg(dir.path())
        .arg("--client-secret-file")
        .arg(&secret_file)
        .env("PURECLOUD_CLIENT_ID", CLIENT_ID))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert_no_secrets(&all_output(&out), &sim);
    let manifest = std::fs::read_to_string(dir.path().join("f/manifest.json")).unwrap();
    assert_no_secrets(&manifest, &sim);
}

#[tokio::test]
async fn help_lists_the_commands_and_the_settings() {
    let out = run(flowvault().arg("--help")).await;
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["export", "sim", "demo"] {
        assert!(text.contains(word), "{text}");
    }
    let out = run(flowvault().args(["export", "--help"])).await;
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--client-secret-file",
        "--region",
        "--to",
        "--format",
        "--rate-limit",
        "--type",
        "FLOWVAULT_API_URL",
    ] {
        assert!(text.contains(word), "missing {word} in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_exports_the_built_in_org_with_the_real_code() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(flowvault().args(["demo", "--flows", "30", "--to"]).arg(dir.path())).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("complete: 30 listed, 29 exported, 1 not found"),
        "{stdout}"
    );
    let run_dir = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
    let manifest = read_manifest(&run_dir);
    assert!(manifest.complete);
    assert_archive_matches_manifest(&std::fs::read(run_dir.join("flows.tar.gz")).unwrap(), &manifest);
    let drafts = manifest.flows.iter().filter(|r| r.documents.len() == 2).count();
    assert!(
        drafts > 0,
        "the demo org has flows with unpublished drafts, stored twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_the_flow_id_on_retries() {
    let mut config = org(4);
    let id = config.flows[0].id().to_string();
    config.flaky.insert(id.clone(), 1);
    let sim = start_sim(config).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(export_cmd(&sim, dir.path(), "j").args(["--log-format", "json"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["span"]["flow_id"] == id.as_str()
            && l["message"].as_str().is_some_and(|m| m.contains("before retrying"))),
        "{stderr}"
    );
    assert_no_secrets(&stderr, &sim);
}

/// Copies every file under `from` into `to` (the same tree).
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_piped_into_a_reader_that_stops_after_one_line_ends_quietly_with_status_0() {
    use tokio::io::AsyncBufReadExt;
    let sim = start_sim(org(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut export_cmd(&sim, dir.path(), "r0000")).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    // Far more table than a pipe buffers, so the writer meets the closed pipe for certain.
    for i in 1..600 {
        copy_tree(&dir.path().join("r0000"), &dir.path().join(format!("r{i:04}")));
    }
    let mut child = flowvault()
        .arg("runs")
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).await.unwrap();
    assert!(first.starts_with("RUN"), "{first}");
    drop(reader);
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "no error line expected, got:\n{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_spells_json_output_json_like_every_command_and_keeps_output_json_as_a_hidden_alias() {
    let sim = start_sim(org(2)).await;
    let dir = tempfile::tempdir().unwrap();
    for (run_id, flags) in [("a", &["--json"][..]), ("b", &["--output", "json"][..])] {
        let out = run(export_cmd(&sim, dir.path(), run_id).args(flags)).await;
        assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        assert_eq!(summary["status"], "complete", "{flags:?}: {summary}");
    }
    let help = run(flowvault().args(["export", "--help"])).await;
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--json"), "{text}");
    assert!(
        !text.lines().any(|l| l.trim_start().starts_with("--output")),
        "the older spelling stays hidden:\n{text}"
    );
}
