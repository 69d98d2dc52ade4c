//! Servers under test as child processes: the peers — nginx (configured for throughput) and
//! npm `turborepo-remote-cache` (the Turborepo remote cache most self-hosters run) — and Tessera
//! (`tessera serve`), started on free loopback ports, optionally confined to a CPU list with
//! `taskset`, health-checked, stopped by signal with the stop timed.

use crate::http1_response::{parse_response_head, Parsed};
use crate::limits::HEALTHZ_WAIT_SECS_MAX;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How often the health check is retried while a server starts: 1 ms, so a measured restart time
/// is accurate to about a millisecond.
pub const HEALTH_POLL_INTERVAL_MS: u64 = 1;

/// Longest a stopping server may take to exit before it is killed: 60 s (a drain plus a
/// checkpoint of a large store).
pub const STOP_WAIT_SECS_MAX: u64 = 60;

/// A free loopback port: bind port 0, read it, release it. The server started next binds it; the
/// window in which another process could take it is small, and a lost race fails loudly at start.
pub fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// Longest wait for a stopped server's port to become bindable again: 5 s. After `kill -9` an
/// io_uring server's listening sockets outlive the reaped process until the kernel tears its
/// rings down asynchronously (≈5 ms measured here), and Tessera refuses to start on a port that
/// still has a listener.
pub const PORT_RELEASE_WAIT_SECS_MAX: u64 = 5;

/// Waits until `address` can be bound (with `SO_REUSEADDR`, as a restarting server would);
/// returns how long that took.
pub fn wait_port_free(address: SocketAddr) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        // std's TcpListener sets SO_REUSEADDR on Unix, so TIME_WAIT leftovers do not count.
        match TcpListener::bind(address) {
            Ok(_) => return Ok(start.elapsed()),
            Err(error) if start.elapsed() > Duration::from_secs(PORT_RELEASE_WAIT_SECS_MAX) => {
                return Err(format!(
                    "{address} still in use {PORT_RELEASE_WAIT_SECS_MAX} s after the server exited: {error}"
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(HEALTH_POLL_INTERVAL_MS)),
        }
    }
}

/// One blocking `GET path` with a short timeout; returns the status.
pub fn http_status(address: SocketAddr, path: &str) -> std::io::Result<u16> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Ok(Parsed::Complete(head)) = parse_response_head(&buffer) {
            return Ok(head.status);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 || buffer.len() > crate::limits::RESPONSE_HEAD_BYTES_MAX {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "no valid response head",
            ));
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

