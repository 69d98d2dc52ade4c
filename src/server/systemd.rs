//! The two systemd interfaces Tessera speaks, written by hand (they are a few lines each and
//! documented by `sd_notify(3)` and `sd_listen_fds(3)`); outside systemd both are no-ops.
//!
//! * **Notification** ([`notify`]): one datagram per state change to the unix socket named by
//!   `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace), carrying newline-separated
//!   `KEY=value` assignments: `READY=1` once every shard is open and listening, `STOPPING=1` when
//!   a drain starts, `WATCHDOG=1` while every executor is alive (see [`super::watchdog`]).
//! * **Socket activation** ([`inherited_sockets`]): systemd passes the sockets of `tessera.socket`
//!   as fds 3, 4, … with `LISTEN_PID` (our pid), `LISTEN_FDS` (how many) and `LISTEN_FDNAMES`
//!   (their `FileDescriptorName=`, colon-separated). Because systemd keeps the sockets open, a
//!   restart refuses no connection: they wait in the kernel's accept queue for the new process.
//!
//! ```text
//! systemd ──(fd 3: listening socket, LISTEN_FDS=1)──► tessera ──"READY=1"──► $NOTIFY_SOCKET
//!                                                             ──"WATCHDOG=1" (every WatchdogSec/2)
//!                                                     SIGTERM ──"STOPPING=1"
//! ```

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::time::Duration;

/// The first fd systemd passes (`SD_LISTEN_FDS_START`): 0–2 are stdio.
pub const LISTEN_FDS_START: RawFd = 3;

/// Most inherited sockets accepted. Tessera has two listener roles (the main port and the
/// gRPC-only port); a handful more would be a misconfigured unit, refused with a clear error
/// instead of scanning thousands of fds.
pub const LISTEN_FDS_MAX: usize = 16;

/// The `FileDescriptorName=` that marks an inherited socket as the gRPC-only listener
/// (`grpc_listen`); every other name is the main listener (`listen`).
pub const GRPC_SOCKET_NAME: &str = "grpc";

/// Sends `state` (e.g. `"READY=1"`) to systemd. `Ok(false)` when `$NOTIFY_SOCKET` is unset, i.e.
/// the process does not run under a `Type=notify` unit: that is not an error.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let target = target
        .to_str()
        .ok_or_else(|| io::Error::other("NOTIFY_SOCKET is not valid UTF-8"))?;
    let addr = notify_address(target)?;
    let socket = UnixDatagram::unbound()?;
    let sent = socket.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(io::Error::other(format!(
            "notify socket took {sent} of {} bytes",
            state.len()
        )));
    }
    Ok(true)
}

/// [`notify`], with a failure logged instead of returned: a lost notification must not stop the
/// server (systemd then times the unit out, which names the cause in its own log).
pub fn notify_or_log(state: &str) {
    if let Err(error) = notify(state) {
        tracing::warn!(%error, state, "cannot notify systemd");
    }
}

/// The address in `$NOTIFY_SOCKET`: an absolute path, or `@name` for the abstract namespace.
fn notify_address(text: &str) -> io::Result<UnixAddr> {
    if let Some(name) = text.strip_prefix('@') {
        return UnixAddr::from_abstract_name(name.as_bytes());
    }
    if text.starts_with('/') {
        return UnixAddr::from_pathname(text);
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("NOTIFY_SOCKET `{text}` is neither an absolute path nor an @abstract name"),
    ))
}

/// How often systemd wants `WATCHDOG=1` at least (`WatchdogSec=`, passed as `WATCHDOG_USEC`);
/// `None` when the watchdog is off or meant for another process (`WATCHDOG_PID`).
pub fn watchdog_timeout() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    match usec.parse::<u64>() {
        Ok(usec) if usec > 0 => Some(Duration::from_micros(usec)),
        _ => {
            tracing::warn!(value = %usec, "ignoring WATCHDOG_USEC: not a positive number");
            None
        }
    }
}

/// A listening socket passed by systemd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InheritedSocket {
    pub fd: RawFd,
    /// Its `FileDescriptorName=` (systemd's default is the socket unit's name).
    pub name: String,
}

impl InheritedSocket {
    /// Whether this socket is the gRPC-only listener rather than the main one.
    pub fn is_grpc(&self) -> bool {
        self.name == GRPC_SOCKET_NAME
    }
}

/// Why the inherited sockets cannot be used.
#[derive(Debug)]
pub struct ActivationError(String);

impl fmt::Display for ActivationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "socket activation: {}", self.0)
    }
}

impl std::error::Error for ActivationError {}

/// The sockets systemd passed to this process; empty when there are none (or they were meant
/// for another process: `LISTEN_PID` differs). Each is checked to be a listening TCP socket and
/// marked close-on-exec.
pub fn inherited_sockets() -> Result<Vec<InheritedSocket>, ActivationError> {
    let var = |name: &str| std::env::var(name).ok();
    let sockets = parse_listen_env(
        var("LISTEN_PID").as_deref(),
        var("LISTEN_FDS").as_deref(),
        var("LISTEN_FDNAMES").as_deref(),
        std::process::id(),
    )?;
    for socket in &sockets {
        check_listening_stream(socket)?;
    }
    Ok(sockets)
}

