//! `tessera config` and the start-up checks of `tessera serve`, through the real binary: every
//! declared setting reaches the effective configuration from the file, the environment and a
//! flag, later layers win, and bad or unknown settings stop start-up naming the setting.

mod common;

use tessera::config::{Setting, SETTINGS};

/// A value every setting accepts: its default, or the empty value (unset) when it has none.
fn value(setting: &Setting) -> &'static str {
    setting.default
}

/// A config file giving every setting.
fn file_with_every_setting(dir: &std::path::Path) -> String {
    let path = dir.join("tessera.toml");
    let text: String = SETTINGS
        .iter()
        .map(|s| format!("{} = \"{}\"\n", s.key, value(s)))
        .collect();
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn env_with_every_setting() -> Vec<(String, String)> {
    SETTINGS
        .iter()
        .map(|s| (s.env_var(), value(s).to_string()))
        .collect()
}

fn flags_with_every_setting() -> Vec<String> {
    SETTINGS
        .iter()
        .map(|s| format!("--{}={}", s.flag(), value(s)))
        .collect()
}

/// Runs `tessera config` with `args` and `env`, expecting success; returns stdout.
fn config(args: &[String], env: &[(String, String)]) -> String {
    let mut all = vec!["config"];
    all.extend(args.iter().map(String::as_str));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let output = common::run_tessera(&all, &env);
    assert_eq!(output.status.code(), Some(0), "tessera {all:?}: {output:?}");
    output.stdout
}

/// The origin comment of `key`'s line in a `tessera config` report.
fn origin<'a>(report: &'a str, key: &str) -> &'a str {
    let line = report
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no `{key}` line in:\n{report}"));
    line.rsplit_once(" # ")
        .unwrap_or_else(|| panic!("no origin on {line:?}"))
        .1
}

#[test]
fn every_setting_is_reachable_from_the_file_the_environment_and_a_flag_in_that_order() {
    let scratch = tempfile::tempdir().unwrap();
    let file = file_with_every_setting(scratch.path());
    let file_args = vec!["--config".to_string(), file.clone()];
    let env = env_with_every_setting();
    let flags = flags_with_every_setting();
    let file_and_flags: Vec<String> = file_args.iter().chain(&flags).cloned().collect();

    let defaults = config(&[], &[]);
    let from_file = config(&file_args, &[]);
    let from_env = config(&[], &env);
    let from_flags = config(&flags, &[]);
    let file_then_env = config(&file_args, &env);
    let all_three = config(&file_and_flags, &env);
    for setting in SETTINGS {
        let key = setting.key;
        let flag = format!("flag --{}", setting.flag());
        let env_origin = format!("env {}", setting.env_var());
        assert!(origin(&defaults, key).starts_with("default"), "{key}");
        assert_eq!(origin(&from_file, key), format!("file {file}"), "{key}");
        assert_eq!(origin(&from_env, key), env_origin, "{key}");
        assert_eq!(origin(&from_flags, key), flag, "{key}");
        assert_eq!(
            origin(&file_then_env, key),
            env_origin,
            "{key}: env over file"
        );
        assert_eq!(
            origin(&all_three, key),
            flag,
            "{key}: flag over env and file"
        );
    }
}

#[test]
fn the_report_shows_values_and_the_mount_table() {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("tessera.toml");
    std::fs::write(
        &file,
        "max_size = \"20GiB\"\n\
         [[mount]]\nprefix = \"/gradle-cache/\"\nprotocol = \"gradle\"\nnamespace = \"gradle-ci\"\n",
    )
    .unwrap();
    let report = config(
        &[
            "--config".into(),
            file.to_str().unwrap().into(),
            "--shards".into(),
            "4".into(),
        ],
        &[("TESSERA_IDLE_TIMEOUT".into(), "7d".into())],
    );
    for expected in [
        "max_size = \"20GiB\"",
        "shards = 4 ",
        "idle_timeout = \"7d\"",
        "prefix = \"/cache/\"\nprotocol = \"gradle\"",
        "prefix = \"/\"\nprotocol = \"bazel\"",
        "prefix = \"/gradle-cache/\"\nprotocol = \"gradle\"\nnamespace = \"gradle-ci\"",
        "# config file entry 1",
    ] {
        assert!(report.contains(expected), "no {expected:?} in:\n{report}");
    }
    let without_defaults = config(
        &[
            "--config".into(),
            file.to_str().unwrap().into(),
            "--mount-defaults=false".into(),
        ],
        &[],
    );
    assert_eq!(without_defaults.matches("\n[[mount]]").count(), 1);
}

#[test]
fn bad_and_unknown_settings_stop_start_up_naming_the_setting_and_unknown_variables_warn() {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("tessera.toml");
    let file_arg = file.to_str().unwrap();
    let data = scratch.path().join("data");
    let data = data.to_str().unwrap();
    // (file, extra arguments, environment, what stderr must contain)
    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, Vec<&'a str>);
    let cases: Vec<Case> =
        vec![
        ("idel_timeout = \"2s\"\n", vec![], vec![], vec!["idel_timeout", "unknown setting"]),
        ("[gradel]\n", vec![], vec![], vec!["gradel", "unknown setting"]),
        ("", vec!["--max-sise", "1GiB"], vec![], vec!["--max-sise"]),
        (
            "",
            vec!["--drain-timeout", "1w"],
            vec![],
            vec!["drain_timeout", "`1w`", "--drain-timeout"],
        ),
        (
            "",
            vec![],
            vec![("TESSERA_SYNC_INTERVAL", "soon")],
            vec!["sync_interval", "`soon`", "TESSERA_SYNC_INTERVAL"],
        ),
        (
            "[[mount]]\nprefix = \"/cache\"\nprotocol = \"nx\"\n",
            vec![],
            vec![],
            vec!["mount `/cache/` (gradle, built-in) and mount `/cache` (nx, config file entry 1)"],
        ),
        (
            "[[mount]]\nprefix = \"/x/\"\nprotocol = \"maven\"\n",
            vec![],
            vec![],
            vec!["config file entry 1", "maven"],
        ),
    ];
    for (toml, extra, env, expected) in cases {
        std::fs::write(&file, toml).unwrap();
        for command in ["config", "serve"] {
            let mut args = vec![command, "--listen", "127.0.0.1:0", "--data", data];
            args.extend(["--config", file_arg]);
            args.extend(&extra);
            let output = common::run_tessera(&args, &env);
            assert_eq!(
                output.status.code(),
                Some(2),
                "{args:?} {env:?} {toml:?}: {output:?}"
            );
            for part in &expected {
                assert!(
                    output.stderr.contains(part),
                    "{args:?} {env:?} {toml:?}: no {part:?} in {}",
                    output.stderr
                );
            }
        }
    }
    // An unknown TESSERA_ variable is only a warning (the prefix is shared with tool variables).
    std::fs::write(&file, "").unwrap();
    let output = common::run_tessera(
        &["config", "--config", file_arg],
        &[("TESSERA_IDEL_TIMEOUT", "2s")],
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(output.stderr.contains("TESSERA_IDEL_TIMEOUT"), "{output:?}");
}