pub struct ServerProcess {
    pub name: String,
    pub address: SocketAddr,
    health_path: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl ServerProcess {
    pub fn spawn(
        name: &str,
        command: &mut Command,
        address: SocketAddr,
        health_path: &str,
        log: &Path,
    ) -> Result<ServerProcess, String> {
        let log_file =
            std::fs::File::create(log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let log_err = log_file.try_clone().map_err(|e| e.to_string())?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("starting {name} ({command:?}): {e}"))?;
        Ok(ServerProcess {
            name: name.to_string(),
            address,
            health_path: health_path.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Polls the health path until it answers 200; returns how long that took from the call.
    /// Fails if the process exits or HEALTHZ_WAIT_SECS_MAX passes.
    pub fn wait_healthy(&mut self) -> Result<Duration, String> {
        let start = Instant::now();
        let limit = Duration::from_secs(HEALTHZ_WAIT_SECS_MAX);
        loop {
            if let Ok(200) = http_status(self.address, &self.health_path) {
                return Ok(start.elapsed());
            }
            let child = self.child.as_mut().ok_or("server already stopped")?;
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "{} exited with {status} before answering {} (log: {})",
                    self.name,
                    self.health_path,
                    self.log.display()
                ));
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "{} did not answer {} 200 within {limit:?} (log: {})",
                    self.name,
                    self.health_path,
                    self.log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(HEALTH_POLL_INTERVAL_MS));
        }
    }

    /// Waits until the server's log (stdout and stderr) has a line starting with `prefix`;
    /// returns how long that took from the call. Fails if the process exits or
    /// HEALTHZ_WAIT_SECS_MAX passes. Tessera prints `tessera listening on …` only once every
    /// executor has opened its shards, while `/healthz` can already answer from an executor whose
    /// own shards are open: the later of the two is when every key can be served.
    pub fn wait_log_line(&mut self, prefix: &str) -> Result<Duration, String> {
        let start = Instant::now();
        let limit = Duration::from_secs(HEALTHZ_WAIT_SECS_MAX);
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text.lines().any(|line| line.starts_with(prefix)) {
                return Ok(start.elapsed());
            }
            let child = self.child.as_mut().ok_or("server already stopped")?;
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "{} exited with {status} before printing `{prefix}` (log: {})",
                    self.name,
                    self.log.display()
                ));
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "{} did not print `{prefix}` within {limit:?} (log: {})",
                    self.name,
                    self.log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(HEALTH_POLL_INTERVAL_MS));
        }
    }

    /// Sends `signal` and waits for the process to exit; returns the time to exit and whether it
    /// exited successfully. A process still alive after STOP_WAIT_SECS_MAX is killed (error).
    pub fn stop(&mut self, signal: i32) -> Result<(Duration, bool), String> {
        let Some(mut child) = self.child.take() else {
            return Err("server already stopped".into());
        };
        let start = Instant::now();
        send_signal(child.id(), signal)?;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Ok((start.elapsed(), status.success())),
                Ok(None) if start.elapsed() > Duration::from_secs(STOP_WAIT_SECS_MAX) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "{} ignored signal {signal} for {STOP_WAIT_SECS_MAX} s and was killed",
                        self.name
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => return Err(format!("waiting for {}: {e}", self.name)),
            }
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // A server that already exited (e.g. failed to start) is only reaped.
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return;
            }
        }
        // SIGTERM first so that nginx's master takes its workers down with it.
        if self.child.is_some() && self.stop(libc::SIGTERM).is_err() {
            eprintln!("tessera-bench: {} did not stop cleanly", self.name);
        }
    }
}

fn send_signal(pid: u32, signal: i32) -> Result<(), String> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    // SAFETY: kill(2) takes two integers and touches no memory of ours; `pid` is our own child,
    // which we have not reaped yet, so the pid cannot have been reused by another process.
    let result = unsafe { libc::kill(pid, signal) };
    if result == 0 {
        Ok(())
    } else {
        Err(format!(
            "kill({pid}, {signal}): {}",
            std::io::Error::last_os_error()
        ))
    }
}

/// Largest number of threads of one server process read by [`cpu_time_ns`] (nginx workers are
/// single-threaded; Tessera has one thread per executor plus a few; Node.js about ten).
pub const SERVER_TASKS_MAX: usize = 4096;

