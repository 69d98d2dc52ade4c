//! Debian nginx with its built-in WebDAV module as a stand-in Bazel HTTP remote cache.
//!
//! nginx answers `GET` with the stored file or `404` (with `Content-Length`), and stores `PUT`
//! bodies (`dav_methods PUT; create_full_put_path on;`), which is all Bazel's HTTP cache client
//! needs (reference/clients.md §1). It proves the Bazel harness works before Tessera exists, and
//! stays useful as a known-good reference server.
//!
//! ```ignore
//! let mut cache = nginx::NginxWebdav::start().unwrap();
//! let url = cache.url();               // http://127.0.0.1:PORT
//! cache.kill9();                       // SIGKILL, like a crash
//! cache.restart().unwrap();            // same port, same stored files
//! ```
//!
//! nginx runs in the foreground as a single process (`master_process off`), so `kill -9` takes
//! the listening socket down with it (a master's orphaned worker would keep serving).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::external_server::ExternalServer;

/// Concurrent connections nginx accepts; Bazel opens at most `--remote_max_connections`
/// (100 by default), so 512 leaves room for several clients.
const WORKER_CONNECTIONS_MAX: u32 = 512;

/// The nginx binary: on PATH, or Debian's location for callers whose PATH lacks `/usr/sbin`.
pub fn nginx_binary() -> Option<PathBuf> {
    let candidates = [PathBuf::from("nginx"), PathBuf::from("/usr/sbin/nginx")];
    candidates.into_iter().find(|binary| {
        Command::new(binary)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|status| status.success())
            .unwrap_or(false)
    })
}

/// Whether nginx is installed.
pub fn nginx_available() -> bool {
    nginx_binary().is_some()
}

/// A running nginx WebDAV server with its config, logs and stored files in a temporary directory.
pub struct NginxWebdav {
    // Field order matters: the process is stopped (dropped) before its directory is removed.
    process: ExternalServer,
    dir: tempfile::TempDir,
}

impl NginxWebdav {
    /// Starts nginx on a free loopback port (nginx cannot bind port 0 itself; see
    /// `external_server` for how a port is picked and a lost race retried).
    pub fn start() -> io::Result<Self> {
        let binary = nginx_binary()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "nginx is not installed"))?;
        let dir = tempfile::Builder::new()
            .prefix("tessera-nginx-")
            .tempdir()?;
        fs::create_dir_all(dir.path().join("root"))?;
        fs::create_dir_all(dir.path().join("tmp"))?;
        let base = dir.path().to_path_buf();
        let logs = [base.join("error.log")];
        let process = ExternalServer::start_on_free_port("nginx", &logs, move |port| {
            let conf = write_config(&base, port)?;
            let mut command = Command::new(&binary);
            command.arg("-p").arg(&base).arg("-c").arg(conf);
            command.arg("-e").arg(base.join("error.log"));
            Ok(command)
        })?;
        Ok(Self { process, dir })
    }

    /// `http://127.0.0.1:PORT` — the `--remote_cache` value.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.process.port())
    }

    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// The directory holding the stored `ac/` and `cas/` files.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The access log (one line per request), for diagnosing a failed test.
    pub fn access_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// Clean stop: SIGQUIT (nginx's graceful shutdown), then waits for the exit.
    pub fn stop(&mut self) -> io::Result<()> {
        self.process.stop_with(libc::SIGQUIT)
    }

    /// Crash: SIGKILL, then reaps the process.
    pub fn kill9(&mut self) -> io::Result<()> {
        self.process.kill9()
    }

    /// Starts nginx again on the same port with the same stored files (after `stop`/`kill9`).
    pub fn restart(&mut self) -> io::Result<()> {
        self.process.restart()
    }
}

fn write_config(dir: &Path, port: u16) -> io::Result<PathBuf> {
    let d = dir.display();
    let conf = format!(
        "daemon off;\n\
         master_process off;\n\
         worker_processes 1;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\n\
         events {{ worker_connections {WORKER_CONNECTIONS_MAX}; }}\n\
         http {{\n\
           access_log {d}/access.log;\n\
           client_body_temp_path {d}/tmp;\n\
           proxy_temp_path {d}/tmp;\n\
           fastcgi_temp_path {d}/tmp;\n\
           uwsgi_temp_path {d}/tmp;\n\
           scgi_temp_path {d}/tmp;\n\
           server {{\n\
             listen 127.0.0.1:{port};\n\
             root {d}/root;\n\
             client_max_body_size 0;\n\
             location / {{ dav_methods PUT; create_full_put_path on; }}\n\
           }}\n\
         }}\n"
    );
    let path = dir.join("nginx.conf");
    fs::write(&path, conf)?;
    Ok(path)
}

/// The files stored under `root/kind` (`kind` is `ac` or `cas`), sorted.
pub fn stored_files(root: &Path, kind: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(root.join(kind))
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
}
