//! The test harness's own promises (tests/common): the ready-line parser, output draining that
//! never blocks a chatty process, and one `Tessera::builder()` call applying flags, environment,
//! a config file and a gRPC-only port, with restarts keeping the data and, on request, the ports.

mod common;

use std::process::Command;
use std::time::Duration;

use common::http_client::{assert_stored, cas_path, get, put};
use common::process::Process;
use common::server::{parse_ready_line, ReadyLine};
use common::Tessera;

/// Lines a chatty child writes to stderr: 3 MB, far more than a pipe buffers (64 KiB), so it
/// blocks forever unless the harness reads as it writes.
const CHATTY_LINES: usize = 30_000;

/// Bound on any wait in these tests.
const WAIT_MS: u64 = 30_000;

#[test]
fn ready_line_parser_accepts_only_complete_lines() {
    let addr = "127.0.0.1:8080".parse().unwrap();
    let grpc = "127.0.0.1:9092".parse().unwrap();
    let s3 = "127.0.0.1:9000".parse().unwrap();
    let ready = |grpc_addr, s3_addr| {
        Some(ReadyLine {
            addr,
            grpc_addr,
            s3_addr,
            shards: 4,
            executors: 2,
        })
    };
    let cases = [
        (
            "tessera listening on 127.0.0.1:8080 shards=4 executors=2",
            ready(None, None),
        ),
        (
            "tessera listening on 127.0.0.1:8080 grpc=127.0.0.1:9092 shards=4 executors=2",
            ready(Some(grpc), None),
        ),
        (
            "tessera listening on 127.0.0.1:8080 s3=127.0.0.1:9000 shards=4 executors=2",
            ready(None, Some(s3)),
        ),
        (
            "tessera listening on 127.0.0.1:8080 grpc=127.0.0.1:9092 s3=127.0.0.1:9000 shards=4 \
             executors=2",
            ready(Some(grpc), Some(s3)),
        ),
        (
            "tessera listening on 127.0.0.1:8080 s3=127.0.0.1:0 shards=4 executors=2",
            None,
        ),
        (
            "tessera listening on 127.0.0.1:0 shards=4 executors=2",
            None,
        ),
        (
            "tessera listening on 127.0.0.1:8080 grpc=127.0.0.1:0 shards=4 executors=2",
            None,
        ),
        (
            "tessera listening on 127.0.0.1:8080 shards=0 executors=2",
            None,
        ),
        ("tessera listening on 127.0.0.1:8080 shards=4", None),
        (
            "tessera listening on 127.0.0.1:8080 shards=4 executors=2 x",
            None,
        ),
        (
            "tessera listening on localhost:8080 shards=4 executors=2",
            None,
        ),
        ("2026-01-01T00:00:00Z INFO tessera::server: ready", None),
        ("", None),
    ];
    for (line, expected) in cases {
        assert_eq!(parse_ready_line(line), expected, "{line:?}");
    }
}

#[test]
fn a_chatty_process_never_blocks_and_all_its_output_is_kept() {
    // 3 MB of 99-byte lines on stderr, one line that is not UTF-8, then "done" on stdout.
    let script = format!(
        "{{ head -c {} /dev/zero | tr '\\0' x | fold -w 99; echo; }} >&2; printf 'bad \\377\\n' >&2; \
         echo done",
        CHATTY_LINES * 99
    );
    let mut command = Command::new("sh");
    command.arg("-c").arg(script);
    let mut process = Process::spawn("chatty sh", command).expect("sh runs");
    let wait = Duration::from_millis(WAIT_MS);
    assert_eq!(
        process.stdout().wait_for_line(0, wait).as_deref(),
        Ok("done")
    );
    let status = process.wait_for_exit(wait).expect("sh exits");
    assert!(status.success(), "{status}");
    process.settle_output();
    let lines = process.stderr().lines();
    assert_eq!(lines.len(), CHATTY_LINES + 1);
    assert!(lines[..CHATTY_LINES].iter().all(|l| l.len() == 99));
    assert_eq!(lines[CHATTY_LINES], "bad \u{fffd}");
}

#[test]
fn one_builder_call_applies_flags_env_config_and_a_grpc_port_and_restarts_keep_the_data() {
    let mut server = Tessera::builder()
        .args(["--shards", "3"])
        .env("TESSERA_MAX_BLOB_SIZE", "1KiB")
        .config("max_connections = 7\n")
        .grpc_listen()
        .start();
    let ready = server.ready_line();
    assert_eq!(ready.shards, 3, "the flag");
    let big = vec![1u8; 2048];
    assert_eq!(put(server.addr(), &cas_path(&big), &big).status, 413, "env");
    let page = get(server.addr(), "/metrics").text();
    assert!(
        page.contains("\ntessera_connections_max 7\n"),
        "config: {page}"
    );
    let grpc = server.grpc_addr().expect("a gRPC-only port");
    assert_ne!(grpc, server.addr());
    std::net::TcpStream::connect(grpc).expect("the gRPC-only port accepts");
    assert!(
        server.wait_for_log("ready", Duration::from_millis(WAIT_MS)),
        "{}",
        server.recent_log()
    );

    let blob = b"kept across restarts".to_vec();
    assert_eq!(put(server.addr(), &cas_path(&blob), &blob).status, 200);
    server.kill9();
    server.restart_on_same_port();
    assert_eq!(server.ready_line().addr, ready.addr);
    assert_eq!(server.grpc_addr(), Some(grpc));
    assert_stored(server.addr(), &cas_path(&blob), &blob);
    server.stop_expecting_exit_0();
    server.restart();
    assert_stored(server.addr(), &cas_path(&blob), &blob);
    assert_eq!(server.ready_line().shards, 3);
    server.stop_expecting_exit_0();
    assert!(
        server.full_log().matches("shard open shard=0").count() >= 3,
        "the log of all three starts: {}",
        server.full_log()
    );
}

#[test]
fn a_one_shot_command_past_its_timeout_is_killed_with_its_children() {
    // The script starts a child of its own, prints its pid, and waits for it far past the
    // timeout.
    let mut command = Command::new("sh");
    command.args(["-c", "sleep 60 & echo $!; wait"]);
    let started = std::time::Instant::now();
    let error = common::process::run(&mut command, Duration::from_millis(500))
        .expect_err("the command outlives its timeout");
    assert_eq!(
        error.kind,
        common::process::RunErrorKind::TimedOut,
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(WAIT_MS),
        "{error:?}"
    );
    let child: u32 = error
        .stdout
        .trim()
        .parse()
        .expect("the script printed its child's pid");
    // Killed with the group: gone, or a zombie waiting for init to reap it.
    common::eventually(
        "the script's child to die",
        Duration::from_millis(WAIT_MS),
        || match std::fs::read_to_string(format!("/proc/{child}/stat")) {
            Err(_) => Ok(()),
            Ok(stat)
                if stat
                    .rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('Z')) =>
            {
                Ok(())
            }
            Ok(stat) => Err(format!("still running: {stat}")),
        },
    );
}
