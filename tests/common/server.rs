//! The real `tessera` binary under test control: [`Tessera`] (a `tessera serve` process, started
//! through [`TesseraBuilder`]) and [`run_tessera`] / [`verify`] for one-shot commands.
//!
//! ```ignore
//! let mut server = Tessera::builder()
//!     .args(["--shards", "1"])
//!     .env("TESSERA_IDLE_TIMEOUT", "2s")
//!     .config("max_blob_size = \"1MiB\"\n")
//!     .grpc_listen()
//!     .start();
//! let response = http_client::get(server.addr(), "/healthz");
//! server.kill9();
//! server.restart();              // same data dir, same options, new ports
//! server.stop_expecting_exit_0();
//! ```
//!
//! The server prints exactly one line on stdout once every shard is open,
//! `tessera listening on ADDR[ grpc=ADDR] shards=N executors=M`, and logs to stderr. Both pipes
//! are drained for the whole life of the process; the log is quoted whenever something here
//! fails and can be asserted on ([`Tessera::recent_log`], [`Tessera::wait_for_log`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use super::process::{self, Process, WaitEnd};

/// How long `tessera serve` gets to print its ready line. Opening a fresh data directory takes
/// milliseconds; recovery after `kill -9` of a test-sized store well under a second; the bound is
/// for a debug build on a loaded 2-core machine.
pub const READY_TIMEOUT_MS: u64 = 30_000;

/// How long a stopped server gets to exit (SIGTERM drains for at most the drain timeout, which
/// tests set to a few seconds) before the test fails and the process is killed.
pub const EXIT_TIMEOUT_MS: u64 = 20_000;

/// How long a one-shot command (`tessera verify`, a `serve` that must refuse to start) may run.
pub const COMMAND_TIMEOUT_MS: u64 = 30_000;

/// The prefix of the ready line; the address follows it.
pub const READY_PREFIX: &str = "tessera listening on ";

/// The `tessera` binary cargo built for these tests.
pub fn tessera_binary() -> &'static str {
    env!("CARGO_BIN_EXE_tessera")
}

/// What the ready line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyLine {
    /// The main address (HTTP/1.1 and h2c gRPC).
    pub addr: SocketAddr,
    /// The `--grpc-listen` address, when one was asked for.
    pub grpc_addr: Option<SocketAddr>,
    /// The `s3.listen` address (the S3-only port), when one was configured.
    pub s3_addr: Option<SocketAddr>,
    pub shards: u32,
    pub executors: u32,
}

/// Parses `tessera listening on 127.0.0.1:PORT[ grpc=127.0.0.1:PORT][ s3=127.0.0.1:PORT] shards=N
/// executors=M`;
/// `None` for anything else, including port 0 and zero counts.
pub fn parse_ready_line(line: &str) -> Option<ReadyLine> {
    let mut words = line.strip_prefix(READY_PREFIX)?.split(' ').peekable();
    let addr: SocketAddr = words.next()?.parse().ok()?;
    let grpc_addr = match words.peek()?.strip_prefix("grpc=") {
        Some(grpc) => {
            let grpc: SocketAddr = grpc.parse().ok()?;
            words.next();
            Some(grpc)
        }
        None => None,
    };
    let s3_addr = match words.peek()?.strip_prefix("s3=") {
        Some(s3) => {
            let s3: SocketAddr = s3.parse().ok()?;
            words.next();
            Some(s3)
        }
        None => None,
    };
    let shards = words.next()?.strip_prefix("shards=")?.parse().ok()?;
    let executors = words.next()?.strip_prefix("executors=")?.parse().ok()?;
    let ports_known = addr.port() != 0
        && grpc_addr.is_none_or(|grpc| grpc.port() != 0)
        && s3_addr.is_none_or(|s3| s3.port() != 0);
    let complete = words.next().is_none() && ports_known && shards > 0 && executors > 0;
    complete.then_some(ReadyLine {
        addr,
        grpc_addr,
        s3_addr,
        shards,
        executors,
    })
}

