//! Real Bazel 4.2.3 (Debian `bazel-bootstrap`) as a remote-cache client in integration tests.
//!
//! [`BazelSession`] copies the genrule workspace of `tests/bazel/workspace` into a temporary
//! directory, gives it a private Bazel output root (so tests never share a Bazel server or an
//! output tree), runs builds against a `--remote_cache` URL and reads Bazel's own process
//! summary into a [`BuildSummary`]. Dropping the session runs `bazel shutdown`, so no JVM is left
//! behind. The free functions ([`run_build`], [`clean`], [`shutdown`], [`copy_workspace`],
//! [`output_files`]) do the same on a workspace and output root of the caller's choosing.
//!
//! ```ignore
//! if !common::require_real_client("bazel", bazel::bazel_available()) { return; }
//! let session = bazel::BazelSession::new().unwrap();
//! let first = session.build("grpc://127.0.0.1:PORT", &["--remote_instance_name=x"]).unwrap();
//! session.clean().unwrap();
//! let again = session.build("grpc://127.0.0.1:PORT", &["--remote_instance_name=x"]).unwrap();
//! again.assert_all_remote_hits();
//! ```
//!
//! What Bazel 4.2.3 prints, which the parsing here relies on (see tests/bazel/README.md):
//! `INFO: 12 processes: 1 internal, 11 local.` (all executed), `INFO: 12 processes: 11 remote
//! cache hit, 1 internal.` (all from the cache), `INFO: 1 process: 1 internal.` (nothing to do).
//! A cache that is down or answers errors does not fail the build: Bazel prints
//! `WARNING: Reading from Remote Cache:` / `WARNING: Writing to Remote Cache:` followed by the
//! cause on the next line and runs the actions locally. A missing CAS blob is a silent miss.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::process;

/// Genrules in `tests/bazel/workspace/BUILD`, i.e. the cacheable actions of one full build.
pub const WORKSPACE_ACTIONS: u32 = 11;

/// Output sizes the workspace produces (0 B, 1 B, 4 KiB, 64 KiB, 1 MiB, 3 MiB); a test checks
/// they all exist so the workspace keeps covering the sizes a cache must store byte-exact.
pub const WORKSPACE_OUTPUT_SIZES_BYTES: [u64; 6] = [0, 1, 4096, 65_536, 1_048_576, 3_145_728];

/// Environment variable naming the Bazel binary to run; `bazel` (from PATH) when unset.
pub const BAZEL_BINARY_ENV: &str = "TESSERA_BAZEL";

/// The Bazel binary: `$TESSERA_BAZEL`, or `bazel` from PATH.
pub fn bazel_binary() -> std::ffi::OsString {
    std::env::var_os(BAZEL_BINARY_ENV).unwrap_or_else(|| "bazel".into())
}

/// Wall-clock bound for one Bazel command. A cold server start plus the whole workspace build
/// takes about 5 s on the 2-core CI machine; Bazel's own remote retries against a hung cache
/// (5 retries × `--remote_timeout` 60 s) could take 5 minutes, and a test must not hang on that.
pub const BAZEL_COMMAND_TIMEOUT_SECS: u64 = 240;

/// Lines of Bazel's output quoted in an error message.
pub const LOG_TAIL_LINES: usize = 40;

/// Whether the `bazel` command (Debian `bazel-bootstrap`) can be run. `bazel --version` is
/// answered by the client without starting a server.
pub fn bazel_available() -> bool {
    Command::new(bazel_binary())
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

/// The workspace shipped in `tests/bazel/workspace`.
pub fn workspace_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bazel/workspace")
}

/// A Bazel command that failed, timed out or printed no process summary.
#[derive(Debug)]
pub struct BazelError {
    pub command: String,
    pub problem: String,
    /// The last [`LOG_TAIL_LINES`] lines of Bazel's output.
    pub log_tail: String,
}

