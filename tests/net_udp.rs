//! `gort::net::UdpSocket` (issue 6): round trips between goroutines, a
//! connected pair, a receive timeout, bad addresses. 127.0.0.1 only.

mod common;

use common::watchdog;
use gort::net::UdpSocket;
use std::io::ErrorKind;
use std::time::Duration;

#[test]
fn udp_round_trips_between_goroutines() {
    watchdog("udp_round_trips_between_goroutines", 60, || {
        for procs in [1usize, 2, 4] {
            gort::Runtime::builder()
                .gomaxprocs(procs)
                .build()
                .unwrap()
                .run(|| {
                    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
                    let saddr = server.local_addr().unwrap();
                    let echo = gort::go(move || {
                        let mut buf = [0u8; 64];
                        for _ in 0..400 {
                            let (n, from) = server.recv_from(&mut buf).unwrap();
                            server.send_to(&buf[..n], from).unwrap();
                        }
                    });
                    let clients: Vec<_> = (0..4u8)
                        .map(|k| {
                            gort::go(move || {
                                let c = UdpSocket::bind("127.0.0.1:0").unwrap();
                                c.connect(saddr).unwrap();
                                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                                let mut buf = [0u8; 64];
                                for i in 0..100u8 {
                                    c.send(&[k, i]).unwrap();
                                    let n = c.recv(&mut buf).unwrap();
                                    assert_eq!(&buf[..n], &[k, i]);
                                }
                            })
                        })
                        .collect();
                    for h in clients {
                        h.join().unwrap();
                    }
                    echo.join().unwrap();
                });
        }
    });
}

#[test]
fn udp_timeout_and_bad_addresses() {
    watchdog("udp_timeout_and_bad_addresses", 60, || {
        gort::run(|| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            let mut buf = [0u8; 4];
            assert_eq!(
                s.recv_from(&mut buf).unwrap_err().kind(),
                ErrorKind::TimedOut
            );
            assert!(UdpSocket::bind("300.0.0.1:0").is_err());
            assert!(s.send_to(b"x", "127.0.0.1:bad").is_err());
            let other = UdpSocket::bind("127.0.0.1:0").unwrap();
            let e = std::net::UdpSocket::bind(other.local_addr().unwrap());
            assert_eq!(e.unwrap_err().kind(), ErrorKind::AddrInUse);
        });
    });
}