/// The pure part of [`inherited_sockets`]: the fds and names the environment describes.
fn parse_listen_env(
    pid: Option<&str>,
    fds: Option<&str>,
    names: Option<&str>,
    own_pid: u32,
) -> Result<Vec<InheritedSocket>, ActivationError> {
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(Vec::new());
    };
    let pid: u32 = pid
        .parse()
        .map_err(|_| ActivationError(format!("LISTEN_PID `{pid}` is not a process id")))?;
    if pid != own_pid {
        return Ok(Vec::new());
    }
    let count: usize = fds
        .parse()
        .map_err(|_| ActivationError(format!("LISTEN_FDS `{fds}` is not a count")))?;
    if count > LISTEN_FDS_MAX {
        return Err(ActivationError(format!(
            "LISTEN_FDS={count}, more than the {LISTEN_FDS_MAX} sockets Tessera can use"
        )));
    }
    let names: Vec<&str> = match names {
        Some(names) if !names.is_empty() => names.split(':').collect(),
        _ => Vec::new(),
    };
    if !names.is_empty() && names.len() != count {
        return Err(ActivationError(format!(
            "LISTEN_FDNAMES names {} sockets but LISTEN_FDS is {count}",
            names.len()
        )));
    }
    Ok((0..count)
        .map(|i| InheritedSocket {
            fd: LISTEN_FDS_START + i as RawFd,
            name: names.get(i).unwrap_or(&"unknown").to_string(),
        })
        .collect())
}

/// Checks that `socket.fd` is a listening stream socket and marks it close-on-exec.
fn check_listening_stream(socket: &InheritedSocket) -> Result<(), ActivationError> {
    let fail = |what: &str| {
        ActivationError(format!(
            "fd {} (`{}`) {what}: {}",
            socket.fd,
            socket.name,
            io::Error::last_os_error()
        ))
    };
    let int_option = |option: libc::c_int| -> Option<libc::c_int> {
        let mut value: libc::c_int = 0;
        let mut length = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `length` are valid for writes of the sizes given; getsockopt only
        // reads the fd number, which need not be open (EBADF is reported as an error).
        let result = unsafe {
            libc::getsockopt(
                socket.fd,
                libc::SOL_SOCKET,
                option,
                (&mut value as *mut libc::c_int).cast(),
                &mut length,
            )
        };
        (result == 0).then_some(value)
    };
    match int_option(libc::SO_TYPE) {
        Some(libc::SOCK_STREAM) => {}
        Some(_) => {
            return Err(ActivationError(format!(
                "fd {} (`{}`) is not a stream socket (use ListenStream=)",
                socket.fd, socket.name
            )))
        }
        None => return Err(fail("is not a socket")),
    }
    if int_option(libc::SO_ACCEPTCONN) != Some(1) {
        return Err(ActivationError(format!(
            "fd {} (`{}`) is not listening (Accept=yes is not supported)",
            socket.fd, socket.name
        )));
    }
    // SAFETY: F_SETFD on an fd we just checked is a socket; no memory is involved.
    if unsafe { libc::fcntl(socket.fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return Err(fail("cannot be marked close-on-exec"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_env_is_ignored_unless_it_names_this_process() {
        assert!(parse_listen_env(None, None, None, 7).unwrap().is_empty());
        assert!(parse_listen_env(Some("8"), Some("1"), None, 7)
            .unwrap()
            .is_empty());
        let sockets = parse_listen_env(Some("7"), Some("2"), Some("http:grpc"), 7).unwrap();
        assert_eq!(
            sockets,
            [
                InheritedSocket {
                    fd: 3,
                    name: "http".into()
                },
                InheritedSocket {
                    fd: 4,
                    name: "grpc".into()
                }
            ]
        );
        assert!(!sockets[0].is_grpc() && sockets[1].is_grpc());
        let unnamed = parse_listen_env(Some("7"), Some("1"), None, 7).unwrap();
        assert_eq!(unnamed[0].name, "unknown");
    }

    #[test]
    fn malformed_listen_env_is_a_precise_error() {
        let error = |pid, fds, names| {
            parse_listen_env(Some(pid), Some(fds), names, 7)
                .unwrap_err()
                .to_string()
        };
        assert!(error("x", "1", None).contains("LISTEN_PID `x`"));
        assert!(error("7", "-1", None).contains("LISTEN_FDS `-1`"));
        assert!(error("7", "99", None).contains("more than the 16"));
        assert!(error("7", "2", Some("http")).contains("names 1 sockets but LISTEN_FDS is 2"));
    }

    #[test]
    fn notify_addresses_are_paths_or_abstract_names() {
        let path = notify_address("/run/systemd/notify").unwrap();
        assert_eq!(
            path.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        let abstract_name = notify_address("@tessera/notify").unwrap();
        assert_eq!(
            abstract_name.as_abstract_name(),
            Some(&b"tessera/notify"[..])
        );
        let error = notify_address("relative/path").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_stdio_fd_is_not_taken_for_a_listening_socket() {
        // A pipe end is not a socket: refused with the fd named.
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two fds pipe writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let error = check_listening_stream(&InheritedSocket {
            fd: fds[0],
            name: "http".into(),
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("is not a socket"), "{error}");
        let unbound = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let error = check_listening_stream(&InheritedSocket {
            fd: std::os::fd::AsRawFd::as_raw_fd(&unbound),
            name: "http".into(),
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("not a stream socket"), "{error}");
        for fd in fds {
            // SAFETY: both fds came from pipe above and are closed once.
            unsafe { libc::close(fd) };
        }
    }
}
