//! The one way tests run a child process: [`Process`] for servers (output drained by threads,
//! signals, bounded waits) and [`run`] for one-shot commands (bounded, output captured).
//!
//! ```ignore
//! let mut process = Process::spawn("nginx", command)?;     // stdout and stderr piped and drained
//! process.stderr().wait_for(Duration::from_secs(5), |line| line.contains("ready"));
//! process.signal(libc::SIGTERM);
//! let status = process.wait_for_exit(Duration::from_secs(10)); // None: still running
//! let finished = run(Command::new("tessera").arg("verify"), Duration::from_secs(30))?;
//! ```
//!
//! A server's output pipes are read to the end by one thread each, so a chatty server never
//! blocks on a full pipe; the lines stay available to assertions through [`Output`]. A process
//! is signalled only while it has not been reaped (a reaped pid may already belong to another
//! process), and dropping a [`Process`] kills and reaps it.

use std::fs;
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Bound on the output kept per stream of one process: far above what a test server logs (a
/// fuzz run logs a few hundred KiB), small enough that a runaway log cannot exhaust memory.
/// Lines past it are counted, not kept.
pub const OUTPUT_BYTES_MAX: usize = 64 << 20;

/// Bound on one line: a longer run of bytes without a newline is cut into lines of this size.
pub const LINE_BYTES_MAX: usize = 1 << 20;

/// Bytes read from a pipe at a time.
const READ_CHUNK_BYTES: usize = 64 << 10;

/// How long, once a process has exited, its output gets to reach end-of-file before it is
/// quoted (the drain threads read what was written just before the exit).
pub const OUTPUT_CLOSE_TIMEOUT_MS: u64 = 5_000;

/// Poll interval while waiting for a process to exit.
pub const POLL_INTERVAL_MS: u64 = 20;

/// What one output stream of a process has written so far, line by line.
pub struct Output {
    state: Mutex<Captured>,
    changed: Condvar,
}

#[derive(Default)]
struct Captured {
    lines: Vec<String>,
    bytes: usize,
    /// Lines dropped because [`OUTPUT_BYTES_MAX`] was reached.
    dropped_lines: u64,
    /// End of file: every writer closed the pipe.
    closed: bool,
}

/// Why a wait on an [`Output`] ended without what it waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitEnd {
    /// The stream reached end of file (the process exited or closed it).
    Closed,
    /// The timeout passed.
    TimedOut,
}

impl Output {
    fn new() -> Arc<Output> {
        Arc::new(Output {
            state: Mutex::new(Captured::default()),
            changed: Condvar::new(),
        })
    }

