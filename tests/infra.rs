//! The deployment files: they parse, follow their platform's conventions, and the arguments and
//! environment they give the container work — proven by running the binary with exactly those,
//! against the simulated org and a real S3 server (only the addresses of the org, the store and
//! the secret files are pointed at the test's).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use flowvault::manifest::Manifest;
use serde_norway::Value;
use support::s3::{BUCKET, S3Server};
use support::*;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path} is not valid YAML: {e}"))
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, key| match key.parse::<usize>() {
        Ok(i) => &v[i],
        Err(_) => &v[key],
    })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|s| s.as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn the_cronjob_follows_kubernetes_conventions_for_a_backup_job() {
    let cj = yaml("infra/k8s/cronjob.yaml");
    assert_eq!(at(&cj, "kind").as_str(), Some("CronJob"));
    assert_eq!(at(&cj, "spec.concurrencyPolicy").as_str(), Some("Forbid"));
    assert!(at(&cj, "spec.startingDeadlineSeconds").as_u64().is_some());
    assert!(at(&cj, "spec.successfulJobsHistoryLimit").as_u64().is_some());
    assert!(at(&cj, "spec.failedJobsHistoryLimit").as_u64().is_some());
    let job = at(&cj, "spec.jobTemplate.spec");
    assert!(at(job, "backoffLimit").as_u64().is_some());
    let deadline = at(job, "activeDeadlineSeconds")
        .as_u64()
        .expect("activeDeadlineSeconds");
    let pod = at(job, "template.spec");
    assert_eq!(at(pod, "restartPolicy").as_str(), Some("Never"));
    assert_eq!(at(pod, "serviceAccountName").as_str(), Some("flowvault"));
    assert_eq!(at(pod, "securityContext.runAsNonRoot").as_bool(), Some(true));
    assert_eq!(
        at(pod, "securityContext.seccompProfile.type").as_str(),
        Some("RuntimeDefault")
    );
    let c = at(pod, "containers.0");
    assert_eq!(at(c, "securityContext.readOnlyRootFilesystem").as_bool(), Some(true));
    assert_eq!(at(c, "securityContext.allowPrivilegeEscalation").as_bool(), Some(false));
    assert_eq!(strings(at(c, "securityContext.capabilities.drop")), vec!["ALL"]);
    for r in ["requests.cpu", "requests.memory", "limits.cpu", "limits.memory"] {
        assert!(at(c, &format!("resources.{r}")).as_str().is_some(), "resources.{r}");
    }
    // The run ends itself (incomplete manifest) before Kubernetes kills it.
    let args = strings(at(c, "args"));
    let max = args
        .iter()
        .position(|a| a == "--max-duration")
        .map(|i| args[i + 1].clone())
        .expect("--max-duration");
    let max = flowvault::settings::parse_duration(&max, "x").unwrap();
    assert!(
        max.as_secs() < deadline,
        "--max-duration {max:?} must end before activeDeadlineSeconds {deadline}"
    );
    // Secrets arrive as files.
    let env = container_env(c);
    assert!(env.contains_key("GENESYSCLOUD_OAUTHCLIENT_SECRET_FILE"));
    assert!(!env.contains_key("GENESYSCLOUD_OAUTHCLIENT_SECRET"));
    let mounts = at(c, "volumeMounts").as_sequence().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| env["GENESYSCLOUD_OAUTHCLIENT_SECRET_FILE"].starts_with(m["mountPath"].as_str().unwrap()))
    );

    let sa = yaml("infra/k8s/serviceaccount.yaml");
    assert!(
        at(&sa, "metadata.annotations")["eks.amazonaws.com/role-arn"]
            .as_str()
            .is_some(),
        "IRSA annotation"
    );
    let secret = yaml("infra/k8s/secret.yaml");
    assert_eq!(at(&secret, "kind").as_str(), Some("Secret"));
    let k = yaml("infra/k8s/kustomization.yaml");
    let resources = strings(at(&k, "resources"));
    for f in &resources {
        assert!(repo(&format!("infra/k8s/{f}")).exists(), "kustomization lists {f}");
    }
    assert_eq!(resources.len(), 3);
}

