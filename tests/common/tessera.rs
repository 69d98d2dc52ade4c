//! The real `tessera` binary under test control: `tessera serve` on port 0 with a temporary data
//! directory, its port learnt from the ready line, stopped with SIGTERM (exit status checked),
//! killed with SIGKILL and restarted on the same data directory.
//!
//! ```ignore
//! let mut server = tessera::Tessera::start(&["--shards", "1"], &[("TESSERA_IDLE_TIMEOUT", "2s")]);
//! let response = http_client::get(server.addr(), "/healthz");
//! server.kill9();
//! server.restart();              // same data dir, same arguments, a new port
//! server.stop_expecting_exit_0();
//! ```
//!
//! The server prints exactly one line on stdout once every shard is open:
//! `tessera listening on 127.0.0.1:PORT shards=N executors=M`. Its stderr (the log) goes to a
//! file next to the data directory and is quoted whenever something here fails.

#![allow(dead_code)] // Each test crate that includes this module uses a different part of it.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long `tessera serve` gets to print its ready line. Opening a fresh data directory takes
/// milliseconds; recovery after `kill -9` of a test-sized store well under a second; the bound is
/// for a debug build on a loaded 2-core machine.
pub const READY_TIMEOUT_MS: u64 = 30_000;

/// How long a stopped server gets to exit (SIGTERM drains for at most the drain timeout, which
/// tests set to a few seconds) before the test fails and the process is killed.
pub const EXIT_TIMEOUT_MS: u64 = 20_000;

/// How long a one-shot command (`tessera verify`, a `serve` that must refuse to start) may run.
pub const COMMAND_TIMEOUT_MS: u64 = 30_000;

/// Poll interval while waiting for a process to exit.
const POLL_INTERVAL_MS: u64 = 20;

/// The prefix of the ready line; the address follows it.
pub const READY_PREFIX: &str = "tessera listening on ";

/// A `tessera serve` process (or a stopped one that can be restarted on the same data directory).
pub struct Tessera {
    temp: tempfile::TempDir,
    data: PathBuf,
    log: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    addr: SocketAddr,
    /// Every stdout line of the current process, in order (the ready line first).
    stdout_lines: Arc<Mutex<Vec<String>>>,
    /// Length of the log file when the current process started.
    log_offset: u64,
}

/// The `tessera` binary cargo built for these tests.
pub fn tessera_binary() -> &'static str {
    env!("CARGO_BIN_EXE_tessera")
}

