//! Shared fixtures: a simulated org on a free port, the real binary run as a user runs it, and
//! readers for what it writes.
#![allow(dead_code)]

pub mod s3;
pub mod targets;
pub mod tools;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Output;

use flowvault::manifest::{Content, Manifest};
use flowvault::sim::{SimConfig, SimServer};

/// The client id every test org accepts.
pub const CLIENT_ID: &str = "test-client-id";
/// A distinctive secret, so a leak is easy to find in any output.
pub const CLIENT_SECRET: &str = "s3cr3t-Zebra-9431-do-not-print";

/// Starts `config` on a free loopback port.
pub async fn start_sim(config: SimConfig) -> SimServer {
    SimServer::start(config, SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0))
        .await
        .expect("start the simulated org")
}

/// An org of `n` generated flows for the test client.
pub fn org(n: usize) -> SimConfig {
    SimConfig::generated(n, 42, CLIENT_ID, CLIENT_SECRET)
}

/// The binary with a clean environment (no inherited Genesys, AWS or flowvault settings).
pub fn flowvault() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_flowvault"));
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().to_string();
        if k.starts_with("GENESYSCLOUD_")
            || k.starts_with("PURECLOUD_")
            || k.starts_with("FLOWVAULT_")
            || k.starts_with("AWS_")
        {
            cmd.env_remove(k);
        }
    }
    cmd.env("NO_COLOR", "1");
    cmd.kill_on_drop(true);
    cmd
}

/// `flowvault export` against `sim` into `to`, with the test credentials and fast retries.
pub fn export_cmd(sim: &SimServer, to: &Path, run_id: &str) -> tokio::process::Command {
    let mut cmd = flowvault();
    cmd.arg("export")
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", CLIENT_ID)
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", CLIENT_SECRET)
        .env("FLOWVAULT_API_URL", sim.url())
        .env("FLOWVAULT_MAX_BACKOFF", "200ms")
        .arg("--to")
        .arg(to)
        .args(["--run-id", run_id, "--rate-limit", "off"]);
    cmd
}

/// Runs a command to completion, capturing output.
pub async fn run(cmd: &mut tokio::process::Command) -> Output {
    cmd.output().await.expect("run flowvault")
}

/// stdout + stderr as text.
pub fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts that neither the client secret nor any issued token appears in `text`.
pub fn assert_no_secrets(text: &str, sim: &SimServer) {
    assert!(!text.contains(CLIENT_SECRET), "the client secret leaked:\n{text}");
    for token in sim.issued_tokens() {
        assert!(!text.contains(&token), "an access token leaked:\n{text}");
    }
}

/// Reads `manifest.json` of a run.
pub fn read_manifest(run_dir: &Path) -> Manifest {
    let bytes = std::fs::read(run_dir.join("manifest.json")).expect("read manifest.json");
    serde_json::from_slice(&bytes).expect("parse manifest.json")
}

/// Every member of a tar.gz, in order, with its bytes.
pub fn read_tar_gz(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut out = Vec::new();
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let name = entry.path().expect("member path").to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("member data");
        out.push((name, data));
    }
    out
}

/// Every file under `dir`, keyed by its path relative to `dir`.
pub fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let path: PathBuf = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path
                    .strip_prefix(base)
                    .expect("relative")
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&path).expect("read file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Checks a stored document against what the org serves: the listing row and the configuration,
/// byte for byte.
pub fn assert_document_matches(doc: &[u8], sim: &SimServer) -> String {
    #[derive(serde::Deserialize)]
    struct Doc<'a> {
        #[serde(borrow)]
        flow: &'a serde_json::value::RawValue,
        #[serde(borrow)]
        configuration: &'a serde_json::value::RawValue,
    }
    let parsed: Doc = serde_json::from_slice(doc).expect("document is {flow, configuration}");
    let meta: serde_json::Value = serde_json::from_str(parsed.flow.get()).expect("flow JSON");
    let id = meta["id"].as_str().expect("flow id").to_string();
    let flows = sim.flows();
    let served = flows.iter().find(|f| f.id() == id).expect("the flow exists in the org");
    assert_eq!(meta, served.meta, "flow metadata of {id}");
    let published = served.published_version().and_then(|v| served.version_configuration(v));
    assert!(
        parsed.configuration.get() == served.configuration_json()
            || Some(parsed.configuration.get()) == published.as_deref(),
        "configuration of {id} must be byte-identical to its latest or its published version"
    );
    id
}

