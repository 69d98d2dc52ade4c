//! Stopping to accept from a socket that outlives the process (socket activation) without losing
//! a connection.
//!
//! glommio accepts through io_uring. Dropping a pending accept cancels it asynchronously: if a
//! client connected just before the cancellation reached the kernel, the accept has already
//! completed, and the new connection's fd sits in a completion nobody reads, until the process
//! exits and the kernel resets it. With our own reuse-port sockets that is moot (the sockets and
//! their queues die with the process), but a socket inherited from systemd keeps queueing for the
//! next process, and a client that connects during a restart must get an answer from it. Measured
//! before this module: 1 reset request in about 1 of 2 restarts of `tests/socket_activation.rs`.
//!
//! So on drain an executor does not cancel its pending accept: it *completes* it. It connects a
//! "wake-up" connection to the shared socket and keeps accepting, serving what it accepts, until
//! it accepts a wake-up (any executor's). Then no accept of ours is pending, and everything
//! still queued is left to the successor.
//!
//! ```text
//! drain ─► register wake-up address ─► connect (non-blocking) ─► accept … accept ─► wake-up?
//!              (process-wide list)                               (served)          stop: nothing
//!                                                                                  pending
//! ```
//!
//! Why it ends: an executor stops only after it has sent one wake-up and taken one (one that
//! takes another's wake-up before it saw the drain sends its own before stopping). So the wake-ups
//! still queued always equal the executors still accepting that have sent theirs, and each one
//! accepted stops one executor. If something else takes a wake-up (a successor started early),
//! [`WAKE_UP_WAIT_MAX`] bounds the wait and the executor falls back to cancelling.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use futures_lite::future::{or, pending};
use glommio::net::{TcpListener, TcpStream};
use socket2::{Domain, Socket, Type};

/// Longest wait for a wake-up after sending one. Every connection accepted meanwhile is served,
/// so this is not a hard stop; it only bounds the case where another process took the wake-up.
/// Loopback connects are answered by the kernel at once; 2 s leaves room for a deep accept
/// queue being worked off first.
pub const WAKE_UP_WAIT_MAX: Duration = Duration::from_secs(2);

/// The wake-up connections of this process (a handful: one per executor and shared listener).
/// Touched only during drain.
#[derive(Default)]
pub struct WakeUps {
    /// Client ends, kept open until the process exits so a queued wake-up stays valid.
    sockets: Mutex<Vec<(SocketAddr, Socket)>>,
}

impl WakeUps {
    /// Connects a wake-up to `listening` (its loopback form if it listens on all addresses).
    fn send(&self, listening: SocketAddr) -> io::Result<()> {
        let target = loopback_form(listening);
        let socket = Socket::new(Domain::for_address(target), Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        // Bound first, so the address is registered before any executor can accept it.
        socket.bind(&SocketAddr::new(target.ip(), 0).into())?;
        let local = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("wake-up socket has no inet address"))?;
        let mut sockets = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        sockets.push((local, socket));
        let (_, socket) = sockets.last().expect("pushed above");
        match socket.connect(&target.into()) {
            Ok(()) => Ok(()),
            Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => Ok(()),
            Err(error) => {
                sockets.pop();
                Err(error)
            }
        }
    }

    fn is_wake_up(&self, peer: SocketAddr) -> bool {
        let sockets = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        sockets.iter().any(|(local, _)| *local == peer)
    }
}

/// Where a client on this machine reaches a socket listening on `addr`.
fn loopback_form(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// One executor's accepting on one listener, with the stop rule above for shared sockets.
pub struct Acceptor<'a> {
    listener: &'a TcpListener,
    wake_ups: &'a WakeUps,
    /// The socket outlives the process (inherited from systemd).
    shared: bool,
    /// This acceptor has sent its wake-up.
    woken: bool,
}

impl<'a> Acceptor<'a> {
    pub fn new(listener: &'a TcpListener, wake_ups: &'a WakeUps, shared: bool) -> Self {
        Acceptor {
            listener,
            wake_ups,
            shared,
            woken: false,
        }
    }

    /// The next connection to serve; `None` once accepting has stopped for good.
    pub async fn next(
        &mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Option<glommio::Result<TcpStream, ()>> {
        let accepted = if !self.shared {
            or(async { Some(self.listener.accept().await) }, async {
                shutdown.await;
                None
            })
            .await
        } else if self.woken {
            or(async { Some(self.listener.accept().await) }, async {
                glommio::timer::sleep(WAKE_UP_WAIT_MAX).await;
                tracing::warn!(
                    "no wake-up accepted in time; cancelling the accept (a connection arriving \
                     now may be reset)"
                );
                None
            })
            .await
        } else {
            let woken = &mut self.woken;
            let (listener, wake_ups) = (self.listener, self.wake_ups);
            // The accept is never dropped here: after the drain it completes with a wake-up
            // (or a client, who is then served).
            or(async { Some(listener.accept().await) }, async {
                shutdown.await;
                match send_wake_up(listener, wake_ups) {
                    Ok(()) => {
                        *woken = true;
                        pending::<Option<_>>().await
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot connect a wake-up; cancelling the accept");
                        None
                    }
                }
            })
            .await
        };
        let stream = match accepted? {
            Ok(stream) => stream,
            Err(error) => return Some(Err(error)),
        };
        let wake_up = self.shared
            && stream
                .peer_addr()
                .is_ok_and(|p| self.wake_ups.is_wake_up(p));
        if !wake_up {
            return Some(Ok(stream));
        }
        // A wake-up: stop, after sending our own if we took another's before seeing the drain
        // (so every executor still accepting gets one).
        if !self.woken {
            if let Err(error) = send_wake_up(self.listener, self.wake_ups) {
                tracing::warn!(%error, "cannot connect a wake-up for another executor");
            }
        }
        None
    }
}

fn send_wake_up(listener: &TcpListener, wake_ups: &WakeUps) -> io::Result<()> {
    let listening = listener
        .local_addr()
        .map_err(|error| io::Error::other(error.to_string()))?;
    wake_ups.send(listening)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_ups_reach_the_loopback_form_and_are_recognised_by_address() {
        assert_eq!(
            loopback_form("0.0.0.0:80".parse().unwrap()),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(
            loopback_form("[::]:80".parse().unwrap()),
            "[::1]:80".parse().unwrap()
        );
        assert_eq!(
            loopback_form("127.0.0.7:80".parse().unwrap()),
            "127.0.0.7:80".parse().unwrap()
        );

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let wake_ups = WakeUps::default();
        wake_ups.send(listener.local_addr().unwrap()).unwrap();
        let (_, peer) = listener.accept().unwrap();
        assert!(wake_ups.is_wake_up(peer));
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_, other) = listener.accept().unwrap();
        assert_eq!(other, client.local_addr().unwrap());
        assert!(!wake_ups.is_wake_up(other));
    }
}