/// How to start `tessera serve`; every option may be combined with every other. Defaults: a
/// fresh temporary data directory, `--listen 127.0.0.1:0`, no gRPC-only port, no config file,
/// no `TESSERA_*` variable of the test runner's environment.
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until .start()"]
pub struct TesseraBuilder {
    args: Vec<String>,
    env: Vec<(String, String)>,
    env_removed: Vec<String>,
    config: Option<String>,
    port: u16,
    grpc_port: Option<u16>,
    data_dir: Option<PathBuf>,
    small_store: bool,
    wrapper: Vec<String>,
    command_line: Option<Vec<String>>,
}

impl TesseraBuilder {
    /// One more command-line argument after `serve` and the harness's own flags (so a flag
    /// given here overrides nothing the harness sets: `--listen`, `--data`, `--grpc-listen` and
    /// `--config` have their own options).
    pub fn arg(mut self, arg: impl AsRef<str>) -> Self {
        self.args.push(arg.as_ref().to_string());
        self
    }

    /// More command-line arguments; see [`TesseraBuilder::arg`].
    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// An environment variable (e.g. `TESSERA_IDLE_TIMEOUT`, `RUST_BACKTRACE`).
    pub fn env(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        let (name, value) = (name.as_ref().to_string(), value.as_ref().to_string());
        self.env.push((name, value));
        self
    }

    /// More environment variables; see [`TesseraBuilder::env`].
    pub fn envs<N: AsRef<str>, V: AsRef<str>>(
        mut self,
        vars: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        for (name, value) in vars {
            self = self.env(name, value);
        }
        self
    }

    /// Removes a variable the test runner's environment would pass on (e.g. `NOTIFY_SOCKET`).
    pub fn env_remove(mut self, name: impl AsRef<str>) -> Self {
        self.env_removed.push(name.as_ref().to_string());
        self
    }

    /// A config file with this TOML text, written next to the data directory and passed as
    /// `--config FILE` ([`Tessera::config_path`]).
    pub fn config(mut self, toml: &str) -> Self {
        self.config = Some(toml.to_string());
        self
    }

    /// The main port (default 0: the kernel picks one, the ready line names it).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Adds `--grpc-listen 127.0.0.1:0`: a second port that speaks only gRPC
    /// ([`Tessera::grpc_addr`]).
    pub fn grpc_listen(self) -> Self {
        self.grpc_port(0)
    }

    /// Adds `--grpc-listen 127.0.0.1:PORT`.
    pub fn grpc_port(mut self, port: u16) -> Self {
        self.grpc_port = Some(port);
        self
    }

    /// Serves this data directory instead of a fresh temporary one (it is not deleted).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// A test-sized store: `--max-size 512MiB --segment-size 16MiB`, and `--executors 2` unless
    /// the arguments name their own executor count.
    pub fn small_store(mut self) -> Self {
        self.small_store = true;
        self
    }

    /// Runs this command line instead of `tessera serve` with the harness's flags (e.g. the
    /// `ExecStart` of an installed unit, with its own binary and config file); the port, data
    /// directory, gRPC, config and store options do not apply to it. Ready line, output,
    /// signals, restarts and the wrapper work as for any start.
    pub fn command_line<S: AsRef<str>>(
        mut self,
        program: impl AsRef<str>,
        args: impl IntoIterator<Item = S>,
    ) -> Self {
        let mut argv = vec![program.as_ref().to_string()];
        argv.extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self.command_line = Some(argv);
        self
    }

    /// Runs the server through a command prefix, e.g. `["prlimit", "--memlock=1048576"]`; the
    /// prefix must end up `exec`ing its arguments, so that the process the harness signals is
    /// the server.
    pub fn wrapper<S: AsRef<str>>(mut self, argv: impl IntoIterator<Item = S>) -> Self {
        self.wrapper = argv.into_iter().map(|a| a.as_ref().to_string()).collect();
        self
    }

    /// Starts the server and waits for its ready line; panics (quoting its log) if it does
    /// not print one within [`READY_TIMEOUT_MS`].
    pub fn start(self) -> Tessera {
        self.try_start().unwrap_or_else(|error| panic!("{error}"))
    }

