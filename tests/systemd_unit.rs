//! The shipped systemd unit is well-formed: `systemd-analyze verify` accepts it (with ExecStart
//! pointed at the binary under test) and it starts the server the way the README documents.

use std::process::Command;

#[test]
fn unit_file_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/tessera.service"
    ))
    .expect("systemd/tessera.service");
    assert!(
        unit.contains("ExecStart=/usr/local/bin/tessera serve --config "),
        "{unit}"
    );
    assert!(unit.contains("KillSignal=SIGTERM") && unit.contains("LimitMEMLOCK=infinity"));

    let dir = tempfile::tempdir().unwrap();
    let local = unit.replace("/usr/local/bin/tessera", env!("CARGO_BIN_EXE_tessera"));
    let path = dir.path().join("tessera.service");
    std::fs::write(&path, local).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian systemd) is needed: run `bash tests/install-deps.sh`");
    let complaints = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && complaints.trim().is_empty(),
        "systemd-analyze verify: {complaints}"
    );
}
