//! The shipped systemd units (`systemd/tessera.service`, `systemd/tessera.socket`):
//! - well-formed: `systemd-analyze verify` accepts them (ExecStart pointed at the binary under
//!   test);
//! - hardened: `systemd-analyze security --offline=true` scores the service at most
//!   [`EXPOSURE_MAX`];
//! - its system call filter leaves io_uring and executor pinning working: systemd is not PID 1
//!   here, so the unit's `SystemCallFilter=` lines are expanded with `systemd-analyze
//!   syscall-filter` and the real server runs under an equivalent seccomp filter
//!   (`tests/seccomp_exec.py`, libseccomp). Two variants of the filter that are too strict must
//!   break the server visibly, so the check can fail.
//!
//! What the seccomp run proves: every system call the server makes while starting, pinning its
//! executors, setting up io_uring, serving a PUT and a GET and draining is allowed by the
//! unit's filter. What it does not prove: the other sandboxing lines (namespaces, ProtectSystem=,
//! PrivateUsers=, …), which only systemd applies; and the operations io_uring performs for the
//! server (reads, writes, accepts submitted through the ring), which seccomp never sees.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use common::http_client;
use common::Tessera;

mod common;

/// The highest `systemd-analyze security` exposure accepted for the shipped service (0 is
/// best, 10 worst; "OK" ends at 3.9). Before hardening it was 6.2.
const EXPOSURE_MAX: f64 = 2.0;

fn shipped(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("systemd")
            .join(name),
    )
    .unwrap_or_else(|e| panic!("systemd/{name}: {e}"))
}

fn systemd_analyze() -> Command {
    Command::new("systemd-analyze")
}

fn missing_tool(error: std::io::Error) -> ! {
    panic!("systemd-analyze (Debian systemd) is needed: run `bash tests/install-deps.sh` ({error})")
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let service = shipped("tessera.service");
    assert!(
        service.contains("ExecStart=/usr/local/bin/tessera serve --config "),
        "{service}"
    );
    for line in [
        "Type=notify",
        "KillSignal=SIGTERM",
        "LimitMEMLOCK=infinity",
        "Requires=tessera.socket",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(service.lines().any(|l| l == line), "{line} missing");
    }
    assert!(service.lines().any(|l| l.starts_with("WatchdogSec=")));
    let socket = shipped("tessera.socket");
    assert!(socket.lines().any(|l| l.starts_with("ListenStream=")));

    let dir = tempfile::tempdir().unwrap();
    let local = service.replace("/usr/local/bin/tessera", env!("CARGO_BIN_EXE_tessera"));
    std::fs::write(dir.path().join("tessera.service"), local).unwrap();
    std::fs::write(dir.path().join("tessera.socket"), socket).unwrap();
    let output = systemd_analyze()
        .arg("verify")
        .arg(dir.path().join("tessera.service"))
        .arg(dir.path().join("tessera.socket"))
        .output()
        .unwrap_or_else(|e| missing_tool(e));
    let complaints = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && complaints.trim().is_empty(),
        "systemd-analyze verify: {complaints}"
    );
}

#[test]
fn service_exposure_is_at_most_2_0() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.service");
    std::fs::write(&path, shipped("tessera.service")).unwrap();
    let output = systemd_analyze()
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| missing_tool(e));
    let text = String::from_utf8_lossy(&output.stdout);
    let score: f64 = text
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for tessera.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no overall exposure in:\n{text}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    println!("systemd-analyze security --offline=true: {score}");
    assert!(
        score <= EXPOSURE_MAX,
        "exposure {score} > {EXPOSURE_MAX}:\n{text}"
    );
}

/// Every system call group `systemd-analyze syscall-filter` knows: name → members (system
/// calls and nested groups).
fn syscall_groups() -> BTreeMap<String, Vec<String>> {
    let output = systemd_analyze()
        .args(["syscall-filter", "--no-pager"])
        .output()
        .unwrap_or_else(|e| missing_tool(e));
    let mut groups = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if line.starts_with('@') {
            current = Some(line.trim().to_string());
            groups.insert(line.trim().to_string(), Vec::new());
        } else if let Some(group) = &current {
            let entry = line.trim();
            if !entry.is_empty() && !entry.starts_with('#') {
                groups.get_mut(group).unwrap().push(entry.to_string());
            }
        }
        if line.trim().is_empty() {
            current = None;
        }
    }
    assert!(groups.contains_key("@system-service"), "no groups parsed");
    groups
}

fn expand(name: &str, groups: &BTreeMap<String, Vec<String>>, into: &mut BTreeSet<String>) {
    match groups.get(name) {
        Some(members) => members.iter().for_each(|m| expand(m, groups, into)),
        None if name.starts_with('@') => panic!("unknown system call group {name}"),
        None => {
            into.insert(name.to_string());
        }
    }
}

/// The system calls a unit's `SystemCallFilter=` lines allow, with systemd's rules: the first
/// line without `~` makes an allow-list; later lines add to it, `~` lines take away.
fn allowed_syscalls(unit: &str) -> BTreeSet<String> {
    let groups = syscall_groups();
    let mut allowed = BTreeSet::new();
    let lines: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("SystemCallFilter="))
        .collect();
    assert!(
        lines.first().is_some_and(|l| !l.starts_with('~')),
        "the unit's filter must be an allow-list: {lines:?}"
    );
    for line in lines {
        let (deny, names) = match line.strip_prefix('~') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let mut set = BTreeSet::new();
        for name in names.split_whitespace() {
            expand(name, &groups, &mut set);
        }
        if deny {
            allowed.retain(|s| !set.contains(s));
        } else {
            allowed.extend(set);
        }
    }
    allowed
}