/// CPU time used so far by process `pid`: every thread of it and of its direct child processes
/// (nginx's workers), from `/proc/PID/task/TID/schedstat` (nanoseconds of run time). `None` if
/// the process is gone or /proc lacks schedstat.
pub fn cpu_time_ns(pid: u32) -> Option<u64> {
    let threads = |pid: u32| -> Option<Vec<u64>> {
        let dir = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        let tids = dir
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .take(SERVER_TASKS_MAX)
            .collect();
        Some(tids)
    };
    let run_ns = |pid: u32, tid: u64| -> Option<u64> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).ok()?;
        text.split_whitespace().next()?.parse().ok()
    };
    let mut total = 0u64;
    let mut children = Vec::new();
    for tid in threads(pid)? {
        total += run_ns(pid, tid)?;
        if let Ok(list) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/children")) {
            children.extend(
                list.split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    for child in children {
        // A worker that exits between the two reads simply stops counting.
        for tid in threads(child).unwrap_or_default() {
            total += run_ns(child, tid).unwrap_or(0);
        }
    }
    Some(total)
}

/// Checks a `taskset -c` CPU list (`1`, `1-3`, `0,2-3`) and returns how many CPUs it names.
pub fn count_cpus(list: &str) -> Result<usize, String> {
    let bad = || format!("CPU list `{list}` is not like 1, 1-3 or 0,2-3");
    let number = |text: &str| text.parse::<usize>().map_err(|_| bad());
    let mut count = 0;
    for part in list.split(',') {
        count += match part.split_once('-') {
            None => {
                number(part)?;
                1
            }
            Some((first, last)) => {
                let (first, last) = (number(first)?, number(last)?);
                if last < first {
                    return Err(bad());
                }
                last - first + 1
            }
        };
    }
    Ok(count)
}

/// A command running `program`, confined to `cpus` with `taskset -c` when given (the program
/// and every thread it starts inherit the mask; Tessera sizes its executors from it).
pub fn server_command(program: &str, cpus: Option<&str>) -> Command {
    match cpus {
        None => Command::new(program),
        Some(cpus) => {
            let mut command = Command::new("taskset");
            command.arg("-c").arg(cpus).arg(program);
            command
        }
    }
}

/// nginx configured as a throughput-tuned static file + WebDAV PUT server over `root`, serving
/// the same `/cas/<sha256>` paths as Tessera.
pub fn nginx_config(dir: &Path, port: u16, workers: usize) -> String {
    let d = dir.display();
    format!(
        "# Generated by tessera-bench compare: nginx as a build-cache peer (static GET + WebDAV PUT).
daemon off;
master_process on;
user root;
worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; multi_accept on; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 120s;
    # Keep a benchmark connection open for the whole run (nginx's default closes after 1000).
    keepalive_requests 100000000;
    # Bodies up to 1 MiB stay in memory; larger ones are spooled to client_body_temp_path.
    client_body_buffer_size 1m;
    client_max_body_size 128m;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type application/octet-stream;
    open_file_cache max=100000 inactive=60s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {d}/root;
        location / {{
            dav_methods PUT;
            create_full_put_path on;
            dav_access user:rw;
        }}
    }}
}}
"
    )
}

/// Starts nginx in `dir` (config, temp paths and document root all inside it), on `cpus` if
/// given.
pub fn start_nginx(
    nginx_bin: &str,
    dir: &Path,
    workers: usize,
    cpus: Option<&str>,
) -> Result<ServerProcess, String> {
    let port = free_port()?;
    std::fs::create_dir_all(dir.join("root"))
        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    std::fs::write(dir.join("root/healthz"), "ok").map_err(|e| e.to_string())?;
    let config = dir.join("nginx.conf");
    std::fs::write(&config, nginx_config(dir, port, workers)).map_err(|e| e.to_string())?;
    let mut command = server_command(nginx_bin, cpus);
    command.arg("-p").arg(dir).arg("-c").arg(&config);
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut server = ServerProcess::spawn(
        "nginx",
        &mut command,
        address,
        "/healthz",
        &dir.join("nginx.log"),
    )?;
    server.wait_healthy()?;
    Ok(server)
}

/// Where `npm i turborepo-remote-cache` puts the server's entry point, relative to the
/// directory it ran in; `tests/install-deps.sh` installs it under /opt/tessera-tests/node-clients.
pub const TURBO_REMOTE_CACHE_JS: &str = "node_modules/turborepo-remote-cache/dist/cli.js";

/// The default `--turbo-cache-js`.
pub const TURBO_REMOTE_CACHE_JS_DEFAULT: &str =
    "/opt/tessera-tests/node-clients/node_modules/turborepo-remote-cache/dist/cli.js";

