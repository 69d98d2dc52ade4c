//! SIGHUP (`systemctl reload tessera`): the server re-reads its configuration file, applies the
//! `log` filter live, names every other changed setting as needing a restart, and keeps the
//! running configuration when the file has become invalid.

mod common;

use std::time::{Duration, Instant};

use common::http_client;
use common::Tessera;

/// How long the test waits for a reload to show in the log.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(20);

const SMALL_STORE: &str =
    "max_size = \"64MiB\"\nsegment_size = \"8MiB\"\nshards = 1\nexecutors = 1\n";

/// Replaces the file atomically (as editors and Ansible do), so a reload never reads it half
/// written.
fn write_config(path: &std::path::Path, text: impl AsRef<[u8]>) {
    let temporary = path.with_extension("toml.new");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

fn hangup(server: &Tessera) {
    server.signal(libc::SIGHUP);
}

/// Waits until the log since start contains `needle` `times` times.
fn wait_for_log(server: &Tessera, needle: &str, times: usize) -> String {
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    loop {
        let log = server.recent_log();
        if log.matches(needle).count() >= times {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} (x{times}) in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_applies_the_log_filter_and_names_settings_that_need_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tessera.toml");
    write_config(&config, format!("{SMALL_STORE}log = \"warn\"\n"));
    let config_arg = config.to_str().unwrap();
    let mut server = Tessera::start(&["--config", config_arg], &[]);
    assert!(
        !server.recent_log().contains("INFO"),
        "log = warn hides info lines:\n{}",
        server.recent_log()
    );

    write_config(
        &config,
        format!("{SMALL_STORE}log = \"info\"\nmax_connections = 5\nidle_timeout = \"7s\"\n"),
    );
    hangup(&server);
    // Logged at info: it appears only because the new filter is already in force. The
    // settings needing a restart are logged after it, one line each: wait for them too.
    wait_for_log(&server, "reloaded: log filter applied", 1);
    wait_for_log(&server, "setting=\"max_connections\"", 1);
    let log = wait_for_log(&server, "setting=\"idle_timeout\"", 1);
    assert!(
        log.contains("setting=\"max_connections\"") && log.contains("setting=\"idle_timeout\""),
        "{log}"
    );
    assert!(
        !log.contains("setting=\"max_size\""),
        "unchanged settings are not named:\n{log}"
    );
    // max_connections is still the started one (10000): six connections are served.
    let connections: Vec<_> = (0..6)
        .map(|_| http_client::Conn::open(server.addr()).unwrap())
        .collect();
    for mut conn in connections {
        assert_eq!(conn.request("GET", "/healthz", b"").unwrap().status, 200);
    }

    // A broken file: the reload fails, the running configuration stays, the server serves.
    write_config(&config, "log = [\n");
    hangup(&server);
    let log = wait_for_log(&server, "reload failed", 1);
    assert!(
        log.contains("tessera.toml"),
        "the error names the file:\n{log}"
    );
    http_client::assert_serving(server.addr());

    // Back to warn: this reload's own info line is already hidden. A second reload with a
    // changed setting logs a warning, which shows when both reloads are done.
    write_config(&config, format!("{SMALL_STORE}log = \"warn\"\n"));
    hangup(&server);
    write_config(
        &config,
        format!("{SMALL_STORE}log = \"warn\"\nmax_connections = 9\n"),
    );
    hangup(&server);
    let log = wait_for_log(&server, "setting=\"max_connections\"", 2);
    let after_last_info = log.rsplit("reload failed").next().unwrap();
    assert!(
        !after_last_info.contains("reloaded:"),
        "info lines must be hidden again at log = warn:\n{log}"
    );
    server.stop_expecting_exit_0();
}
