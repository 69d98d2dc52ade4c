//! The real `tessera` binary under test control, for the gRPC tests: started on port 0 (it
//! prints `tessera listening on 127.0.0.1:PORT [grpc=ADDR] shards=N executors=M` when every
//! shard is open), stopped with SIGTERM (drain, exit 0) and restarted on the same data
//! directory.
//!
//! ```ignore
//! let mut tessera = Tessera::start(dir.path(), &[]).unwrap();
//! let addr = tessera.addr;
//! tessera.restart().unwrap(); // SIGTERM, wait for exit 0, start again (new port)
//! ```

#![allow(dead_code)]

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a start may take before the test gives up (opening shards is milliseconds).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Tessera {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// The `--grpc-listen` address, when one was asked for.
    pub grpc_addr: Option<SocketAddr>,
    data: PathBuf,
    extra: Vec<String>,
    log: PathBuf,
}

impl Tessera {
    /// Starts `tessera serve` on `127.0.0.1:0` over `data` with two executors (unless `extra` says otherwise) and `extra` flags.
    pub fn start(data: &Path, extra: &[&str]) -> io::Result<Tessera> {
        let mut tessera = Tessera {
            child: None,
            addr: "127.0.0.1:0".parse().unwrap(),
            grpc_addr: None,
            data: data.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            log: data.with_extension("log"),
        };
        tessera.spawn()?;
        Ok(tessera)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(if self.extra.iter().any(|a| a == "--executors") {
                &[][..]
            } else {
                &["--executors", "2"][..]
            })
            .args(["--max-size", "512MiB", "--segment-size", "16MiB"])
            .arg("--data")
            .arg(&self.data)
            .args(&self.extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if line.starts_with("tessera listening on ") {
                    let _ = sender.send(line);
                }
            }
        });
        let line = match receiver.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other(format!(
                    "tessera did not announce itself; log:\n{}",
                    self.recent_log()
                )));
            }
        };
        let mut words = line.split_whitespace();
        self.addr = words.nth(3).and_then(|a| a.parse().ok()).expect("address");
        self.grpc_addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("grpc="))
            .and_then(|a| a.parse().ok());
        self.child = Some(child);
        Ok(())
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn grpc_url(&self) -> String {
        format!("grpc://{}", self.addr)
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGTERM and wait; the exit status must be success (clean drain).
    pub fn stop(&mut self) -> io::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let status = child.wait()?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "tessera exited with {status} after SIGTERM; log:\n{}",
                self.recent_log()
            )));
        }
        Ok(())
    }

    /// Waits for an exit that something else asked for (e.g. a SIGTERM the test sent); the
    /// status must be success.
    pub fn wait_exit(&mut self) -> io::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let status = child.wait()?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "tessera exited with {status}; log:\n{}",
                self.recent_log()
            )));
        }
        Ok(())
    }

    /// Clean stop, then a new start over the same data directory (on a new port).
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop()?;
        self.spawn()
    }

    pub fn recent_log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        text[text.floor_char_boundary(start)..].to_string()
    }
}

impl Drop for Tessera {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