impl Tessera {
    /// Starts `tessera serve --listen 127.0.0.1:0 --data <fresh temp dir> <extra_args>` with the
    /// extra environment `env`; panics (quoting the log) unless it prints its ready line in time.
    pub fn start(extra_args: &[&str], env: &[(&str, &str)]) -> Tessera {
        let temp = tempfile::Builder::new()
            .prefix("tessera-it-")
            .tempdir()
            .expect("create a temp dir");
        let data = temp.path().join("data");
        let log = temp.path().join("tessera.log");
        let mut server = Tessera {
            temp,
            data,
            log,
            args: extra_args.iter().map(|a| a.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stdout_lines: Arc::new(Mutex::new(Vec::new())),
            log_offset: 0,
        };
        server.spawn(0);
        server
    }

    /// The address the server listens on (from its ready line).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The `s3.listen` address from the ready line (`s3=ADDR`), if the server has one.
    pub fn s3_addr(&self) -> Option<SocketAddr> {
        let lines = self.stdout_lines();
        let ready = lines.iter().find(|l| l.starts_with(READY_PREFIX))?;
        ready
            .split(' ')
            .find_map(|w| w.strip_prefix("s3="))
            .and_then(|a| a.parse().ok())
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// A scratch directory that lives as long as this server (for files a test needs).
    pub fn scratch_dir(&self) -> &Path {
        self.temp.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    /// Whether the current process is still alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    /// Every line the current (or last) process printed on stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout_lines.lock().expect("stdout lines").clone()
    }

    /// The server's log (stderr) since the current process started.
    pub fn recent_log(&self) -> String {
        let bytes = fs::read(&self.log).unwrap_or_default();
        let start = usize::try_from(self.log_offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    /// The whole log of every process started on this data directory.
    pub fn full_log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Sends SIGTERM and waits (bounded) for the exit; returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_for_exit(Duration::from_millis(EXIT_TIMEOUT_MS))
    }

    /// SIGTERM; panics unless the server exits with status 0 (a clean drain).
    pub fn stop_expecting_exit_0(&mut self) {
        let status = self.stop();
        assert!(
            status.success(),
            "tessera exited with {status} after SIGTERM; log:\n{}",
            self.recent_log()
        );
    }

    /// Sends SIGTERM and returns at once (the test watches the drain itself).
    pub fn send_sigterm(&mut self) {
        self.signal("TERM");
    }

    /// Waits (bounded by `timeout`) for the current process to exit and returns its status;
    /// panics (after killing it) when it does not exit in time.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("the server runs");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "tessera did not exit within {} ms; killed. log:\n{}",
                    timeout.as_millis(),
                    self.recent_log()
                );
            }
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
        }
    }

    /// Crash: SIGKILL, then reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            child.wait().expect("reap the killed server");
        }
    }

    /// Starts the server again on the same data directory with the same arguments, on a new
    /// port (a running server is killed first).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn(0);
    }

    /// Like [`Tessera::restart`], with other extra arguments from now on.
    pub fn restart_with(&mut self, extra_args: &[&str]) {
        self.args = extra_args.iter().map(|a| a.to_string()).collect();
        self.restart();
    }

    /// Like [`Tessera::restart`], but on the port the server had before, as a service manager
    /// restarting a configured server would.
    pub fn restart_on_same_port(&mut self) {
        self.kill9();
        let port = self.addr.port();
        self.spawn(port);
    }

    fn spawn(&mut self, port: u16) {
        self.log_offset = fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the server log");
        let mut command = Command::new(tessera_binary());
        without_inherited_settings(&mut command);
        command
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data")
            .arg(&self.data)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        let mut child = command.spawn().expect("spawn tessera serve");
        let stdout = child.stdout.take().expect("piped stdout");
        self.child = Some(child);
        self.stdout_lines = Arc::new(Mutex::new(Vec::new()));
        let lines = self.stdout_lines.clone();
        let (ready_tx, ready_rx) = mpsc::channel::<String>();
        // Reads stdout until the process closes it, so that the pipe never fills.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                lines.lock().expect("stdout lines").push(line.clone());
                let _ = ready_tx.send(line);
            }
        });
        match ready_rx.recv_timeout(Duration::from_millis(READY_TIMEOUT_MS)) {
            Ok(line) => self.addr = parse_ready_line(&line).unwrap_or_else(|| {
                panic!(
                    "the first stdout line of tessera serve is not a ready line: {line:?}\nlog:\n{}",
                    self.recent_log()
                )
            }),
            Err(error) => {
                let status = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                self.kill9();
                let sockets = Command::new("ss")
                    .arg("-tanp")
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                let port_sockets: Vec<&str> = sockets
                    .lines()
                    .filter(|line| port != 0 && line.contains(&format!(":{port} ")))
                    .collect();
                panic!(
                    "tessera serve printed no ready line ({error:?}; exit status {status:?}); \
                     log of every start on this data directory:\n{}\nsockets on port {port}:\n{}",
                    self.full_log(),
                    port_sockets.join("\n")
                );
            }
        }
    }

    fn signal(&self, signal: &str) {
        let Some(child) = self.child.as_ref() else {
            panic!("SIG{signal} to a server that is not running");
        };
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", child.id());
    }
}

impl Drop for Tessera {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The address in `tessera listening on 127.0.0.1:PORT [grpc=ADDR] [s3=ADDR] shards=N
/// executors=M`.
pub fn parse_ready_line(line: &str) -> Option<SocketAddr> {
    let rest = line.strip_prefix(READY_PREFIX)?;
    let mut words = rest
        .split(' ')
        .filter(|w| !w.starts_with("grpc=") && !w.starts_with("s3="));
    let addr: SocketAddr = words.next()?.parse().ok()?;
    let shards = words.next()?.strip_prefix("shards=")?.parse::<u32>().ok()?;
    let executors = words
        .next()?
        .strip_prefix("executors=")?
        .parse::<u32>()
        .ok()?;
    let complete = words.next().is_none() && addr.port() != 0 && shards > 0 && executors > 0;
    complete.then_some(addr)
}

/// The outcome of a one-shot `tessera` command.
#[derive(Debug)]
pub struct CommandOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `tessera <args>` with extra environment `env` to completion (bounded by
/// [`COMMAND_TIMEOUT_MS`]; a command still running then is killed and the test fails).
pub fn run_tessera(args: &[&str], env: &[(&str, &str)]) -> CommandOutput {
    let dir = tempfile::Builder::new()
        .prefix("tessera-cmd-")
        .tempdir()
        .expect("create a temp dir");
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let mut command = Command::new(tessera_binary());
    without_inherited_settings(&mut command);
    let mut child = command
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawn tessera");
    let deadline = Instant::now() + Duration::from_millis(COMMAND_TIMEOUT_MS);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`tessera {}` did not exit within {COMMAND_TIMEOUT_MS} ms; stderr:\n{}",
                args.join(" "),
                fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    };
    CommandOutput {
        status,
        stdout: fs::read_to_string(&stdout_path).unwrap_or_default(),
        stderr: fs::read_to_string(&stderr_path).unwrap_or_default(),
    }
}

/// Removes the `TESSERA_*` variables the test runner inherited (a developer's exported
/// `TESSERA_MAX_SIZE` must not change what a test sees); a test passes its own explicitly.
fn without_inherited_settings(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TESSERA_") {
            command.env_remove(name);
        }
    }
}

/// `tessera verify --data DIR`.
pub fn verify(data: &Path) -> CommandOutput {
    let data = data.to_str().expect("a UTF-8 temp path");
    run_tessera(&["verify", "--data", data], &[])
}
