//! Goroutine-local storage follows the goroutine, not the thread.

mod common;
use common::{rt, watchdog};
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

gort::goroutine_local! {
    static COUNTER: Cell<u64> = Cell::new(0);
    static NAME: RefCell<String> = RefCell::new(String::from("unnamed"));
}

struct CountDrops(Arc<AtomicUsize>);
impl Drop for CountDrops {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

static DROPS: std::sync::OnceLock<Arc<AtomicUsize>> = std::sync::OnceLock::new();

gort::goroutine_local! {
    static DROPPER: CountDrops = CountDrops(DROPS.get_or_init(Default::default).clone());
}

#[test]
fn each_goroutine_has_its_own_value_across_migrations() {
    watchdog(
        "each_goroutine_has_its_own_value_across_migrations",
        60,
        || {
            rt(4).run(|| {
                let hs: Vec<_> = (0..64u64)
                    .map(|i| {
                        gort::go(move || {
                            for k in 0..200 {
                                COUNTER.with(|c| c.set(c.get() + i));
                                if k % 3 == 0 {
                                    gort::yield_now(); // may resume on another M
                                }
                            }
                            COUNTER.with(|c| c.get())
                        })
                    })
                    .collect();
                for (i, h) in hs.into_iter().enumerate() {
                    assert_eq!(h.join().unwrap(), 200 * i as u64);
                }
            });
        },
    );
}

#[test]
fn nested_keys_and_blocking_inside_with() {
    watchdog("nested_keys_and_blocking_inside_with", 30, || {
        rt(2).run(|| {
            NAME.with(|n| {
                *n.borrow_mut() = "main".into();
                COUNTER.with(|c| c.set(7)); // another key inside `with`
                gort::yield_now(); // blocking inside `with` is allowed
                gort::time::sleep(std::time::Duration::from_millis(1));
                assert_eq!(&*n.borrow(), "main");
            });
            assert_eq!(COUNTER.with(|c| c.get()), 7);
            let child = gort::go(|| NAME.with(|n| n.borrow().clone()))
                .join()
                .unwrap();
            assert_eq!(child, "unnamed");
        });
    });
}

#[test]
fn values_are_dropped_when_the_goroutine_ends() {
    watchdog("values_are_dropped_when_the_goroutine_ends", 30, || {
        let drops = DROPS.get_or_init(Default::default).clone();
        let before = drops.load(Ordering::SeqCst);
        rt(2).run(|| {
            let hs: Vec<_> = (0..10).map(|_| gort::go(|| DROPPER.with(|_| ()))).collect();
            for h in hs {
                h.join().unwrap();
            }
            // A goroutine that never touches the key creates nothing.
            gort::go(|| ()).join().unwrap();
        });
        // Each value is dropped at the end of its goroutine, before `run`
        // returns (a G whose body finished).
        let mut n = drops.load(Ordering::SeqCst) - before;
        for _ in 0..100 {
            if n >= 10 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
            n = drops.load(Ordering::SeqCst) - before;
        }
        assert_eq!(n, 10);
    });
}

#[test]
fn plain_threads_get_per_thread_values() {
    let t = std::thread::spawn(|| {
        COUNTER.with(|c| c.set(5));
        COUNTER.with(|c| c.get())
    });
    assert_eq!(t.join().unwrap(), 5);
    assert_eq!(
        std::thread::spawn(|| COUNTER.with(|c| c.get()))
            .join()
            .unwrap(),
        0
    );
}
