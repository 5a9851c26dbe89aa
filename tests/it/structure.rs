//! The code's structural rules (issue 21) hold on every change: no function in src/ over 80 lines,
//! no discarded stdout/stderr writes, `Destination` matched only in sink/, `S3Options` only in sink/
//! and settings/, one `authenticate`. The rules live in `.ci/structure_check.py`.

use std::path::Path;
use std::process::Command;

#[test]
fn the_source_keeps_the_structural_rules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(".ci/structure_check.py")
        .current_dir(root)
        .output()
        .expect("python3 runs .ci/structure_check.py");
    assert!(
        out.status.success(),
        "structural rules broken:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