impl fmt::Display for BazelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` {}; last lines of Bazel's output:\n{}",
            self.command, self.problem, self.log_tail
        )
    }
}

impl std::error::Error for BazelError {}

/// Bazel's own account of one build, from its `INFO: N processes: ...` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSummary {
    /// All processes Bazel counted, including internal ones.
    pub processes: u32,
    /// Bazel-internal actions (workspace status, symlinks), never sent to a cache.
    pub internal: u32,
    /// Actions whose results came from the remote cache.
    pub remote_cache_hits: u32,
    /// Actions executed on this machine (`local`, any sandbox, workers).
    pub executed: u32,
    /// Any other `N kind` entries of the summary, verbatim.
    pub other: Vec<(u32, String)>,
    /// Each remote-cache warning: the `WARNING: ... Remote Cache:` line and the cause after it.
    pub cache_warnings: Vec<String>,
    /// The summary line as Bazel printed it.
    pub summary_line: String,
}

impl BuildSummary {
    /// Cacheable actions: every process except Bazel-internal ones.
    pub fn actions(&self) -> u32 {
        self.processes - self.internal
    }

    /// Whether the build took every one of the workspace's actions from the remote cache
    /// without a single remote-cache warning.
    pub fn all_remote_hits(&self) -> bool {
        (self.actions(), self.remote_cache_hits, self.executed)
            == (WORKSPACE_ACTIONS, WORKSPACE_ACTIONS, 0)
            && self.cache_warnings.is_empty()
    }

    /// Panics, showing the whole summary, unless [`Self::all_remote_hits`].
    pub fn assert_all_remote_hits(&self) {
        assert!(
            self.all_remote_hits(),
            "expected all {WORKSPACE_ACTIONS} actions from the remote cache without a \
             remote-cache warning; {self:#?}"
        );
    }

    /// Panics unless the build executed every action locally and talked to the cache without a
    /// warning (the first build against an empty cache).
    pub fn assert_all_executed_and_uploaded(&self) {
        assert_eq!(
            (self.actions(), self.remote_cache_hits, self.executed),
            (WORKSPACE_ACTIONS, 0, WORKSPACE_ACTIONS),
            "expected every action executed locally (actions, hits, executed); {self:#?}"
        );
        assert!(
            self.cache_warnings.is_empty(),
            "remote-cache warnings: {self:#?}"
        );
    }
}

/// Parses Bazel's process summary line, e.g. `INFO: 12 processes: 11 remote cache hit, 1
/// internal.`, `INFO: 1 process: 1 internal.` or `INFO: 0 processes.`. Returns `None` for any
/// other line and for a line whose parts do not add up to its total.
pub fn parse_process_summary(line: &str) -> Option<BuildSummary> {
    let rest = line.trim_end().strip_prefix("INFO: ")?.strip_suffix('.')?;
    let (total, rest) = rest.split_once(' ')?;
    let processes: u32 = total.parse().ok()?;
    let parts = if let Some(parts) = rest.strip_prefix("processes: ") {
        parts
    } else if let Some(parts) = rest.strip_prefix("process: ") {
        parts
    } else if rest == "processes" || rest == "process" {
        ""
    } else {
        return None;
    };
    let mut summary = BuildSummary {
        processes,
        internal: 0,
        remote_cache_hits: 0,
        executed: 0,
        other: Vec::new(),
        cache_warnings: Vec::new(),
        summary_line: line.trim_end().to_string(),
    };
    let mut counted: u32 = 0;
    for part in parts.split(", ").filter(|part| !part.is_empty()) {
        let (count, kind) = part.split_once(' ')?;
        let count: u32 = count.parse().ok()?;
        counted = counted.checked_add(count)?;
        match kind {
            "internal" => summary.internal += count,
            "remote cache hit" => summary.remote_cache_hits += count,
            "local" | "linux-sandbox" | "processwrapper-sandbox" | "worker" => {
                summary.executed += count
            }
            _ => summary.other.push((count, kind.to_string())),
        }
    }
    (counted == processes).then_some(summary)
}

/// Reads a build's whole output: the last process summary line plus every remote-cache warning.
pub fn parse_build_log(log: &str) -> Option<BuildSummary> {
    let mut summary = log.lines().rev().find_map(parse_process_summary)?;
    let mut lines = log.lines().peekable();
    while let Some(line) = lines.next() {
        if line.starts_with("WARNING: ") && line.contains(" Remote Cache:") {
            let cause = lines.peek().copied().unwrap_or("");
            summary.cache_warnings.push(format!("{line} {cause}"));
        }
    }
    Some(summary)
}