    /// Like [`TesseraBuilder::start`], for a test in which the start may fail: `Err` says how
    /// (with the log) instead of a panic. A command that cannot be run at all still panics.
    pub fn try_start(self) -> Result<Tessera, StartError> {
        let temp = tempfile::Builder::new()
            .prefix("tessera-it-")
            .tempdir()
            .expect("create a temp dir");
        let data = (self.data_dir.clone()).unwrap_or_else(|| temp.path().join("data"));
        let config_path = self.config.as_ref().map(|toml| {
            let path = temp.path().join("tessera.toml");
            std::fs::write(&path, toml).expect("write the config file");
            path
        });
        let mut server = Tessera {
            ports: (self.port, self.grpc_port),
            options: self,
            temp,
            data,
            config_path,
            process: None,
            ready: None,
            earlier_logs: String::new(),
        };
        server.spawn()?;
        Ok(server)
    }
}

/// A start that printed no ready line.
#[derive(Debug)]
pub struct StartError {
    /// What went wrong, in a sentence.
    pub problem: String,
    /// The exit status, if the process exited.
    pub status: Option<ExitStatus>,
    /// The log (stderr) of that start.
    pub log: String,
    /// Everything else worth quoting (earlier starts' logs, sockets on a fixed port).
    pub context: String,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (exit status {:?}); log:\n{}{}",
            self.problem, self.status, self.log, self.context
        )
    }
}

impl std::error::Error for StartError {}

/// A `tessera serve` process (or a stopped one that can be restarted on the same data directory).
pub struct Tessera {
    options: TesseraBuilder,
    /// Main and gRPC-only port of the next start (0: any).
    ports: (u16, Option<u16>),
    temp: tempfile::TempDir,
    data: PathBuf,
    config_path: Option<PathBuf>,
    /// The current (or last) process; kept after it exits, for its output.
    process: Option<Process>,
    ready: Option<ReadyLine>,
    /// The stderr of every earlier process on this data directory.
    earlier_logs: String,
}

impl Tessera {
    /// The options of a new server; see [`TesseraBuilder`].
    pub fn builder() -> TesseraBuilder {
        TesseraBuilder::default()
    }