fn container_env(c: &Value) -> BTreeMap<String, String> {
    at(c, "env")
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_dockerfile_runs_export_as_a_non_root_user() {
    let text = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    assert!(text.contains("ENTRYPOINT [\"flowvault\"]"));
    assert!(text.contains("CMD [\"export\"]"));
    assert!(text.contains("USER 65532:65532"));
    for label in ["source", "version", "licenses"] {
        assert!(
            text.contains(&format!("org.opencontainers.image.{label}")),
            "OCI label {label}"
        );
    }
    assert!(text.matches("FROM ").count() >= 2, "multi-stage");
    assert!(repo(".dockerignore").exists());
}

#[test]
fn the_compose_file_parses_and_wires_minio_the_sim_and_one_export() {
    let c = yaml("infra/compose/docker-compose.yml");
    for s in ["minio", "create-bucket", "sim", "export"] {
        assert!(at(&c, "services")[s].is_mapping(), "service {s}");
    }
    let export = at(&c, "services.export");
    assert_eq!(strings(&export["command"])[0], "export");
    assert_eq!(
        export["environment"]["FLOWVAULT_API_URL"].as_str(),
        Some("http://sim:8980")
    );
}

/// Runs `flowvault` with a deployment's arguments and environment; `rewrite` points only the
/// addresses (org, store, secret files) at the test's own.
async fn run_as_deployed(
    args: Vec<String>,
    mut env: BTreeMap<String, String>,
    s3: &S3Server,
    sim: &flowvault::sim::SimServer,
    scratch: &Path,
) -> Manifest {
    assert!(
        env.contains_key("FLOWVAULT_EXPECT_ORG"),
        "the example guards against backing up the wrong org"
    );
    for (k, v) in env.iter_mut() {
        if k == "FLOWVAULT_EXPECT_ORG" {
            *v = "sim-org".into(); // the simulated org's short name
        }
        if k.ends_with("_FILE") {
            let file = scratch.join(k.to_lowercase());
            let value = if k.contains("SECRET") { CLIENT_SECRET } else { CLIENT_ID };
            std::fs::write(&file, format!("{value}\n")).unwrap();
            *v = file.to_string_lossy().into_owned();
        }
        if k == "FLOWVAULT_TO" {
            *v = format!("s3://{BUCKET}/deployed");
        }
        if k == "GENESYSCLOUD_OAUTHCLIENT_ID" {
            *v = CLIENT_ID.into();
        }
        if k == "GENESYSCLOUD_OAUTHCLIENT_SECRET" {
            *v = CLIENT_SECRET.into();
        }
    }
    env.remove("FLOWVAULT_SSE"); // moto has no KMS key; SSE is covered by the S3 settings tests
    for (k, v) in s3.env() {
        env.insert(k.to_string(), v);
    }
    env.insert("FLOWVAULT_API_URL".into(), sim.url().into());
    env.insert("FLOWVAULT_RUN_ID".into(), "deployed".into());
    let out = run(flowvault().args(&args).envs(&env)).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "args {args:?} env {env:?}:\n{}",
        all_output(&out)
    );
    assert_no_secrets(&all_output(&out), sim);
    serde_json::from_slice(&s3.get("deployed/deployed/manifest.json").await).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cronjob_arguments_and_environment_work() {
    let s3 = S3Server::start().await;
    let sim = start_sim(org(12)).await;
    let scratch = tempfile::tempdir().unwrap();
    let cj = yaml("infra/k8s/cronjob.yaml");
    let c = at(&cj, "spec.jobTemplate.spec.template.spec.containers.0");
    let manifest = run_as_deployed(strings(at(c, "args")), container_env(c), &s3, &sim, scratch.path()).await;
    assert!(manifest.complete);
    assert_eq!(manifest.totals.exported, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_export_arguments_and_environment_work() {
    let s3 = S3Server::start().await;
    let sim = start_sim(org(12)).await;
    let scratch = tempfile::tempdir().unwrap();
    let c = yaml("infra/compose/docker-compose.yml");
    let export = at(&c, "services.export");
    let env: BTreeMap<String, String> = export["environment"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v.as_str().unwrap().to_string()))
        .filter(|(k, _)| !k.starts_with("AWS_"))
        .collect();
    let manifest = run_as_deployed(strings(&export["command"]), env, &s3, &sim, scratch.path()).await;
    assert!(manifest.complete);
    // The sim service's flags are the CLI's too.
    let sim_args = strings(at(&c, "services.sim.command"));
    let parsed =
        <flowvault::cli::Cli as clap::Parser>::try_parse_from(std::iter::once("flowvault".to_string()).chain(sim_args));
    assert!(parsed.is_ok(), "{:?}", parsed.err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ecs_task_definition_arguments_and_environment_work() {
    let s3 = S3Server::start().await;
    let sim = start_sim(org(12)).await;
    let scratch = tempfile::tempdir().unwrap();
    let template = std::fs::read_to_string(repo("infra/terraform/aws/container-definitions.json.tftpl")).unwrap();
    let rendered = template
        .replace("${image}", "flowvault:test")
        .replace("${genesys_region}", "us-west-2")
        .replace("${expected_org}", "acme-prod")
        .replace("${destination}", "s3://bucket/prefix")
        .replace("${aws_region}", "us-east-1")
        .replace("${client_id_secret}", "arn:id")
        .replace("${client_secret_secret}", "arn:secret")
        .replace("${log_group}", "/ecs/flowvault");
    assert!(
        !rendered.contains("${"),
        "every template variable is known to this test"
    );
    let defs: serde_json::Value = serde_json::from_str(&rendered).expect("container definitions are JSON");
    let c = &defs[0];
    assert_eq!(c["readonlyRootFilesystem"], true);
    let args: Vec<String> = c["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let mut env: BTreeMap<String, String> = c["environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .filter(|(k, _)| !k.starts_with("AWS_"))
        .collect();
    // ECS injects the Secrets Manager values as these variables.
    for s in c["secrets"].as_array().unwrap() {
        env.insert(s["name"].as_str().unwrap().to_string(), String::new());
    }
    let manifest = run_as_deployed(args, env, &s3, &sim, scratch.path()).await;
    assert!(manifest.complete);
}