/// Copies the shipped workspace into `dest` (created if missing) and returns the copy's path.
pub fn copy_workspace(dest: &Path) -> io::Result<PathBuf> {
    copy_dir(&workspace_source(), dest)?;
    Ok(dest.to_path_buf())
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Runs `bazel build //:all --remote_cache=<cache_url> <extra_flags>` in `workspace` with the
/// Bazel output root `output_root`, and returns Bazel's summary of it. A failed build, a
/// timeout and a missing summary line are errors carrying the tail of Bazel's output.
pub fn run_build(
    binary: &OsStr,
    workspace: &Path,
    cache_url: &str,
    extra_flags: &[&str],
    output_root: &Path,
) -> Result<BuildSummary, BazelError> {
    run_build_with_env(binary, workspace, cache_url, extra_flags, output_root, &[])
}

/// [`run_build`] with `env` added to the Bazel client's environment (e.g. `NETRC`, which Bazel
/// reads for the remote cache's credentials on every command).
pub fn run_build_with_env(
    binary: &OsStr,
    workspace: &Path,
    cache_url: &str,
    extra_flags: &[&str],
    output_root: &Path,
    env: &[(String, String)],
) -> Result<BuildSummary, BazelError> {
    let remote_cache = format!("--remote_cache={cache_url}");
    let mut args = vec!["build", "//:all", remote_cache.as_str()];
    args.extend_from_slice(extra_flags);
    let (command, log) = run_bazel_inner(binary, workspace, output_root, &args, true, env)?;
    parse_build_log(&log).ok_or_else(|| BazelError {
        command,
        problem: "printed no `INFO: N processes` summary".to_string(),
        log_tail: tail(&log, LOG_TAIL_LINES),
    })
}

/// `bazel clean`: removes the output tree and Bazel's local action cache, so the next build
/// can only avoid work through the remote cache.
pub fn clean(binary: &OsStr, workspace: &Path, output_root: &Path) -> Result<(), BazelError> {
    run_bazel(binary, workspace, output_root, &["clean"]).map(|_| ())
}

/// `bazel shutdown`: stops the Bazel server (JVM) of this output root, if one runs.
pub fn shutdown(binary: &OsStr, workspace: &Path, output_root: &Path) -> Result<(), BazelError> {
    run_bazel(binary, workspace, output_root, &["shutdown"]).map(|_| ())
}

/// The regular files of the last build's output directory (`bazel info bazel-bin`), by name,
/// with their size and SHA-256, to compare a cache-served build with an executed one.
pub fn output_files(
    binary: &OsStr,
    workspace: &Path,
    output_root: &Path,
) -> Result<BTreeMap<String, OutputFile>, BazelError> {
    let (command, log) = run_bazel_stdout(binary, workspace, output_root, &["info", "bazel-bin"])?;
    let bin = PathBuf::from(log.trim());
    let io_error = |error: io::Error| BazelError {
        command: command.clone(),
        problem: format!(
            "gave bazel-bin {}, which cannot be read: {error}",
            bin.display()
        ),
        log_tail: String::new(),
    };
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(&bin).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        if !entry.file_type().map_err(io_error)?.is_file() {
            continue;
        }
        let bytes = fs::read(entry.path()).map_err(io_error)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let sha256 = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        files.insert(
            name,
            OutputFile {
                size_bytes: bytes.len() as u64,
                sha256,
            },
        );
    }
    Ok(files)
}

/// One output file of the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub size_bytes: u64,
    pub sha256: String,
}

/// Startup options shared by every command: a private output root (so a test has its own Bazel
/// server) and no `~/.bazelrc` (the caller's settings must not change the actions).
/// `/etc/bazel/bazelrc` stays: it points Bazel at Debian's install base and the local JDK.
fn startup_args(output_root: &Path) -> Vec<String> {
    vec![
        "--nohome_rc".to_string(),
        format!("--output_user_root={}", output_root.display()),
    ]
}

/// Runs one Bazel command with its stdout and stderr merged into one log, and returns the
/// command line and the log. Non-zero exit and timeout are errors.
fn run_bazel(
    binary: &OsStr,
    workspace: &Path,
    output_root: &Path,
    args: &[&str],
) -> Result<(String, String), BazelError> {
    run_bazel_inner(binary, workspace, output_root, args, true, &[])
}

/// Like [`run_bazel`], but returns only stdout (for `bazel info`).
fn run_bazel_stdout(
    binary: &OsStr,
    workspace: &Path,
    output_root: &Path,
    args: &[&str],
) -> Result<(String, String), BazelError> {
    run_bazel_inner(binary, workspace, output_root, args, false, &[])
}

