//! The listening sockets: one per executor, all bound to one port with `SO_REUSEPORT`, so the
//! kernel spreads connections across executors (by 4-tuple hash; it never rebalances).
//!
//! They are created here, in the starting thread, before any executor runs: binding port 0 once
//! and then binding that same port for the others gives every executor the same ephemeral port.
//! `SO_REUSEPORT` also lets a *stale* server silently share a fixed port (stack.md §1d), so a
//! fixed port is first probed with a plain bind that would fail with `EADDRINUSE`.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{IntoRawFd, RawFd};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

/// Kernel accept backlog per socket. Connections beyond it wait in SYN queues or are refused by
/// the kernel; the server's own limit (`max_connections`) is applied after accept.
pub const ACCEPT_BACKLOG: i32 = 1024;

/// How long a fixed port that is in use is probed again before start-up fails. A predecessor
/// killed with SIGKILL leaves its listening sockets to the kernel's asynchronous io_uring
/// teardown, which holds them for about 10 ms after the process has been reaped (measured:
/// 7–11 ms over 10 trials), so an immediate restart would otherwise fail with "address in use".
/// 1 s is 100 × that, and short enough that a port that is really taken is reported promptly.
pub const BIND_RETRY_MS_MAX: u64 = 1_000;

/// Pause between two probes of a fixed port that is in use.
const BIND_RETRY_INTERVAL_MS: u64 = 10;

/// Binds `executors` sockets to `addr` in one reuse-port group; returns their raw fds (each to be
/// owned by one executor) and the bound address.
pub fn bind_group(addr: SocketAddr, executors: usize) -> io::Result<(Vec<RawFd>, SocketAddr)> {
    if addr.port() != 0 {
        probe_free_with_retry(addr)?;
    }
    let first = bind_one(addr)?;
    let bound = first
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("listener has no inet address"))?;
    let mut fds = vec![first.into_raw_fd()];
    for _ in 1..executors {
        fds.push(bind_one(bound)?.into_raw_fd());
    }
    Ok((fds, bound))
}

fn bind_one(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(ACCEPT_BACKLOG)?;
    Ok(socket)
}

/// [`probe_free`], tried again for up to [`BIND_RETRY_MS_MAX`] while the port is in use.
fn probe_free_with_retry(addr: SocketAddr) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_millis(BIND_RETRY_MS_MAX);
    loop {
        match probe_free(addr) {
            Err(error) if error.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(BIND_RETRY_INTERVAL_MS));
            }
            result => return result,
        }
    }
}

/// Fails with `AddrInUse` if anything listens on `addr`, even a reuse-port group of another
/// process of ours.
fn probe_free(addr: SocketAddr) -> io::Result<()> {
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into()).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("cannot listen on {addr}: {error} (is another server running?)"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_shares_one_ephemeral_port_and_refuses_a_taken_port() {
        let (fds, bound) = bind_group("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        assert_eq!(fds.len(), 3);
        assert_ne!(bound.port(), 0);
        // A second group on the same fixed port must be refused, not silently shared.
        let error = bind_group(bound, 1).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse, "{error}");
        for fd in fds {
            // SAFETY: each fd came from `into_raw_fd` above and is closed exactly once here.
            unsafe { libc::close(fd) };
        }
    }
}