    /// Reads `pipe` to its end on a thread of its own, splitting it into lines (invalid UTF-8
    /// is replaced, never a reason to stop reading).
    fn drain(self: &Arc<Self>, name: &str, mut pipe: impl Read + Send + 'static) {
        let output = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("drain {name}"))
            .spawn(move || {
                let mut partial = Vec::new();
                let mut chunk = vec![0u8; READ_CHUNK_BYTES];
                loop {
                    let read = match pipe.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(read) => read,
                        Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    };
                    for &byte in &chunk[..read] {
                        if byte == b'\n' || partial.len() >= LINE_BYTES_MAX {
                            output.push(std::mem::take(&mut partial));
                        }
                        if byte != b'\n' {
                            partial.push(byte);
                        }
                    }
                }
                if !partial.is_empty() {
                    output.push(partial);
                }
                output.lock().closed = true;
                output.changed.notify_all();
            });
        if let Err(error) = spawned {
            panic!("could not start a thread to drain {name}: {error}");
        }
    }

    fn lock(&self) -> MutexGuard<'_, Captured> {
        // A panicking reader cannot leave the lines inconsistent: keep using them.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, line: Vec<u8>) {
        let line = String::from_utf8_lossy(&line).into_owned();
        let mut state = self.lock();
        if state.bytes + line.len() > OUTPUT_BYTES_MAX {
            state.dropped_lines += 1;
        } else {
            state.bytes += line.len() + 1;
            state.lines.push(line);
        }
        drop(state);
        self.changed.notify_all();
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lock().lines.clone()
    }

    /// Every line so far, newline-terminated, with a note if lines were dropped.
    pub fn text(&self) -> String {
        let state = self.lock();
        let mut text = String::with_capacity(state.bytes);
        for line in &state.lines {
            text.push_str(line);
            text.push('\n');
        }
        if state.dropped_lines > 0 {
            text.push_str(&format!(
                "[{} more lines dropped past {OUTPUT_BYTES_MAX} bytes]\n",
                state.dropped_lines
            ));
        }
        text
    }

    /// How many lines so far contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.lock()
            .lines
            .iter()
            .filter(|line| line.contains(needle))
            .count()
    }

    /// Whether the stream has reached end of file.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Waits (bounded) for line number `index` (0-based) and returns it.
    pub fn wait_for_line(&self, index: usize, timeout: Duration) -> Result<String, WaitEnd> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if let Some(line) = state.lines.get(index) {
                return Ok(line.clone());
            }
            if state.closed {
                return Err(WaitEnd::Closed);
            }
            state = self.wait_until(state, deadline)?;
        }
    }

    /// Waits (bounded) until some line satisfies `matches`; returns that line.
    pub fn wait_for(
        &self,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Result<String, WaitEnd> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        let mut checked = 0;
        loop {
            if let Some(line) = state.lines[checked..].iter().find(|l| matches(l)) {
                return Ok(line.clone());
            }
            checked = state.lines.len();
            if state.closed {
                return Err(WaitEnd::Closed);
            }
            state = self.wait_until(state, deadline)?;
        }
    }

    /// Waits (bounded) for end of file; returns whether it came.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while !state.closed {
            match self.wait_until(state, deadline) {
                Ok(next) => state = next,
                Err(_) => return false,
            }
        }
        true
    }

    fn wait_until<'a>(
        &'a self,
        state: MutexGuard<'a, Captured>,
        deadline: Instant,
    ) -> Result<MutexGuard<'a, Captured>, WaitEnd> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(WaitEnd::TimedOut);
        }
        let (state, _) = self
            .changed
            .wait_timeout(state, left)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(state)
    }
}

/// A child process with both output streams drained (see the module docs).
pub struct Process {
    name: String,
    child: Child,
    /// Set once the child has been reaped; from then on it is never signalled.
    exit: Option<ExitStatus>,
    stdout: Arc<Output>,
    stderr: Arc<Output>,
}