    /// Starts `tessera serve` on a fresh data directory with `args` after the harness's flags
    /// and the environment variables `env`: [`Tessera::builder`] for the common case.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Tessera {
        Tessera::builder()
            .args(args)
            .envs(env.iter().copied())
            .start()
    }

    /// The ready line of the current process.
    pub fn ready_line(&self) -> ReadyLine {
        self.ready.expect("the server printed its ready line")
    }

    /// The main address (from the ready line).
    pub fn addr(&self) -> SocketAddr {
        self.ready_line().addr
    }

    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// The value of the unlabelled metric `name` on `/metrics` (which must be open: no keys, or
    /// `auth.public_metrics`); panics, showing the page, if it is not there.
    pub fn metric(&self, name: &str) -> u64 {
        let page = super::http_client::get(self.addr(), "/metrics");
        let text = String::from_utf8_lossy(&page.body).into_owned();
        text.lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {name} on /metrics:\n{text}"))
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// `grpc://127.0.0.1:PORT` of the main port (which also speaks gRPC).
    pub fn grpc_url(&self) -> String {
        format!("grpc://{}", self.addr())
    }

    /// The `--grpc-listen` address, when the builder asked for one.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.ready_line().grpc_addr
    }

    /// The `s3.listen` address from the ready line (`s3=ADDR`), if the server has one.
    pub fn s3_addr(&self) -> Option<SocketAddr> {
        self.ready_line().s3_addr
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The config file written from [`TesseraBuilder::config`].
    pub fn config_path(&self) -> Option<&Path> {
        self.config_path.as_deref()
    }

    /// A scratch directory that lives as long as this server (for files a test needs).
    pub fn scratch_dir(&self) -> &Path {
        self.temp.path()
    }

    fn process(&self) -> &Process {
        self.process.as_ref().expect("the server was started")
    }

    fn process_mut(&mut self) -> &mut Process {
        self.process.as_mut().expect("the server was started")
    }

    /// The process id; panics once the process has been reaped (its pid may be reused).
    pub fn pid(&self) -> u32 {
        assert!(!self.process().reaped(), "the server is not running");
        self.process().pid()
    }

    /// Whether the current process is still alive.
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(Process::is_running)
    }

    /// Every line the current (or last) process printed on stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.process().stdout().lines()
    }

    /// The log (stderr) of the current (or last) process so far.
    pub fn recent_log(&self) -> String {
        self.process().stderr().text()
    }

    /// The log of every process started on this data directory.
    pub fn full_log(&self) -> String {
        format!("{}{}", self.earlier_logs, self.recent_log())
    }

    /// Waits (up to `timeout`) until a line of the current process's log contains `needle`;
    /// returns whether one did (false also when the process exited without logging it).
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let found = self
            .process()
            .stderr()
            .wait_for(timeout, |l| l.contains(needle));
        found.is_ok()
    }

    /// How many lines of the current process's log so far contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.process().stderr().count(needle)
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`) to the running server.
    pub fn signal(&self, signal: libc::c_int) {
        let sent = self.process().signal(signal);
        assert!(sent, "signal {signal} to a server that is not running");
    }

    /// Sends SIGTERM and returns at once (the test watches the drain itself).
    pub fn send_sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Sends SIGTERM and waits (bounded) for the exit; returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.send_sigterm();
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

    /// Waits (bounded by `timeout`) for the current process to exit and returns its status;
    /// panics (after killing it) when it does not exit in time. Its output is read to the end
    /// before this returns.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> ExitStatus {
        let process = self.process_mut();
        let Some(status) = process.wait_for_exit(timeout) else {
            process.kill9();
            process.settle_output();
            panic!(
                "tessera did not exit within {} ms; killed. log:\n{}",
                timeout.as_millis(),
                self.recent_log()
            );
        };
        process.settle_output();
        status
    }

    /// Crash: SIGKILL, then reap.
    pub fn kill9(&mut self) {
        if let Some(process) = self.process.as_mut() {
            process.kill9();
        }
    }

    /// Starts the server again on the same data directory with the same options, on the ports
    /// the builder asked for (by default new ones; a running server is killed first).
    pub fn restart(&mut self) {
        self.kill9();
        self.ports = (self.options.port, self.options.grpc_port);
        self.spawn().unwrap_or_else(|error| panic!("{error}"));
    }

    /// Like [`Tessera::restart`], with other extra arguments from now on.
    pub fn restart_with(&mut self, args: &[&str]) {
        self.options.args = args.iter().map(|a| a.to_string()).collect();
        self.restart();
    }

    /// Like [`Tessera::restart`], but on the ports the server had before, as a service manager
    /// restarting a configured server would.
    pub fn restart_on_same_port(&mut self) {
        self.kill9();
        let ready = self.ready_line();
        self.ports = (ready.addr.port(), ready.grpc_addr.map(|a| a.port()));
        self.spawn().unwrap_or_else(|error| panic!("{error}"));
    }

    fn command(&self) -> Command {
        let serve = match &self.options.command_line {
            Some(argv) => argv.clone(),
            None => self.serve_argv(),
        };
        let argv: Vec<&String> = self.options.wrapper.iter().chain(&serve).collect();
        let mut command = Command::new(argv[0]);
        command.args(&argv[1..]);
        without_inherited_settings(&mut command);
        for name in &self.options.env_removed {
            command.env_remove(name);
        }
        command.envs(self.options.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// `tessera serve` with the harness's flags, then the test's own.
    fn serve_argv(&self) -> Vec<String> {
        let (port, grpc_port) = self.ports;
        let mut argv = vec![tessera_binary().to_string(), "serve".to_string()];
        argv.extend(["--listen".to_string(), format!("127.0.0.1:{port}")]);
        argv.extend(["--data".to_string(), self.data.display().to_string()]);
        if let Some(grpc_port) = grpc_port {
            argv.extend([
                "--grpc-listen".to_string(),
                format!("127.0.0.1:{grpc_port}"),
            ]);
        }
        if let Some(config) = &self.config_path {
            argv.extend(["--config".to_string(), config.display().to_string()]);
        }
        if self.options.small_store {
            if !self.options.args.iter().any(|a| a == "--executors") {
                argv.extend(["--executors".to_string(), "2".to_string()]);
            }
            for flag in ["--max-size", "512MiB", "--segment-size", "16MiB"] {
                argv.push(flag.to_string());
            }
        }
        argv.extend(self.options.args.iter().cloned());
        argv
    }

    fn spawn(&mut self) -> Result<(), StartError> {
        if let Some(earlier) = self.process.take() {
            earlier.settle_output();
            self.earlier_logs.push_str(&earlier.stderr().text());
        }
        self.ready = None;
        // Not even started (a wrapper that is not installed): a broken test setup, never an
        // outcome a test may expect.
        let process = Process::spawn("tessera serve", self.command())
            .unwrap_or_else(|error| panic!("{error}"));
        let first_line = process
            .stdout()
            .wait_for_line(0, Duration::from_millis(READY_TIMEOUT_MS));
        self.process = Some(process);
        match first_line {
            Ok(line) => match parse_ready_line(&line) {
                Some(ready) => {
                    self.ready = Some(ready);
                    Ok(())
                }
                None => {
                    let problem = format!(
                        "the first stdout line of tessera serve is not a ready line: {line:?}"
                    );
                    Err(self.failed_start(problem, None))
                }
            },
            Err(end) => {
                let problem = format!("tessera serve printed no ready line ({end:?})");
                Err(self.failed_start(problem, Some(end)))
            }
        }
    }

    /// Everything known about a start that printed no ready line; the process is killed.
    fn failed_start(&mut self, problem: String, end: Option<WaitEnd>) -> StartError {
        let process = self.process_mut();
        let status = match end {
            // Closed stdout: the process is exiting; give it a moment to be reaped.
            Some(WaitEnd::Closed) => process.wait_for_exit(Duration::from_millis(EXIT_TIMEOUT_MS)),
            _ => process.try_exit(),
        };
        process.kill9();
        process.settle_output();
        let port = self.ports.0;
        let mut context = String::new();
        if !self.earlier_logs.is_empty() {
            context.push_str("\nlogs of the earlier starts on this data directory:\n");
            context.push_str(&self.earlier_logs);
        }
        if port != 0 && self.options.command_line.is_none() {
            context.push_str(&format!(
                "\nsockets on port {port}:\n{}",
                sockets_on_port(port)
            ));
        }
        StartError {
            problem,
            status,
            log: self.recent_log(),
            context,
        }
    }
}

impl Drop for Tessera {
    fn drop(&mut self) {
        // Before the temporary directory goes.
        self.kill9();
    }
}

/// `ss -tanp` lines that mention `port`, to explain a failed start on a fixed port.
fn sockets_on_port(port: u16) -> String {
    let sockets = Command::new("ss")
        .arg("-tanp")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let needle = format!(":{port} ");
    let lines: Vec<&str> = sockets.lines().filter(|l| l.contains(&needle)).collect();
    lines.join("\n")
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
    let mut command = Command::new(tessera_binary());
    without_inherited_settings(&mut command);
    command.args(args).envs(env.iter().copied());
    match process::run(&mut command, Duration::from_millis(COMMAND_TIMEOUT_MS)) {
        Ok(finished) => CommandOutput {
            status: finished.status,
            stdout: finished.stdout,
            stderr: finished.stderr,
        },
        Err(error) => panic!(
            "`tessera {}`: {}; stderr:\n{}",
            args.join(" "),
            error.problem,
            error.stderr
        ),
    }
}

/// `tessera verify --data DIR`.
pub fn verify(data: &Path) -> CommandOutput {
    let data = data.to_str().expect("a UTF-8 temp path");
    run_tessera(&["verify", "--data", data], &[])
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
