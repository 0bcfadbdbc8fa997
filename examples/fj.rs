fn fib(n: u64) -> u64 {
    if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
}
fn pfib(n: u64) -> u64 {
    if n < 10 {
        return fib(n);
    }
    let a = gort::go(move || pfib(n - 1));
    let b = gort::go(move || pfib(n - 2));
    a.join().unwrap() + b.join().unwrap()
}
fn main() {
    let p: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    gort::Runtime::builder()
        .gomaxprocs(p)
        .build()
        .unwrap()
        .run(|| {
            for _ in 0..3 {
                let t = std::time::Instant::now();
                let v = pfib(36);
                println!("p={p} {v} {:?}", t.elapsed());
            }
        });
}
