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

#![allow(dead_code)] // Each test crate that includes this module uses a different part of it.

use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Fresh ports tried when another process grabs the picked port before nginx binds it.
pub const START_ATTEMPTS_MAX: u32 = 5;

/// How long nginx gets to accept connections after it was started.
pub const START_TIMEOUT_MS: u64 = 10_000;

/// How long a stopped nginx gets to exit before it is killed.
pub const STOP_TIMEOUT_MS: u64 = 10_000;

/// Poll interval while waiting for nginx to start or stop.
const POLL_INTERVAL_MS: u64 = 20;

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
    binary: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    /// Byte lengths of `stdio.log` and `error.log` when nginx was last started: a failed start
    /// is diagnosed from what that start wrote, not from earlier starts.
    log_offsets: (u64, u64),
}

impl NginxWebdav {
    /// Starts nginx on a free loopback port. nginx cannot bind port 0, so a port is picked by
    /// binding a std listener to port 0 and releasing it; if another process takes it first,
    /// nginx fails with EADDRINUSE and a new port is tried.
    pub fn start() -> io::Result<Self> {
        let binary = nginx_binary()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "nginx is not installed"))?;
        let dir = tempfile::Builder::new()
            .prefix("tessera-nginx-")
            .tempdir()?;
        fs::create_dir_all(dir.path().join("root"))?;
        fs::create_dir_all(dir.path().join("tmp"))?;
        let mut server = Self {
            binary,
            dir,
            port: free_port()?,
            child: None,
            log_offsets: (0, 0),
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

    /// `http://127.0.0.1:PORT` — the `--remote_cache` value.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
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
        self.signal_and_wait("QUIT")
    }

    /// Crash: SIGKILL, then reaps the process.
    pub fn kill9(&mut self) -> io::Result<()> {
        self.signal_and_wait("KILL")
    }

    /// Starts nginx again on the same port with the same stored files (after `stop`/`kill9`).
    pub fn restart(&mut self) -> io::Result<()> {
        if self.child.is_some() {
            self.stop()?;
        }
        self.spawn()
    }

    fn spawn(&mut self) -> io::Result<()> {
        let conf = self.write_config()?;
        let dir = self.dir.path();
        let error_log = dir.join("error.log");
        self.log_offsets = (self.log_len("stdio.log"), self.log_len("error.log"));
        let stdio_log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("stdio.log"))?;
        let child = Command::new(&self.binary)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(&error_log)
            .stdin(Stdio::null())
            .stdout(stdio_log.try_clone()?)
            .stderr(stdio_log)
            .spawn()?;
        self.child = Some(child);
        self.wait_until_listening()
    }

    fn wait_until_listening(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
        let address = SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port);
        loop {
            let child = self.child.as_mut().expect("spawn sets the child");
            if let Some(status) = child.try_wait()? {
                self.child = None;
                let log = self.logs();
                let kind = if log.contains("Address already in use") {
                    io::ErrorKind::AddrInUse
                } else {
                    io::ErrorKind::Other
                };
                return Err(io::Error::new(
                    kind,
                    format!("nginx exited with {status}:\n{log}"),
                ));
            }
            if TcpStream::connect(address).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.signal_and_wait("KILL");
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("nginx did not listen on {address} within {START_TIMEOUT_MS} ms"),
                ));
            }
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
        }
    }

    fn signal_and_wait(&mut self, signal: &str) -> io::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()?;
        if !sent.success() {
            // Already gone: reap it.
            child.wait()?;
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_millis(STOP_TIMEOUT_MS);
        while child.try_wait()?.is_none() {
            if Instant::now() >= deadline {
                child.kill()?;
                child.wait()?;
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("nginx ignored SIG{signal} for {STOP_TIMEOUT_MS} ms; killed"),
                ));
            }
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
        }
        Ok(())
    }

    fn write_config(&self) -> io::Result<PathBuf> {
        let dir = self.dir.path().display();
        let port = self.port;
        let conf = format!(
            "daemon off;\n\
             master_process off;\n\
             worker_processes 1;\n\
             pid {dir}/nginx.pid;\n\
             error_log {dir}/error.log info;\n\
             events {{ worker_connections {WORKER_CONNECTIONS_MAX}; }}\n\
             http {{\n\
               access_log {dir}/access.log;\n\
               client_body_temp_path {dir}/tmp;\n\
               proxy_temp_path {dir}/tmp;\n\
               fastcgi_temp_path {dir}/tmp;\n\
               uwsgi_temp_path {dir}/tmp;\n\
               scgi_temp_path {dir}/tmp;\n\
               server {{\n\
                 listen 127.0.0.1:{port};\n\
                 root {dir}/root;\n\
                 client_max_body_size 0;\n\
                 location / {{ dav_methods PUT; create_full_put_path on; }}\n\
               }}\n\
             }}\n"
        );
        let path = self.dir.path().join("nginx.conf");
        fs::write(&path, conf)?;
        Ok(path)
    }

    /// What nginx wrote to its stderr and error log since it was last started.
    fn logs(&self) -> String {
        let read = |name: &str, offset: u64| {
            let bytes = fs::read(self.dir.path().join(name)).unwrap_or_default();
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        };
        format!(
            "{}{}",
            read("stdio.log", self.log_offsets.0),
            read("error.log", self.log_offsets.1)
        )
    }

    fn log_len(&self, name: &str) -> u64 {
        fs::metadata(self.dir.path().join(name))
            .map(|m| m.len())
            .unwrap_or(0)
    }
}

impl Drop for NginxWebdav {
    fn drop(&mut self) {
        if let Err(error) = self.signal_and_wait("KILL") {
            eprintln!("warning: could not stop nginx: {error}");
        }
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Path helper so callers can check what was stored, e.g. `stored_files(&cache.root(), "cas")`.
pub fn stored_files(root: &Path, kind: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(root.join(kind))
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
}
