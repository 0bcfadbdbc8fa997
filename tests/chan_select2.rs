//! Port of Go's test/chan/select2.go: 100,000 selects must not grow memory
//! (no leaked waiter records). Go allows 110 kB after a GC; we allow 1 MiB of
//! RSS growth (no GC here; allocator and stack caches settle in the warm-up).

mod common;
use common::{rt, watchdog};

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

fn selects(n: usize, c: &gort::chan::Receiver<u64>, dummy: &gort::chan::Receiver<u64>) {
    for _ in 0..n {
        gort::chan::select! {
            recv(c) -> v => { std::hint::black_box(v.unwrap()); }
            recv(dummy) -> _ => unreachable!("nothing is sent on dummy"),
        }
    }
}

/// Held by every test of this binary: RSS is the process's, and another
/// test starting a runtime (threads, stacks, allocator arenas) while this
/// one measures would count as growth.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn select2_no_memory_growth() {
    let _serial = serial();
    watchdog("select2_no_memory_growth", 60, || {
        rt(2).run(|| {
            let (tx, rx) = gort::chan::bounded::<u64>(0);
            let (_dummy_tx, dummy_rx) = gort::chan::bounded::<u64>(0);
            let sender = gort::go(move || {
                let mut i = 0u64;
                while tx.send(i).is_ok() {
                    i += 1;
                }
            });
            selects(100_000, &rx, &dummy_rx); // warm-up
            let before = rss_bytes();
            selects(100_000, &rx, &dummy_rx);
            let after = rss_bytes();
            drop(rx);
            sender.join().unwrap();
            let grew = after.saturating_sub(before);
            assert!(grew < 1 << 20, "100,000 selects grew RSS by {grew} bytes");
        });
    });
}

/// `select!` accepts a comma after block arms, the last one included, as
/// crossbeam-channel's does.
#[test]
fn select_accepts_commas_after_block_arms() {
    let _serial = serial();
    // A runtime without a watchdog could hang CI up to its step bound.
    watchdog("select_accepts_commas_after_block_arms", 30, || {
        gort::run(|| {
            let (tx, rx) = gort::chan::bounded::<u32>(1);
            tx.send(5).unwrap();
            let got = gort::chan::select! {
                recv(rx) -> v => { v.unwrap() },
                default => { 0 },
            };
            assert_eq!(got, 5);
            let sent = gort::chan::select! {
                send(tx, 6) -> r => { r.is_ok() },
            };
            assert!(sent);
            let t = gort::chan::select! {
                recv(rx) -> v => { v.unwrap() }
                default(std::time::Duration::from_millis(1)) => { 0 },
            };
            assert_eq!(t, 6);
        });
    });
}
