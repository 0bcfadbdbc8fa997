//! UDP: `UdpSocket` (std's API shape; waits park the goroutine).

use super::tcp::sock_addr;
use super::{NetFd, as_uninit, check_timeout, deadline_of, each_addr, resolve};
use parking_lot::Mutex;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// A UDP socket.
///
/// ```
/// gort_runtime::run(|| {
///     let a = gort_runtime::net::UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b = gort_runtime::net::UdpSocket::bind("127.0.0.1:0").unwrap();
///     a.send_to(b"hi", b.local_addr().unwrap()).unwrap();
///     let mut buf = [0u8; 8];
///     let (n, from) = b.recv_from(&mut buf).unwrap();
///     assert_eq!((&buf[..n], from), (&b"hi"[..], a.local_addr().unwrap()));
/// });
/// ```
#[derive(Debug)]
pub struct UdpSocket {
    fd: Arc<NetFd>,
    timeouts: Arc<Mutex<(Option<Duration>, Option<Duration>)>>,
}

impl UdpSocket {
    /// Binds to `addr` (the first address that works).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        let addrs = resolve(addr)?;
        each_addr(&addrs, |a| {
            let s = Socket::new(Domain::for_address(*a), Type::DGRAM, Some(Protocol::UDP))?;
            s.bind(&SockAddr::from(*a))?;
            Ok(UdpSocket {
                fd: Arc::new(NetFd::new(s)?),
                timeouts: Arc::new(Mutex::new((None, None))),
            })
        })
    }

    /// Sends one datagram to `addr`.
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let to = *resolve(addr)?
            .first()
            .expect("resolve returns at least one");
        let dl = deadline_of(self.timeouts.lock().1);
        let to = SockAddr::from(to);
        self.fd.io(false, dl, |s| s.send_to(buf, &to))
    }

    /// Receives one datagram, parking until one arrives.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let dl = deadline_of(self.timeouts.lock().0);
        let (n, a) = self.fd.io(true, dl, |s| s.recv_from(as_uninit(buf)))?;
        Ok((n, sock_addr(a)?))
    }

    /// Sets the default peer for `send`/`recv`.
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        let addrs = resolve(addr)?;
        each_addr(&addrs, |a| self.fd.sock.connect(&SockAddr::from(*a)))
    }

    /// Sends to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let dl = deadline_of(self.timeouts.lock().1);
        self.fd.io(false, dl, |s| s.send(buf))
    }

    /// Receives from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let dl = deadline_of(self.timeouts.lock().0);
        self.fd.io(true, dl, |s| s.recv(as_uninit(buf)))
    }

    /// Sets the read timeout (`None`: wait forever). Zero is invalid, as in std.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        check_timeout(t)?;
        self.timeouts.lock().0 = t;
        Ok(())
    }

    /// Sets the write timeout (`None`: wait forever).
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        check_timeout(t)?;
        self.timeouts.lock().1 = t;
        Ok(())
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.timeouts.lock().0)
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.timeouts.lock().1)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        sock_addr(self.fd.sock.local_addr()?)
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        sock_addr(self.fd.sock.peer_addr()?)
    }

    /// Another handle to the same socket (shares the timeouts).
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            fd: self.fd.clone(),
            timeouts: self.timeouts.clone(),
        })
    }

    /// Sets `SO_BROADCAST`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.fd.sock.set_broadcast(on)
    }
}