/// Starts npm `turborepo-remote-cache` (`node CLI_JS`) with local storage in `dir/store`,
/// accepting `token`, on `cpus` if given. Configured for throughput the way nginx is: log level
/// `warn` (its default `info` writes a JSON line per request to stdout). Ready when
/// `/v8/artifacts/status` answers 200.
pub fn start_turbo_remote_cache(
    node_bin: &str,
    cli_js: &str,
    dir: &Path,
    token: &str,
    cpus: Option<&str>,
) -> Result<ServerProcess, String> {
    if !Path::new(cli_js).is_file() {
        return Err(format!(
            "{cli_js} not found: install it with `npm i turborepo-remote-cache@2.12.0` (it lands in              ./{TURBO_REMOTE_CACHE_JS}) and pass --turbo-cache-js, or run bench/turbo-compare.sh"
        ));
    }
    let port = free_port()?;
    let store = dir.join("store");
    std::fs::create_dir_all(&store).map_err(|e| format!("creating {}: {e}", store.display()))?;
    let mut command = server_command(node_bin, cpus);
    command
        .arg(cli_js)
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("STORAGE_PROVIDER", "local")
        .env("STORAGE_PATH", &store)
        .env("STORAGE_PATH_USE_TMP_FOLDER", "false")
        .env("TURBO_TOKEN", token)
        .env("LOG_LEVEL", "warn")
        .env("NODE_ENV", "production");
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut server = ServerProcess::spawn(
        "turbo-rc",
        &mut command,
        address,
        "/v8/artifacts/status",
        &dir.join("turbo-remote-cache.log"),
    )?;
    server.wait_healthy()?;
    Ok(server)
}

/// The command line of the Tessera CLI, on `cpus` if given:
/// `tessera serve --listen 127.0.0.1:PORT --data DIR --max-size SIZE --shards N`.
pub fn tessera_command(
    tessera_bin: &str,
    port: u16,
    data: &Path,
    max_size: &str,
    shards: usize,
    cpus: Option<&str>,
) -> Command {
    let mut command = server_command(tessera_bin, cpus);
    command
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data")
        .arg(data)
        .arg("--max-size")
        .arg(max_size)
        .arg("--shards")
        .arg(shards.to_string());
    command
}

