//! TCP: `TcpListener` and `TcpStream` (std's API shape, Go's behaviour).

use super::{NetFd, as_uninit, check_timeout, deadline_of, each_addr, resolve};
use parking_lot::Mutex;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A TCP listening socket; `accept` parks the goroutine until a connection
/// arrives.
///
/// ```
/// use std::io::{Read, Write};
/// gort_runtime::run(|| {
///     let l = gort_runtime::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = l.local_addr().unwrap();
///     let h = gort_runtime::go(move || {
///         let (mut c, _) = l.accept().unwrap();
///         let mut b = [0u8; 4];
///         c.read_exact(&mut b).unwrap();
///         c.write_all(&b).unwrap();
///     });
///     let mut s = gort_runtime::net::TcpStream::connect(addr).unwrap();
///     s.write_all(b"ping").unwrap();
///     let mut b = [0u8; 4];
///     s.read_exact(&mut b).unwrap();
///     assert_eq!(&b, b"ping");
///     h.join().unwrap();
/// });
/// ```
#[derive(Debug, Clone)]
pub struct TcpListener {
    fd: Arc<NetFd>,
    closed: Arc<AtomicBool>,
    accept_timeout: Arc<Mutex<Option<Duration>>>,
}

impl TcpListener {
    /// Binds to `addr` (the first address that works) and listens.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        let addrs = resolve(addr)?;
        each_addr(&addrs, |a| {
            let s = Socket::new(Domain::for_address(*a), Type::STREAM, Some(Protocol::TCP))?;
            s.set_reuse_address(true)?;
            s.bind(&SockAddr::from(*a))?;
            s.listen(1024)?;
            Ok(TcpListener {
                fd: Arc::new(NetFd::new(s)?),
                closed: Arc::new(AtomicBool::new(false)),
                accept_timeout: Arc::new(Mutex::new(None)),
            })
        })
    }

    /// Accepts a connection, parking until one arrives. Running out of file
    /// descriptors (`EMFILE`) is returned as an error; the listener stays
    /// usable.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        if self.closed.load(Ordering::Acquire) {
            return Err(crate::netpoll::closed_error());
        }
        let dl = deadline_of(*self.accept_timeout.lock());
        let (s, a) = self.fd.io(true, dl, |s| s.accept())?;
        let peer = a.as_socket().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "accepted a non-IP socket")
        })?;
        Ok((TcpStream::from_socket(s)?, peer))
    }

    /// Sets how long `accept` waits (`None`: forever) before failing with
    /// `ErrorKind::TimedOut` (Go's `TCPListener.SetDeadline`, as a
    /// duration like std's socket timeouts). Shared by clones.
    pub fn set_accept_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        check_timeout(t)?;
        *self.accept_timeout.lock() = t;
        Ok(())
    }

    /// An iterator of accepted connections (never `None`).
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { l: self }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        sock_addr(self.fd.sock.local_addr()?)
    }

    /// Another handle to the same listener.
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(self.clone())
    }

    /// Closes the listener for every handle: goroutines blocked in `accept`
    /// wake with an error, as do later calls (Go's `Listener.Close`).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.fd.close();
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.fd.sock.set_ttl(ttl)
    }
}

/// Accepted connections of a [`TcpListener`].
#[derive(Debug)]
pub struct Incoming<'a> {
    l: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.l.accept().map(|(s, _)| s))
    }
}

/// A TCP connection. Reads and writes park the goroutine while the socket
/// is not ready; timeouts act as Go's deadlines (`ErrorKind::TimedOut`).
#[derive(Debug)]
pub struct TcpStream {
    fd: Arc<NetFd>,
    timeouts: Arc<Mutex<Timeouts>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Timeouts {
    read: Option<Duration>,
    write: Option<Duration>,
}

impl TcpStream {
    fn from_socket(s: Socket) -> io::Result<TcpStream> {
        Ok(TcpStream {
            fd: Arc::new(NetFd::new(s)?),
            timeouts: Arc::new(Mutex::new(Timeouts::default())),
        })
    }

    /// Connects to `addr` (each resolved address in turn).
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        let addrs = resolve(addr)?;
        each_addr(&addrs, |a| TcpStream::connect_until(a, None))
    }

    /// Connects, giving up after `timeout` (`ErrorKind::TimedOut`).
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        check_timeout(Some(timeout))?;
        TcpStream::connect_until(addr, Some(Instant::now() + timeout))
    }

    fn connect_until(addr: &SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
        if addr.port() == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "connect to port 0",
            ));
        }
        let s = Socket::new(
            Domain::for_address(*addr),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        let stream = TcpStream::from_socket(s)?;
        match stream.fd.sock.connect(&SockAddr::from(*addr)) {
            Ok(()) => return Ok(stream),
            Err(e)
                if e.raw_os_error() == Some(libc::EINPROGRESS)
                    || e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(crate::netpoll::timed_out());
            }
            stream.fd.wait(false, deadline)?;
            if let Some(e) = stream.fd.sock.take_error()? {
                return Err(e);
            }
            // Writable and no error: connected (a spurious wake-up shows
            // as ENOTCONN from peer_addr; wait again).
            match stream.fd.sock.peer_addr() {
                Ok(_) => return Ok(stream),
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sets the read timeout (`None`: wait forever). Zero is invalid, as in std.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        check_timeout(t)?;
        self.timeouts.lock().read = t;
        Ok(())
    }

    /// Sets the write timeout.
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        check_timeout(t)?;
        self.timeouts.lock().write = t;
        Ok(())
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.timeouts.lock().read)
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.timeouts.lock().write)
    }

    /// Shuts down the read half, the write half, or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.fd.sock.shutdown(how)
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        sock_addr(self.fd.sock.peer_addr()?)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        sock_addr(self.fd.sock.local_addr()?)
    }

    /// Sets `TCP_NODELAY`.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.fd.sock.set_nodelay(on)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.fd.sock.nodelay()
    }

    /// Sets `SO_LINGER` (`Some(ZERO)` makes close send a reset).
    pub fn set_linger(&self, l: Option<Duration>) -> io::Result<()> {
        self.fd.sock.set_linger(l)
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.fd.sock.set_ttl(ttl)
    }

    /// Another handle to the same connection (shares the timeouts).
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream {
            fd: self.fd.clone(),
            timeouts: self.timeouts.clone(),
        })
    }

    /// Reads without consuming (`MSG_PEEK`).
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let dl = deadline_of(self.timeouts.lock().read);
        self.fd.io(true, dl, |s| s.peek(as_uninit(buf)))
    }

    fn recv_into(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let dl = deadline_of(self.timeouts.lock().read);
        self.fd.io(true, dl, |s| s.recv(as_uninit(buf)))
    }

    fn send_from(&self, buf: &[u8]) -> io::Result<usize> {
        let dl = deadline_of(self.timeouts.lock().write);
        self.fd
            .io(false, dl, |s| s.send_with_flags(buf, libc::MSG_NOSIGNAL))
    }
}

pub(super) fn sock_addr(a: SockAddr) -> io::Result<SocketAddr> {
    a.as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an IP socket address"))
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_into(buf)
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_into(buf)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send_from(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send_from(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
