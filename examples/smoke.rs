fn main() {
    let t = std::time::Instant::now();
    let r = gort::run(|| {
        let hs: Vec<_> = (0..1000u64)
            .map(|i| {
                gort::go(move || {
                    gort::yield_now();
                    i
                })
            })
            .collect();
        let s: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        let mut v = vec![1, 2, 3];
        gort::scope(|sc| {
            sc.go(|| v.push(4));
        });
        (
            s,
            v.len(),
            gort::runtime::gomaxprocs(),
            gort::runtime::num_goroutine(),
        )
    });
    println!("{r:?} {:?}", t.elapsed());
}
