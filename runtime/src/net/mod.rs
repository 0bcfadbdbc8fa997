//! Networking on the netpoller (Go's `net` over `netpoll`): TCP and UDP
//! sockets with `std::net`'s API shape whose blocking operations park the
//! goroutine, never its M.
//!
//! Every socket is non-blocking underneath and registered with the poller
//! (`crate::netpoll`) when created. An operation tries the system call
//! first; on `EAGAIN` it waits for readiness ([`PollDesc::wait_read`] /
//! `wait_write`) until its deadline (the socket's read or write timeout,
//! Go's `SetReadDeadline`/`SetWriteDeadline` semantics: a timeout that
//! passes returns `ErrorKind::TimedOut`), then tries again. Outside a
//! running runtime (a plain thread after `run` returned) it waits with
//! `poll(2)` instead, blocking the thread.
//!
//! Name resolution (`ToSocketAddrs`, i.e. `getaddrinfo`, which blocks) runs
//! as a declared blocking call (`gort::blocking`), so a slow DNS lookup
//! never holds a P — the seed article's synchronous-DNS lesson.
//!
//! Design notes: docs/design/net.md.

mod tcp;
mod udp;

pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;

use crate::netpoll::{self, PollDesc, timed_out};
use socket2::Socket;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Resolves `addr` without stalling a P (`getaddrinfo` may block).
fn resolve<A: ToSocketAddrs>(addr: A) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = crate::runtime::blocking(|| addr.to_socket_addrs())?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        ));
    }
    Ok(addrs)
}

/// Runs `f` for each address until one succeeds (std's `each_addr`).
fn each_addr<T>(
    addrs: &[SocketAddr],
    mut f: impl FnMut(&SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addrs {
        match f(a) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

/// A non-blocking socket registered with the poller.
#[derive(Debug)]
pub(crate) struct NetFd {
    pub(crate) sock: Socket,
    pd: Arc<PollDesc>,
}

impl NetFd {
    pub(crate) fn new(sock: Socket) -> io::Result<NetFd> {
        sock.set_nonblocking(true)?;
        sock.set_cloexec(true)?;
        let pd = netpoll::register(sock.as_raw_fd())?;
        Ok(NetFd { sock, pd })
    }

    /// Retries `op` until it does not return `WouldBlock`, waiting for
    /// readiness in `dir` until `deadline`.
    pub(crate) fn io<T>(
        &self,
        read: bool,
        deadline: Option<Instant>,
        mut op: impl FnMut(&Socket) -> io::Result<T>,
    ) -> io::Result<T> {
        loop {
            match op(&self.sock) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(timed_out());
            }
            self.wait(read, deadline)?;
        }
    }

    /// Waits for readiness: a goroutine parks on the poller, a plain thread
    /// uses `poll(2)` (even while some runtime runs: that runtime may stop
    /// and nobody would poll for the thread any more).
    pub(crate) fn wait(&self, read: bool, deadline: Option<Instant>) -> io::Result<()> {
        if !crate::coro::on_goroutine() {
            return poll_fd(self.sock.as_raw_fd(), read, deadline);
        }
        if read {
            self.pd.wait_read(deadline)
        } else {
            self.pd.wait_write(deadline)
        }
    }

    /// Closes for waiters: goroutines blocked on this socket wake with an
    /// error, and later operations fail ("use of closed network connection").
    pub(crate) fn close(&self) {
        self.pd.deregister();
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}

impl Drop for NetFd {
    fn drop(&mut self) {
        self.pd.deregister();
    }
}

/// `poll(2)` one fd (outside the runtime).
fn poll_fd(fd: i32, read: bool, deadline: Option<Instant>) -> io::Result<()> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::BorrowedFd;
    // SAFETY: `fd` is the open socket of the `NetFd` calling us, alive for
    // this call.
    let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
    let ev = if read {
        PollFlags::POLLIN
    } else {
        PollFlags::POLLOUT
    };
    let mut fds = [PollFd::new(bfd, ev)];
    let timeout = match deadline {
        None => PollTimeout::NONE,
        Some(d) => {
            let ms = d
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(i32::MAX as u128) as i32;
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
        }
    };
    match poll(&mut fds, timeout) {
        Ok(0) => Err(timed_out()),
        Ok(_) => Ok(()),
        Err(nix::errno::Errno::EINTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A `&mut [u8]` viewed as uninitialised bytes for socket2's `recv*`.
fn as_uninit(buf: &mut [u8]) -> &mut [std::mem::MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and the socket
    // calls only write initialised bytes into it, so the slice stays
    // initialised for the caller.
    unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) }
}

/// `now + timeout`, for a timeout set on the socket.
fn deadline_of(t: Option<Duration>) -> Option<Instant> {
    t.map(|d| Instant::now() + d)
}

/// std rejects a zero timeout with `InvalidInput`; so do we.
fn check_timeout(t: Option<Duration>) -> io::Result<()> {
    if t == Some(Duration::ZERO) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        ));
    }
    Ok(())
}