/// What the server did under a filter.
#[derive(Debug)]
enum Filtered {
    /// It served; the CPUs its executor threads may run on.
    Served {
        executor_cpus: BTreeMap<usize, BTreeSet<String>>,
    },
    /// It exited before its ready line (or never printed one); its stderr.
    Failed(String),
}

/// Runs the server under a seccomp filter allowing `allowed`, denying the rest with `errno`.
fn serve_filtered(allowed: &BTreeSet<String>, errno: &str) -> Filtered {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("allowed");
    std::fs::write(
        &list,
        allowed.iter().cloned().collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    let launcher = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/seccomp_exec.py");
    // Debian python3 with python3-seccomp loads the filter, then execs the server.
    let launch = [
        "/usr/bin/python3",
        launcher.to_str().unwrap(),
        list.to_str().unwrap(),
        errno,
        "--",
    ];
    let started = Tessera::builder()
        .wrapper(launch)
        .args(["--max-size", "64MiB", "--segment-size", "8MiB"])
        .args(["--executors", "2", "--shards", "2"])
        .env("TESSERA_DRAIN_TIMEOUT", "5s")
        .try_start();
    let mut server = match started {
        Ok(server) => server,
        Err(error) => return Filtered::Failed(error.log),
    };
    assert!(
        server.recent_log().contains("system calls allowed"),
        "the launcher must have loaded the filter:\n{}",
        server.recent_log()
    );
    let pid = server.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.lines().any(|l| l == "Seccomp:\t2") && status.lines().any(|l| l == "NoNewPrivs:\t1"),
        "the server must run filtered:\n{status}"
    );
    let blob = b"stored under the unit's system call filter";
    let path = http_client::cas_path(blob);
    let addr = server.addr();
    assert_eq!(
        http_client::put(addr, &path, blob).status,
        200,
        "{}",
        server.recent_log()
    );
    http_client::assert_stored(addr, &path, blob);
    let executor_cpus = executor_affinities(pid);
    let exit = server.stop();
    assert!(
        exit.success(),
        "exit {exit} under the filter:\n{}",
        server.recent_log()
    );
    Filtered::Served { executor_cpus }
}

/// Executor position → the `Cpus_allowed_list`s of its threads (glommio names them
/// `tessera-<position>-<executor id>`, one thread plus helpers per executor).
fn executor_affinities(pid: u32) -> BTreeMap<usize, BTreeSet<String>> {
    let mut found: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        let Some(position) = name
            .trim()
            .strip_prefix("tessera-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        let status = std::fs::read_to_string(task.join("status")).unwrap_or_default();
        if let Some(cpus) = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        {
            found
                .entry(position)
                .or_default()
                .insert(cpus.trim().to_string());
        }
    }
    found
}

/// Both executors found, each pinned to one CPU, different ones (when this process may use more
/// than one CPU).
fn pinned(executor_cpus: &BTreeMap<usize, BTreeSet<String>>) -> bool {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let single: Vec<&String> = executor_cpus
        .values()
        .filter(|set| set.len() == 1)
        .flat_map(|set| set.iter())
        .filter(|c| c.parse::<usize>().is_ok())
        .collect();
    executor_cpus.len() == 2 && (cpus < 2 || (single.len() == 2 && single[0] != single[1]))
}

fn unit_errno(unit: &str) -> String {
    unit.lines()
        .find_map(|l| l.strip_prefix("SystemCallErrorNumber="))
        .expect("the unit sets SystemCallErrorNumber=")
        .to_string()
}

#[test]
fn server_serves_and_pins_under_the_units_system_call_filter() {
    let unit = shipped("tessera.service");
    let allowed = allowed_syscalls(&unit);
    for needed in [
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "sched_setaffinity",
    ] {
        assert!(allowed.contains(needed), "{needed} is not allowed");
    }
    assert!(!allowed.contains("setrlimit") && !allowed.contains("mount"));
    match serve_filtered(&allowed, &unit_errno(&unit)) {
        Filtered::Served { executor_cpus } => assert!(
            pinned(&executor_cpus),
            "executors must be pinned one per CPU: {executor_cpus:?}"
        ),
        Filtered::Failed(stderr) => panic!("the server failed under the unit's filter:\n{stderr}"),
    }
}

#[test]
fn a_filter_without_io_uring_or_sched_setaffinity_breaks_the_server_visibly() {
    // The controls: the same check must notice a filter that is too strict.
    let unit = shipped("tessera.service");
    let errno = unit_errno(&unit);
    let mut without_aio = allowed_syscalls(&unit);
    without_aio.retain(|s| !s.starts_with("io_uring_"));
    match serve_filtered(&without_aio, &errno) {
        Filtered::Failed(stderr) => println!("without io_uring: failed as expected:\n{stderr}"),
        served => panic!("served without io_uring: {served:?}"),
    }
    let mut without_pinning = allowed_syscalls(&unit);
    without_pinning.remove("sched_setaffinity");
    match serve_filtered(&without_pinning, &errno) {
        Filtered::Served { executor_cpus } if pinned(&executor_cpus) => {
            panic!("pinned without sched_setaffinity: {executor_cpus:?}")
        }
        outcome => println!("without sched_setaffinity, as expected: {outcome:?}"),
    }
}