impl Process {
    /// Spawns `command` with stdin from /dev/null and stdout and stderr piped and drained.
    /// `name` appears in thread names and messages.
    pub fn spawn(name: &str, mut command: Command) -> io::Result<Process> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| {
                io::Error::new(error.kind(), format!("could not start {name}: {error}"))
            })?;
        let (stdout, stderr) = (Output::new(), Output::new());
        stdout.drain(
            &format!("{name} stdout"),
            child.stdout.take().expect("piped"),
        );
        stderr.drain(
            &format!("{name} stderr"),
            child.stderr.take().expect("piped"),
        );
        Ok(Process {
            name: name.to_string(),
            child,
            exit: None,
            stdout,
            stderr,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id (of a process that may have exited since; see [`Process::is_running`]).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> &Output {
        &self.stdout
    }

    pub fn stderr(&self) -> &Output {
        &self.stderr
    }

    /// The exit status, if the process has exited (reaping it).
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            let polled = self.child.try_wait();
            self.exit = polled.unwrap_or_else(|e| panic!("waiting for {}: {e}", self.name));
        }
        self.exit
    }

    pub fn is_running(&mut self) -> bool {
        self.try_exit().is_none()
    }

    /// Whether the process has been reaped (its exit status is known). Until then its pid
    /// cannot be reused, even once it has exited.
    pub fn reaped(&self) -> bool {
        self.exit.is_some()
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`); returns false if the process was already reaped.
    /// (A process that has exited but is not reaped yet takes the signal without effect.)
    pub fn signal(&self, signal: libc::c_int) -> bool {
        if self.reaped() {
            return false;
        }
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) has no memory effects; `pid` is our own child, not yet reaped (checked
        // just above), so it cannot name another process.
        let sent = unsafe { libc::kill(pid, signal) } == 0;
        assert!(
            sent,
            "kill({pid}, {signal}) failed: {}",
            io::Error::last_os_error()
        );
        true
    }

    /// Waits up to `timeout` for the process to exit; `None` if it is still running.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
        }
    }

    /// SIGKILL (unless already exited), then reaps; returns the exit status.
    pub fn kill9(&mut self) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        // Errors only if the child was already reaped, which `exit` rules out, or has exited,
        // which the wait below handles.
        let _ = self.child.kill();
        let status = self
            .child
            .wait()
            .unwrap_or_else(|e| panic!("reaping {}: {e}", self.name));
        self.exit = Some(status);
        status
    }

    /// Waits (bounded by [`OUTPUT_CLOSE_TIMEOUT_MS`]) until both streams of an exited process
    /// are read to their end, so that quoting them misses nothing.
    pub fn settle_output(&self) {
        let timeout = Duration::from_millis(OUTPUT_CLOSE_TIMEOUT_MS);
        self.stdout.wait_closed(timeout);
        self.stderr.wait_closed(timeout);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A one-shot command that ran to its end.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// A one-shot command that could not be started or did not finish in time.
#[derive(Debug)]
pub struct RunError {
    pub kind: RunErrorKind,
    pub problem: String,
    /// What it wrote before it was killed.
    pub stdout: String,
    pub stderr: String,
}

/// Why [`run`] did not return a finished command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunErrorKind {
    /// It could not be started (not installed, not executable) or its output not be set up.
    NotStarted,
    /// It ran past its timeout and was killed.
    TimedOut,
    /// It could not be waited for.
    Lost,
}

/// Runs `command` to completion, bounded by `timeout`: a command still running then is killed
/// with its whole process group (it runs in a group of its own, so that a script's children,
/// a JVM for example, go with it).
///
/// Output goes to files rather than pipes: a command may leave a daemon behind that inherits
/// its output (the Bazel client starts a Bazel server), and a pipe would then never reach end
/// of file.
pub fn run(command: &mut Command, timeout: Duration) -> Result<Finished, RunError> {
    let program = command.get_program().to_string_lossy().into_owned();
    let failed = |problem: String| RunError {
        kind: RunErrorKind::NotStarted,
        problem,
        stdout: String::new(),
        stderr: String::new(),
    };
    let dir = tempfile::Builder::new()
        .prefix("tessera-run-")
        .tempdir()
        .map_err(|e| failed(format!("could not create an output directory: {e}")))?;
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let create =
        |path: &std::path::Path| fs::File::create(path).map_err(|e| failed(format!("{e}")));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(create(&stdout_path)?)
        .stderr(create(&stderr_path)?)
        .process_group(0)
        .spawn()
        .map_err(|e| failed(format!("could not start `{program}`: {e}")))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                kill_group(&child);
                let _ = child.wait();
                let problem = format!("timed out after {} ms", timeout.as_millis());
                break Err((RunErrorKind::TimedOut, problem));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS)),
            Err(error) => {
                let problem = format!("could not be waited for: {error}");
                break Err((RunErrorKind::Lost, problem));
            }
        }
    };
    let read = |path| String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned();
    let (stdout, stderr) = (read(&stdout_path), read(&stderr_path));
    match status {
        Ok(status) => Ok(Finished {
            status,
            stdout,
            stderr,
        }),
        Err((kind, problem)) => Err(RunError {
            kind,
            problem,
            stdout,
            stderr,
        }),
    }
}

/// SIGKILL to the process group that `child` leads (see [`run`]).
fn kill_group(child: &Child) {
    let group = libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
    // SAFETY: kill(2) has no memory effects; the child is not reaped yet, so its pid, which is
    // also its group id (`process_group(0)`), still names its group.
    unsafe { libc::kill(-group, libc::SIGKILL) };
}
