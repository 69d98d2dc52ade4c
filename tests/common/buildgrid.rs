//! BuildGrid (PyPI `buildgrid`, pinned in tests/install-deps.sh) as a reference REAPI v2 gRPC
//! cache: Capabilities, ActionCache, CAS and ByteStream, one set per instance name, the
//! services Bazel's `--remote_cache=grpc://…` uses (reference/clients.md §2). It proves the gRPC
//! side of the Bazel harness before Tessera exists, and stays a known-good server to compare with.
//!
//! ```ignore
//! let cache = buildgrid::BuildGrid::start(&["x"]).unwrap(); // instances "" and "x"
//! let url = cache.url();                                     // grpc://127.0.0.1:PORT
//! ```
//!
//! Each instance stores blobs on disk in the temporary directory but keeps its action cache in
//! memory (BuildGrid's LRU action cache), so a restart empties the action cache: restart and
//! `kill -9` scenarios are proven with nginx (HTTP) and belong to Tessera's own tests.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::external_server::ExternalServer;

/// Environment variable naming BuildGrid's virtualenv (tests/install-deps.sh creates it).
pub const BUILDGRID_VENV_ENV: &str = "TESSERA_BUILDGRID_VENV";

/// Where tests/install-deps.sh puts BuildGrid when the variable is unset.
pub const BUILDGRID_VENV_DEFAULT: &str = "/opt/tessera-tests/buildgrid-venv";

/// Action-cache entries each instance keeps in memory; the harness workspace needs 11.
const ACTION_CACHE_ENTRIES_MAX: u32 = 4096;

/// BuildGrid's `bgd` command.
pub fn bgd_binary() -> PathBuf {
    let venv = std::env::var_os(BUILDGRID_VENV_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(BUILDGRID_VENV_DEFAULT));
    venv.join("bin/bgd")
}

/// Whether BuildGrid is installed.
pub fn buildgrid_available() -> bool {
    bgd_binary().is_file()
}

/// A running BuildGrid server serving the default instance `""` and the given named instances.
pub struct BuildGrid {
    // Field order matters: the process is stopped (dropped) before its directory is removed.
    process: ExternalServer,
    dir: tempfile::TempDir,
}

impl BuildGrid {
    /// Starts BuildGrid on a free loopback port with the default instance and `instances`.
    pub fn start(instances: &[&str]) -> io::Result<Self> {
        let bgd = bgd_binary();
        if !bgd.is_file() {
            let message = format!("BuildGrid is not installed at {}", bgd.display());
            return Err(io::Error::new(io::ErrorKind::NotFound, message));
        }
        for name in instances {
            // The names go into a YAML string and into `--remote_instance_name`.
            assert!(
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
                "instance name {name:?}: use letters, digits and '-'"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("tessera-buildgrid-")
            .tempdir()?;
        let mut names = vec![String::new()];
        names.extend(instances.iter().map(|name| name.to_string()));
        let base = dir.path().to_path_buf();
        let process = ExternalServer::start_on_free_port("BuildGrid", &[], move |port| {
            let conf = write_config(&base, port, &names)?;
            let mut command = Command::new(&bgd);
            command
                .arg("server")
                .arg("start")
                .arg(conf)
                .current_dir(&base);
            Ok(command)
        })?;
        Ok(Self { process, dir })
    }

    /// `grpc://127.0.0.1:PORT` — the `--remote_cache` value (plaintext h2c).
    pub fn url(&self) -> String {
        format!("grpc://127.0.0.1:{}", self.process.port())
    }

    /// The server's log since its last start, for diagnosing a failed test.
    pub fn log(&self) -> String {
        self.process.recent_logs()
    }
}

fn write_config(dir: &Path, port: u16, instances: &[String]) -> io::Result<PathBuf> {
    // SO_REUSEPORT off: gRPC core sets it by default, and two servers would then silently share
    // a port instead of the second one failing to bind.
    let mut conf = format!(
        "server:\n  - !channel\n    address: \"127.0.0.1:{port}\"\n    insecure-mode: true\n\
         grpc-server-options:\n  grpc.so_reuseport: 0\nstorages:\n"
    );
    for (index, _) in instances.iter().enumerate() {
        let cas = dir.join(format!("cas-{index}"));
        fs::create_dir_all(&cas)?;
        let _ = write!(
            conf,
            "  - !disk-storage &store-{index}\n    path: {}\n",
            cas.display()
        );
    }
    conf.push_str("caches:\n");
    for (index, _) in instances.iter().enumerate() {
        let _ = write!(
            conf,
            "  - !lru-action-cache &ac-{index}\n    storage: *store-{index}\n    \
             max-cached-refs: {ACTION_CACHE_ENTRIES_MAX}\n    allow-updates: true\n"
        );
    }
    conf.push_str("instances:\n");
    for (index, name) in instances.iter().enumerate() {
        let _ = write!(
            conf,
            "  - name: \"{name}\"\n    services:\n      - !action-cache\n        cache: *ac-{index}\n      \
             - !cas\n        storage: *store-{index}\n      - !bytestream\n        storage: *store-{index}\n"
        );
    }
    let path = dir.join("buildgrid.yml");
    fs::write(&path, conf)?;
    Ok(path)
}
