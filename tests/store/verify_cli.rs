//! The real binary's `tessera verify --data DIR` on healthy and damaged directories.

use std::process::Command;

use tessera::store::Kind;

use crate::common::*;

fn run_verify(dir: &std::path::Path) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("verify")
        .arg("--data")
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().expect("exited"), text)
}

#[test]
fn verify_subcommand_reports_health_damage_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&tmp.path().join("data"), 1);
    let mut shard = open(&cfg);
    for i in 0..5u32 {
        put(
            &mut shard,
            key(Kind::Blob, &i.to_le_bytes()),
            Kind::Blob,
            &body(u64::from(i), 400),
        )
        .unwrap();
    }
    shard.close().unwrap();
    let (status, text) = run_verify(&cfg.dir);
    assert_eq!(status, 0, "{text}");
    assert!(
        text.starts_with("OK: 1 shards, 1 segments, 5 records ok, 0 damaged"),
        "{text}"
    );

    let segment = newest_segment(&cfg.dir);
    let third = records_of(&segment)[2].0;
    flip(&segment, third + 104 + 10, 0x40);
    let (status, text) = run_verify(&cfg.dir);
    assert_eq!(status, 1, "{text}");
    assert!(
        text.contains(&format!(
            "DAMAGED {} offset {third}: body checksum mismatch",
            segment.display()
        )),
        "{text}"
    );
    assert!(text.contains("4 records ok, 1 damaged"), "{text}");

    let (status, text) = run_verify(&tmp.path().join("missing"));
    assert_eq!(status, 2, "{text}");
    assert!(text.contains("no MANIFEST"), "{text}");
    let usage = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("verify")
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
}
