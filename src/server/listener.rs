//! The listening sockets: one per executor, all bound to one port with `SO_REUSEPORT`, so the
//! kernel spreads connections across executors (by 4-tuple hash; it never rebalances).
//!
//! They are created here, in the starting thread, before any executor runs: binding port 0 once
//! and then binding that same port for the others gives every executor the same ephemeral port.
//! `SO_REUSEPORT` also lets a *stale* server silently share a fixed port (stack.md §1d), so a
//! fixed port is first probed with a plain bind that would fail with `EADDRINUSE`.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, IntoRawFd, RawFd};
use std::time::{Duration, Instant};

use socket2::{Domain, SockRef, Socket, Type};

use super::systemd::InheritedSocket;
use super::ServerError;

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

/// One listener role (the main port, or the gRPC-only port): a socket per executor.
#[derive(Debug)]
pub struct Group {
    /// One fd per executor, each to be owned (and closed) by that executor.
    pub fds: Vec<RawFd>,
    /// The address the sockets listen on.
    pub addr: SocketAddr,
    /// Whether the socket came from systemd (`tessera.socket`) rather than our own bind.
    pub inherited: bool,
}

/// The listening sockets of every role.
#[derive(Debug)]
pub struct Listeners {
    pub main: Group,
    pub grpc: Option<Group>,
    /// The S3-only port (`s3.listen`); always bound by us, never taken from systemd.
    pub s3: Option<Group>,
}

/// Opens both roles for `executors` executors: from the sockets systemd passed where there is
/// one for the role (the gRPC-only port is the socket named [`super::systemd::GRPC_SOCKET_NAME`],
/// the main port any other), otherwise by binding `listen` / `grpc_listen` ourselves. The S3-only
/// port (`s3_listen`) is always bound here: systemd has no socket name for it.
pub fn open(
    listen: SocketAddr,
    grpc_listen: Option<SocketAddr>,
    s3_listen: Option<SocketAddr>,
    executors: usize,
    inherited: Vec<InheritedSocket>,
) -> Result<Listeners, ServerError> {
    let (grpc, main): (Vec<_>, Vec<_>) = inherited.into_iter().partition(|s| s.is_grpc());
    let main = match one_of_role(main, "main")? {
        Some(socket) => adopt(&socket, executors, listen)?,
        None => bind_role(listen, executors)?,
    };
    let grpc = match (one_of_role(grpc, "gRPC-only")?, grpc_listen) {
        (Some(socket), _) => Some(adopt(&socket, executors, listen)?),
        (None, Some(addr)) => Some(bind_role(addr, executors)?),
        (None, None) => None,
    };
    let s3 = match s3_listen {
        Some(addr) => Some(bind_role(addr, executors)?),
        None => None,
    };
    Ok(Listeners { main, grpc, s3 })
}

fn one_of_role(
    mut sockets: Vec<InheritedSocket>,
    role: &str,
) -> Result<Option<InheritedSocket>, ServerError> {
    if sockets.len() > 1 {
        let fds: Vec<String> = sockets
            .iter()
            .map(|s| format!("fd {} `{}`", s.fd, s.name))
            .collect();
        return Err(ServerError::Listen {
            addr: format!("the sockets passed by systemd ({})", fds.join(", ")),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} sockets for the {role} port, Tessera serves one (name the gRPC-only \
                     socket FileDescriptorName=grpc; listen on one address per socket unit)",
                    sockets.len()
                ),
            ),
        });
    }
    Ok(sockets.pop())
}

fn bind_role(addr: SocketAddr, executors: usize) -> Result<Group, ServerError> {
    let (fds, addr) = bind_group(addr, executors).map_err(|source| ServerError::Listen {
        addr: addr.to_string(),
        source,
    })?;
    Ok(Group {
        fds,
        addr,
        inherited: false,
    })
}

fn adopt(
    socket: &InheritedSocket,
    executors: usize,
    listen: SocketAddr,
) -> Result<Group, ServerError> {
    let (fds, addr) =
        share_inherited(socket.fd, executors).map_err(|source| ServerError::Listen {
            addr: format!("fd {} `{}` passed by systemd", socket.fd, socket.name),
            source,
        })?;
    tracing::info!(
        fd = socket.fd,
        name = %socket.name,
        %addr,
        "listening on a socket passed by systemd (socket activation)"
    );
    if !socket.is_grpc() && addr != listen {
        tracing::info!(%listen, "the `listen` setting is not used: systemd's socket is");
    }
    Ok(Group {
        fds,
        addr,
        inherited: true,
    })
}

/// Shares one inherited listening socket among `executors` executors: every executor accepts
/// from the same kernel queue, through its own duplicate of the fd (`F_DUPFD_CLOEXEC`), so each
/// glommio listener can own and close its fd while systemd (and a successor process) keeps the
/// socket itself open. Also sets `O_NONBLOCK`, which glommio's accept path expects: it tries a
/// plain `accept` before queueing one on the ring.
pub fn share_inherited(fd: RawFd, executors: usize) -> io::Result<(Vec<RawFd>, SocketAddr)> {
    // SAFETY: `fd` was checked to be an open listening socket (`systemd::inherited_sockets`)
    // and stays open for the whole borrow: it is closed only by the executor that owns it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let socket = SockRef::from(&borrowed);
    socket.set_nonblocking(true)?;
    let addr = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("the inherited socket has no inet address"))?;
    let mut fds = vec![fd];
    for _ in 1..executors {
        // SAFETY: F_DUPFD_CLOEXEC on an open fd returns a new fd or -1; no memory is involved.
        let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if copy < 0 {
            let error = io::Error::last_os_error();
            for fd in &fds[1..] {
                // SAFETY: each is a duplicate made above and owned by nobody else yet.
                unsafe { libc::close(*fd) };
            }
            return Err(error);
        }
        fds.push(copy);
    }
    Ok((fds, addr))
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

    #[test]
    fn an_inherited_socket_is_shared_by_every_executor_through_duplicates() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let fd = listener.into_raw_fd();
        let (fds, shared_addr) = share_inherited(fd, 3).unwrap();
        assert_eq!(shared_addr, addr);
        assert_eq!(fds.len(), 3);
        assert_eq!(fds[0], fd);
        // Every duplicate is the same socket: a connection queued once is accepted through any.
        let _client = std::net::TcpStream::connect(addr).unwrap();
        // SAFETY: fds[2] is a duplicate owned by this test; the std listener takes it over.
        let through_copy =
            unsafe { <std::net::TcpListener as std::os::fd::FromRawFd>::from_raw_fd(fds[2]) };
        through_copy.set_nonblocking(false).unwrap();
        let (_accepted, _) = through_copy.accept().unwrap();
        // Closing one duplicate leaves the socket listening for the others.
        drop(through_copy);
        let _second = std::net::TcpStream::connect(addr).unwrap();
        // SAFETY: fds[0] is owned by this test; the std listener takes it over.
        let original =
            unsafe { <std::net::TcpListener as std::os::fd::FromRawFd>::from_raw_fd(fds[0]) };
        original.accept().unwrap();
        // SAFETY: fds[1] is a duplicate owned by this test, closed once.
        unsafe { libc::close(fds[1]) };
    }
}
