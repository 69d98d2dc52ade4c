//! `tessera keygen` and `tessera token` through the real binary, and key files interchangeable
//! with openssl's (`openssl genpkey -algorithm ed25519`, `openssl pkey -pubout`).

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(common::server::tessera_binary())
        .args(args)
        .output()
        .expect("run tessera")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn config_trusting(dir: &Path) -> String {
    let path = dir.join("tessera.toml");
    std::fs::write(
        &path,
        format!("[auth]\npublic_keys = {:?}\n", dir.display().to_string()),
    )
    .unwrap();
    path.display().to_string()
}

fn mint(key: &Path, extra: &[&str]) -> String {
    let key = key.display().to_string();
    let mut args = vec![
        "token",
        "--key",
        &key,
        "--subject",
        "ci",
        "--read",
        "bazel*",
    ];
    args.extend(extra);
    stdout(&run(&args)).trim().to_string()
}

#[test]
fn keygen_then_token_then_inspect_accepts_and_a_foreign_config_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let keys_text = keys.display().to_string();
    stdout(&run(&["keygen", "--dir", &keys_text, "--kid", "ci"]));
    let again = run(&["keygen", "--dir", &keys_text, "--kid", "ci"]);
    assert!(!again.status.success(), "keygen must not overwrite a key");

    let token = mint(
        &keys.join("ci.key"),
        &["--write", "bazel/main", "--ttl", "30d"],
    );
    let config = config_trusting(&keys);
    let inspected = stdout(&run(&["token", "--inspect", &token, "--config", &config]));
    assert!(inspected.contains("accepted"), "{inspected}");
    assert!(inspected.contains("\"bazel/main\""), "{inspected}");

    // Another key directory does not trust it: exit status 1 and the reason.
    let other = dir.path().join("other");
    stdout(&run(&[
        "keygen",
        "--dir",
        &other.display().to_string(),
        "--kid",
        "x",
    ]));
    let refused = run(&[
        "token",
        "--inspect",
        &token,
        "--config",
        &config_trusting(&other),
    ]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("unknown_key"), "{stderr}");
}

fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn openssl_keys_mint_tokens_and_openssl_reads_ours() {
    if std::env::var_os("TESSERA_SKIP_REAL_CLIENTS").is_some() {
        eprintln!("skipped: TESSERA_SKIP_REAL_CLIENTS is set (openssl)");
        return;
    }
    assert!(
        openssl_available(),
        "openssl is missing: run tests/install-deps.sh (or set TESSERA_SKIP_REAL_CLIENTS=1)"
    );
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ossl.key");
    let public = dir.path().join("ossl.pub");
    let ok = |cmd: &mut Command| assert!(cmd.status().unwrap().success(), "{cmd:?}");
    ok(Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&key));
    ok(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public));
    let token = mint(&key, &[]);
    let inspected = stdout(&run(&[
        "token",
        "--inspect",
        &token,
        "--config",
        &config_trusting(dir.path()),
    ]));
    assert!(inspected.contains("accepted"), "{inspected}");
    assert!(inspected.contains("\"kid\":\"ossl\""), "{inspected}");

    // openssl derives from our private key exactly the public key we wrote.
    let ours = dir.path().join("ours");
    stdout(&run(&[
        "keygen",
        "--dir",
        &ours.display().to_string(),
        "--kid",
        "t",
    ]));
    let derived = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(ours.join("t.key"))
        .output()
        .unwrap();
    assert!(derived.status.success());
    assert_eq!(
        String::from_utf8(derived.stdout).unwrap(),
        std::fs::read_to_string(ours.join("t.pub")).unwrap()
    );
}