/// How many documents the manifest's rows name (flows' and Architect objects').
pub fn document_count(m: &Manifest) -> u64 {
    m.document_paths().count() as u64
}

/// A program from a PyPI package, installed on first use into a virtualenv under
/// `target/test-tools/NAME` (one test installs it while the others wait on a file lock).
pub fn python_tool(name: &str, requirement: &str, program: &str) -> PathBuf {
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-tools");
    let venv = tools.join(name);
    let bin = venv.join("bin").join(program);
    std::fs::create_dir_all(&tools).expect("create target/test-tools");
    let lock = std::fs::File::create(tools.join(format!("{name}.lock"))).expect("create the install lock");
    lock.lock().expect("take the install lock");
    let marker = venv.join(".installed");
    if !marker.exists() {
        let ok = std::process::Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && std::process::Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", requirement])
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            ok && bin.exists(),
            "cannot install {requirement} into {}: python3 with venv and pip, and access to PyPI, are needed",
            venv.display()
        );
        std::fs::write(&marker, requirement).expect("mark the install done");
    }
    bin
}

/// Sends a signal (`TERM`, `INT`) to a running child, as a scheduler would.
pub fn signal(child: &tokio::process::Child, name: &str) {
    let pid = child.id().expect("the child is running");
    let ok = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{name} {pid}");
}

/// Flows of about `bytes_each` bytes whose configurations barely compress (random base64), so a
/// few megabytes of flows make a multi-part archive or fill a small disk.
pub fn incompressible_org(flows: usize, bytes_each: usize) -> SimConfig {
    use base64::Engine;
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut org = flowvault::sim::generate_org(flows, 8, false);
    for f in &mut org {
        let mut blob = vec![0u8; bytes_each * 3 / 4];
        rng.fill(&mut blob[..]);
        let text = base64::engine::general_purpose::STANDARD.encode(&blob);
        f.config = flowvault::sim::ConfigSource::Literal(
            serde_json::json!({"id": f.id(), "prompts": {"audio": text}}).to_string(),
        );
    }
    SimConfig::with_flows(org, CLIENT_ID, CLIENT_SECRET)
}

/// Checks a sealed archive against its manifest: the members are exactly the documents the rows
/// name (each with its size and SHA-256) followed by the manifest, which equals `manifest`.
pub fn assert_archive_matches_manifest(archive: &[u8], manifest: &Manifest) {
    let members = read_tar_gz(archive);
    let (last, documents) = members.split_last().expect("the archive has members");
    assert_eq!(last.0, "manifest.json", "the manifest is the last member");
    let inner: Manifest = serde_json::from_slice(&last.1).expect("the archive's manifest parses");
    assert_eq!(&inner, manifest, "the archive's manifest equals the one beside it");
    let named: Vec<_> = manifest.documents().collect();
    assert_eq!(
        documents.len(),
        named.len() + manifest.object_documents().count(),
        "one member per document a row names, no stray members"
    );
    for (_, doc) in manifest.object_documents() {
        let found = documents.iter().find(|(name, _)| *name == doc.path);
        let (_, bytes) = found.unwrap_or_else(|| panic!("member {} is in the archive", doc.path));
        assert_eq!(doc.sha256, sha256_hex(bytes), "{}", doc.path);
    }
    for (row, doc) in named {
        let path = doc.path.as_str();
        let (_, bytes) = documents
            .iter()
            .find(|(name, _)| name == path)
            .unwrap_or_else(|| panic!("member {path} of flow {} is in the archive", row.id));
        assert_eq!(doc.bytes, bytes.len() as u64, "{path}");
        assert_eq!(doc.sha256, sha256_hex(bytes), "{path}");
    }
    for row in &manifest.flows {
        if row.outcome == flowvault::manifest::Outcome::Exported {
            assert!(
                row.document(Content::Latest).is_some() || row.document(Content::Published).is_some(),
                "{}",
                row.id
            );
        }
    }
}

/// A small tmpfs mounted for one test (a full disk on demand), unmounted when dropped.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it: `1m`) on a new directory; `None`
    /// where mounting is refused (not root, or in a container without the capability).
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("mount point");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.dir.path()).status();
    }
}