pub fn spawn_tessera(
    tessera_bin: &str,
    port: u16,
    data: &Path,
    max_size: &str,
    shards: usize,
    cpus: Option<&str>,
    log: &Path,
) -> Result<ServerProcess, String> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    ServerProcess::spawn(
        "tessera",
        &mut tessera_command(tessera_bin, port, data, max_size, shards, cpus),
        address,
        "/healthz",
        log,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_config_has_the_throughput_settings_and_dav() {
        let text = nginx_config(Path::new("/tmp/x"), 8123, 2);
        for needle in [
            "worker_processes 2;",
            "listen 127.0.0.1:8123",
            "sendfile on;",
            "access_log off;",
            "dav_methods PUT;",
            "create_full_put_path on;",
            "root /tmp/x/root;",
            "keepalive_requests 100000000;",
        ] {
            assert!(text.contains(needle), "missing `{needle}`");
        }
        assert_eq!(text.matches('{').count(), text.matches('}').count());
    }

    #[test]
    fn tessera_command_follows_the_planned_cli() {
        let command = tessera_command("tessera", 9000, Path::new("/d"), "4GiB", 2, None);
        let args: Vec<_> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "serve",
                "--listen",
                "127.0.0.1:9000",
                "--data",
                "/d",
                "--max-size",
                "4GiB",
                "--shards",
                "2"
            ]
        );
    }

    #[test]
    fn servers_can_be_confined_to_cpus() {
        let command = tessera_command("tessera", 9000, Path::new("/d"), "1GiB", 1, Some("1"));
        assert_eq!(command.get_program(), "taskset");
        let args: Vec<_> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args[..4], ["-c", "1", "tessera", "serve"]);
        assert_eq!(count_cpus("1"), Ok(1));
        assert_eq!(count_cpus("1-3"), Ok(3));
        assert_eq!(count_cpus("0,2-3,7"), Ok(4));
        for bad in ["", "a", "3-1", "1,", "-2"] {
            assert!(count_cpus(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpu_time_counts_the_threads_of_children() {
        // A shell whose child spins: the shell itself sleeps in `wait`, so the CPU time is the
        // child's, and it only shows in the parent's total if children are followed.
        let mut parent = Command::new("sh")
            .args(["-c", "(while :; do :; done) & wait"])
            .spawn()
            .unwrap();
        let pid = parent.id();
        let deadline = Instant::now() + Duration::from_secs(20);
        let child = loop {
            let list = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"));
            if let Some(child) = list.unwrap_or_default().split_whitespace().next() {
                break child.parse::<u32>().unwrap();
            }
            assert!(Instant::now() < deadline, "the shell started no child");
            std::thread::sleep(Duration::from_millis(5));
        };
        let total_before = cpu_time_ns(pid).expect("schedstat readable");
        let child_before = cpu_time_ns(child).unwrap();
        // However loaded the machine, wait until the child has spun for 20 ms.
        let child_after = loop {
            let now = cpu_time_ns(child).unwrap();
            if now - child_before >= 20_000_000 || Instant::now() > deadline {
                break now;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let total_after = cpu_time_ns(pid).unwrap();
        let _ = Command::new("kill").arg(child.to_string()).status();
        let _ = parent.kill();
        let _ = parent.wait();
        let child_used = child_after - child_before;
        assert!(child_used >= 20_000_000, "the child used {child_used} ns");
        assert!(
            total_after - total_before >= child_used,
            "parent total grew {} ns, its child alone {child_used} ns",
            total_after - total_before
        );
        assert_eq!(cpu_time_ns(u32::MAX), None);
    }

    #[test]
    fn a_missing_turbo_remote_cache_names_the_install_command() {
        let dir = std::env::temp_dir().join(format!("tessera-bench-trc-{}", std::process::id()));
        let Err(error) = start_turbo_remote_cache("node", "/nonexistent/cli.js", &dir, "t", None)
        else {
            panic!("started without its entry point");
        };
        assert!(error.contains("npm i turborepo-remote-cache"), "{error}");
    }

    #[test]
    fn port_is_free_once_its_listener_is_gone_and_busy_while_it_listens() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let busy = std::thread::spawn(move || {
            wait_port_free(address).unwrap();
            std::time::Instant::now()
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(!busy.is_finished(), "a listening port was reported free");
        let dropped = std::time::Instant::now();
        drop(listener);
        // Causality, not a duration: the port is reported free only after the listener went.
        // (A wait measured inside the thread was under 50 ms when the thread started late.)
        let freed = busy.join().unwrap();
        assert!(
            freed >= dropped,
            "reported free before the listener was dropped"
        );
    }

    #[test]
    fn health_check_and_stop_against_the_test_server() {
        let server = crate::test_server::TestServer::start("127.0.0.1:0").unwrap();
        assert_eq!(http_status(server.address(), "/healthz").unwrap(), 200);
        assert_eq!(http_status(server.address(), "/missing").unwrap(), 404);
        let mut sleeper = Command::new("sleep");
        sleeper.arg("30");
        let log =
            std::env::temp_dir().join(format!("tessera-bench-sleep-{}.log", std::process::id()));
        let mut process =
            ServerProcess::spawn("sleep", &mut sleeper, server.address(), "/healthz", &log)
                .unwrap();
        assert!(process.wait_healthy().is_ok());
        // `sleep` prints nothing: the wait ends with an error once the process is gone.
        let mut silent = Command::new("true");
        let log_true =
            std::env::temp_dir().join(format!("tessera-bench-true-{}.log", std::process::id()));
        let mut gone =
            ServerProcess::spawn("true", &mut silent, server.address(), "/healthz", &log_true)
                .unwrap();
        let error = gone.wait_log_line("tessera listening on").unwrap_err();
        assert!(error.contains("exited"), "{error}");
        let mut echo = Command::new("sh");
        echo.args([
            "-c",
            "echo 'tessera listening on 127.0.0.1:1 shards=1'; exec sleep 30",
        ]);
        let mut printer =
            ServerProcess::spawn("sh", &mut echo, server.address(), "/healthz", &log_true).unwrap();
        assert!(printer.wait_log_line("tessera listening on").is_ok());
        printer.stop(libc::SIGKILL).unwrap();
        let _ = std::fs::remove_file(log_true);
        let (took, success) = process.stop(libc::SIGKILL).unwrap();
        assert!(!success && took < Duration::from_secs(STOP_WAIT_SECS_MAX));
        let _ = std::fs::remove_file(log);
    }
}