fn run_bazel_inner(
    binary: &OsStr,
    workspace: &Path,
    output_root: &Path,
    args: &[&str],
    merge_stderr: bool,
    env: &[(String, String)],
) -> Result<(String, String), BazelError> {
    let command_line = format!("bazel {}", args.join(" "));
    let mut command = Command::new(binary);
    command
        .args(startup_args(output_root))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(workspace);
    let timeout = Duration::from_secs(BAZEL_COMMAND_TIMEOUT_SECS);
    let (problem, stderr) = match process::run(&mut command, timeout) {
        Ok(finished) if finished.status.success() => {
            let log = if merge_stderr {
                finished.stdout + &finished.stderr
            } else {
                finished.stdout
            };
            return Ok((command_line, log));
        }
        Ok(finished) => (format!("failed with {}", finished.status), finished.stderr),
        Err(error) if error.kind == process::RunErrorKind::NotStarted => {
            let problem = format!("{} (is bazel installed?)", error.problem);
            (problem, error.stderr)
        }
        Err(error) => (error.problem, error.stderr),
    };
    Err(BazelError {
        command: command_line,
        problem,
        log_tail: tail(&stderr, LOG_TAIL_LINES),
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A copy of the workspace with its own Bazel output root in one temporary directory; dropping
/// it stops the Bazel server and deletes everything.
pub struct BazelSession {
    /// The Bazel binary this session runs ([`bazel_binary`] unless [`BazelSession::with_binary`]).
    binary: std::ffi::OsString,
    temp: Option<tempfile::TempDir>,
    workspace: PathBuf,
    output_root: PathBuf,
    /// Added to the environment of every build of the session ([`BazelSession::with_env`]).
    env: Vec<(String, String)>,
}

impl BazelSession {
    /// Copies the shipped workspace into a fresh temporary directory.
    pub fn new() -> io::Result<Self> {
        let temp = tempfile::Builder::new()
            .prefix("tessera-bazel-")
            .tempdir()?;
        let workspace = copy_workspace(&temp.path().join("workspace"))?;
        let output_root = temp.path().join("root");
        Ok(Self {
            binary: bazel_binary(),
            temp: Some(temp),
            workspace,
            output_root,
            env: Vec::new(),
        })
    }

    /// Runs `binary` instead of [`bazel_binary`] (another Bazel release).
    pub fn with_binary(mut self, binary: impl Into<std::ffi::OsString>) -> Self {
        self.binary = binary.into();
        self
    }

    /// Sets `name=value` in the environment of this session's builds.
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn workspace(&self) -> &Path {
        &self.workspace
    }

    pub fn output_root(&self) -> &Path {
        &self.output_root
    }

    /// [`run_build`] in this session.
    pub fn build(&self, cache_url: &str, extra_flags: &[&str]) -> Result<BuildSummary, BazelError> {
        run_build_with_env(
            &self.binary,
            &self.workspace,
            cache_url,
            extra_flags,
            &self.output_root,
            &self.env,
        )
    }

    /// [`clean`] in this session.
    pub fn clean(&self) -> Result<(), BazelError> {
        clean(&self.binary, &self.workspace, &self.output_root)
    }

    /// `bazel clean`, then [`run_build`]: the build can only avoid work through the remote cache.
    pub fn clean_and_build(
        &self,
        cache_url: &str,
        extra_flags: &[&str],
    ) -> Result<BuildSummary, BazelError> {
        self.clean()?;
        self.build(cache_url, extra_flags)
    }

    /// [`shutdown`] in this session (also done on drop).
    pub fn shutdown(&self) -> Result<(), BazelError> {
        shutdown(&self.binary, &self.workspace, &self.output_root)
    }

    /// [`output_files`] in this session.
    pub fn output_files(&self) -> Result<BTreeMap<String, OutputFile>, BazelError> {
        output_files(&self.binary, &self.workspace, &self.output_root)
    }
}

impl Drop for BazelSession {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            eprintln!("warning: could not stop the Bazel server: {error}");
        }
        // Bazel leaves its output tree read-only; make it writable so the temp dir can go.
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("u+w")
            .arg(&self.output_root)
            .status();
        if let Some(temp) = self.temp.take() {
            if let Err(error) = temp.close() {
                eprintln!("warning: could not remove the Bazel test directory: {error}");
            }
        }
    }
}
