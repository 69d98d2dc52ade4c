//! A third-party server (nginx, BuildGrid) under test control: started on a free loopback port,
//! waited for until it accepts connections, stopped cleanly, killed with SIGKILL and restarted
//! on the same port. Tessera itself is started by [`super::server::Tessera`], which learns its
//! port from its ready line instead.
//!
//! ```ignore
//! let mut server = ExternalServer::start_on_free_port(
//!     "nginx", &[error_log.clone()], |port| { let mut c = Command::new("nginx"); /* … */ Ok(c) },
//! )?;
//! server.kill9()?;
//! server.restart()?; // same command, same port
//! ```
//!
//! Servers that cannot bind port 0 themselves get a port picked by binding a std listener to
//! port 0 and releasing it. Another process can take it in between; the server then fails to
//! bind, which is recognised from its output and answered with a fresh port.

use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::{Process, POLL_INTERVAL_MS};

/// Fresh ports tried when another process grabs the picked port before the server binds it.
pub const START_ATTEMPTS_MAX: u32 = 5;

/// How long a server gets to accept connections after it was started. BuildGrid, a Python
/// server, takes about 3 s on an idle 2-core machine and took over 30 s with a load average of
/// 14 on it (most of it importing modules); nginx takes a few milliseconds. The bound only
/// catches a start that hangs.
pub const START_TIMEOUT_MS: u64 = 90_000;

/// How long a stopped server gets to exit before it is killed.
pub const STOP_TIMEOUT_MS: u64 = 10_000;

/// Log lines by which a server says the port was taken (nginx, gRPC core).
const ADDRESS_IN_USE_MARKERS: [&str; 2] = ["Address already in use", "Failed to bind"];

/// Builds the command line of a server for a given port.
pub type CommandForPort = Box<dyn Fn(u16) -> io::Result<Command>>;

/// A running (or stopped, restartable) server process.
pub struct ExternalServer {
    name: String,
    command_for_port: CommandForPort,
    port: u16,
    process: Option<Process>,
    /// Log files the server writes itself (besides its stdout and stderr, which are drained).
    log_files: Vec<PathBuf>,
    /// Byte lengths of `log_files` at the last start: a failure is diagnosed from that start's
    /// lines.
    log_offsets: Vec<u64>,
}

impl ExternalServer {
    /// Starts the server on a free loopback port; see the module docs for port selection.
    pub fn start_on_free_port(
        name: &str,
        log_files: &[PathBuf],
        command_for_port: impl Fn(u16) -> io::Result<Command> + 'static,
    ) -> io::Result<Self> {
        let mut server = Self {
            name: name.to_string(),
            command_for_port: Box::new(command_for_port),
            port: free_port()?,
            process: None,
            log_files: log_files.to_vec(),
            log_offsets: Vec::new(),
        };
        let mut attempts = 1;
        loop {
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(error)
                    if error.kind() == io::ErrorKind::AddrInUse
                        && attempts < START_ATTEMPTS_MAX =>
                {
                    attempts += 1;
                    server.port = free_port()?;
                }
                Err(error) => return Err(error),
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Clean stop with `signal` (e.g. `libc::SIGTERM`, or `libc::SIGQUIT` for nginx), waiting
    /// for the exit.
    pub fn stop_with(&mut self, signal: libc::c_int) -> io::Result<()> {
        self.signal_and_wait(signal)
    }

    /// Crash: SIGKILL, then reaps the process.
    pub fn kill9(&mut self) -> io::Result<()> {
        self.signal_and_wait(libc::SIGKILL)
    }

    /// Starts the server again on the same port (after a stop or `kill9`; a running server is
    /// stopped with SIGTERM first).
    pub fn restart(&mut self) -> io::Result<()> {
        self.signal_and_wait(libc::SIGTERM)?;
        self.spawn()
    }

    /// What the server wrote (stdout, stderr, its log files) since it was last started.
    pub fn recent_logs(&self) -> String {
        let mut text = String::new();
        if let Some(process) = &self.process {
            text.push_str(&process.stdout().text());
            text.push_str(&process.stderr().text());
        }
        for (path, offset) in self.log_files.iter().zip(&self.log_offsets) {
            let bytes = fs::read(path).unwrap_or_default();
            let start = usize::try_from(*offset)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            text.push_str(&String::from_utf8_lossy(&bytes[start..]));
        }
        text
    }

    fn spawn(&mut self) -> io::Result<()> {
        self.log_offsets = self
            .log_files
            .iter()
            .map(|path| fs::metadata(path).map(|m| m.len()).unwrap_or(0))
            .collect();
        let command = (self.command_for_port)(self.port)?;
        self.process = Some(Process::spawn(&self.name, command)?);
        self.wait_until_listening()
    }

    fn wait_until_listening(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
        let address = SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port);
        loop {
            let process = self.process.as_mut().expect("spawn sets the process");
            if let Some(status) = process.try_exit() {
                process.settle_output();
                let log = self.recent_logs();
                self.process = None;
                let kind = if ADDRESS_IN_USE_MARKERS.iter().any(|m| log.contains(m)) {
                    io::ErrorKind::AddrInUse
                } else {
                    io::ErrorKind::Other
                };
                let message = format!("{} exited with {status}:\n{log}", self.name);
                return Err(io::Error::new(kind, message));
            }
            // The process itself must own the listening socket: a connect alone would also
            // succeed against another process squatting on the port.
            if listens_on(process.pid(), self.port) && TcpStream::connect(address).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                process.kill9();
                let message = format!(
                    "{} did not listen on {address} within {START_TIMEOUT_MS} ms:\n{}",
                    self.name,
                    self.recent_logs()
                );
                return Err(io::Error::new(io::ErrorKind::TimedOut, message));
            }
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
        }
    }

    fn signal_and_wait(&mut self, signal: libc::c_int) -> io::Result<()> {
        let Some(process) = self.process.as_mut() else {
            return Ok(());
        };
        if !process.signal(signal) {
            return Ok(()); // already exited and reaped
        }
        if process
            .wait_for_exit(Duration::from_millis(STOP_TIMEOUT_MS))
            .is_none()
        {
            process.kill9();
            let message = format!(
                "{} ignored signal {signal} for {STOP_TIMEOUT_MS} ms; killed",
                self.name
            );
            return Err(io::Error::new(io::ErrorKind::TimedOut, message));
        }
        Ok(())
    }
}

/// Whether process `pid` holds a TCP socket listening on `port` (Linux: the LISTEN entries of
/// `/proc/net/tcp{,6}` matched by inode against the process's `/proc/PID/fd` links).
pub fn listens_on(pid: u32, port: u16) -> bool {
    const TCP_LISTEN_STATE: &str = "0A";
    let mut listening_inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        // Columns: sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
        for fields in text
            .lines()
            .skip(1)
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
        {
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            if *state == TCP_LISTEN_STATE && local_port == Some(port) {
                listening_inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
        .any(|target| {
            listening_inodes
                .iter()
                .any(|inode| target.as_os_str() == inode.as_str())
        })
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}
