//! The network poller on pipes: a goroutine waiting for readiness parks
//! (its M runs others), wakes on data, times out on a deadline, and sees a
//! deregistration as an error. Waits with every P busy and at
//! GOMAXPROCS 1–8.

mod common;

use common::watchdog;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

fn nonblocking_pipe() -> (OwnedFd, OwnedFd) {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC)
        .expect("pipe2");
    (r, w)
}

fn read_some(fd: &OwnedFd, pd: &gort::netpoll::PollDesc) -> Vec<u8> {
    let mut buf = [0u8; 64];
    loop {
        match nix::unistd::read(fd, &mut buf) {
            Ok(n) => return buf[..n].to_vec(),
            Err(nix::errno::Errno::EAGAIN) => pd.wait_read(None).expect("wait"),
            Err(e) => panic!("read: {e}"),
        }
    }
}

#[test]
fn goroutines_park_on_pipe_readiness() {
    watchdog("goroutines_park_on_pipe_readiness", 60, || {
        for procs in [1usize, 2, 8] {
            let rt = gort::Runtime::builder().gomaxprocs(procs).build().unwrap();
            rt.run(|| {
                let pairs: Vec<_> = (0..32).map(|_| nonblocking_pipe()).collect();
                let mut readers = Vec::new();
                let mut writers = Vec::new();
                for (i, (r, w)) in pairs.into_iter().enumerate() {
                    let pd = gort::netpoll::register(r.as_raw_fd()).unwrap();
                    readers.push(gort::go(move || {
                        let got = read_some(&r, &pd);
                        pd.deregister();
                        drop(r);
                        got
                    }));
                    writers.push(gort::go(move || {
                        gort::time::sleep(Duration::from_millis(1 + (i as u64 % 5)));
                        nix::unistd::write(&w, &[i as u8; 3]).unwrap();
                    }));
                }
                for h in writers {
                    h.join().unwrap();
                }
                for (i, h) in readers.into_iter().enumerate() {
                    assert_eq!(h.join().unwrap(), vec![i as u8; 3]);
                }
            });
        }
    });
}

#[test]
fn wait_times_out_and_deregister_wakes_waiters() {
    watchdog("wait_times_out_and_deregister_wakes_waiters", 60, || {
        gort::Runtime::builder()
            .gomaxprocs(2)
            .build()
            .unwrap()
            .run(|| {
                let (r, _w) = nonblocking_pipe();
                let pd = std::sync::Arc::new(gort::netpoll::register(r.as_raw_fd()).unwrap());
                let t0 = Instant::now();
                let e = pd
                    .wait_read(Some(Instant::now() + Duration::from_millis(20)))
                    .unwrap_err();
                assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
                assert!(t0.elapsed() >= Duration::from_millis(20));
                let pd2 = pd.clone();
                let waiter = gort::go(move || pd2.wait_read(None));
                gort::time::sleep(Duration::from_millis(5));
                pd.deregister();
                let e = waiter.join().unwrap().unwrap_err();
                assert_eq!(e.kind(), std::io::ErrorKind::NotConnected);
            });
    });
}
