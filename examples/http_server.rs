//! A small HTTP/1.1 keep-alive server on `gort::net`, with the seed
//! article's handler: allocate a 4096-byte payload, fill it with `i as u8`,
//! sleep 2 ms, answer `{"ok":true,"len":4096}`. One goroutine per
//! connection.
//!
//! ```text
//! cargo run --release --example http_server -- [--port 18090] [--no-sleep] [--thread-sleep]
//! ```
//!
//! `--thread-sleep` makes the handler block its thread with
//! `std::thread::sleep` instead of parking the goroutine on a timer: the
//! M-bound shape (sysmon must hand the P of every sleeping thread to a new
//! thread), against the default P-bound shape. `examples/sched_trace.py`
//! drives both with `GODEBUG=schedtrace=500`.

use gort::net::{TcpListener, TcpStream};
use std::io::{Read, Write};
use std::time::Duration;

#[derive(Clone, Copy, PartialEq)]
enum Sleep {
    Park,
    Thread,
    None,
}

fn handler(sleep: Sleep) -> Vec<u8> {
    // Allocate to make the heap visible; sleep to make the scheduler visible.
    let mut payload = vec![0u8; 4096];
    for (i, b) in payload.iter_mut().enumerate() {
        *b = i as u8;
    }
    match sleep {
        Sleep::Park => gort::time::sleep(Duration::from_millis(2)),
        Sleep::Thread => std::thread::sleep(Duration::from_millis(2)),
        Sleep::None => {}
    }
    let body = serde_json::json!({ "ok": true, "len": std::hint::black_box(&payload).len() });
    serde_json::to_vec(&body).expect("json")
}

/// Serves one connection until the client closes it (or asks to).
fn serve(mut c: TcpStream, sleep: Sleep) {
    let _ = c.set_nodelay(true);
    let mut buf = vec![0u8; 8192];
    let mut have = 0;
    loop {
        // Parse what we have; read more while the request is partial.
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        let (used, keep_alive) = match req.parse(&buf[..have]) {
            Ok(httparse::Status::Complete(n)) => {
                let close = req.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("connection")
                        && h.value.eq_ignore_ascii_case(b"close")
                });
                let body_len: usize = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                    .unwrap_or(0);
                let http10 = req.version == Some(0);
                if have < n + body_len {
                    (0, true) // the body is still coming
                } else {
                    (n + body_len, !close && !http10)
                }
            }
            Ok(httparse::Status::Partial) => (0, true),
            Err(_) => {
                let _ = c.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                return;
            }
        };
        if used == 0 {
            if have == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            match c.read(&mut buf[have..]) {
                Ok(0) | Err(_) => return,
                Ok(n) => have += n,
            }
            continue;
        }
        let body = handler(sleep);
        let mut resp = Vec::with_capacity(128 + body.len());
        resp.extend_from_slice(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ",
        );
        resp.extend_from_slice(body.len().to_string().as_bytes());
        if !keep_alive {
            resp.extend_from_slice(b"\r\nConnection: close");
        }
        resp.extend_from_slice(b"\r\n\r\n");
        resp.extend_from_slice(&body);
        if c.write_all(&resp).is_err() || !keep_alive {
            return;
        }
        buf.copy_within(used..have, 0);
        have -= used;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args
        .iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .map(|p| p.parse().expect("--port takes a number"))
        .unwrap_or(18090);
    let sleep = if args.iter().any(|a| a == "--no-sleep") {
        Sleep::None
    } else if args.iter().any(|a| a == "--thread-sleep") {
        Sleep::Thread
    } else {
        Sleep::Park
    };
    gort::run(move || {
        let l = match TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("http_server: cannot listen on 127.0.0.1:{port}: {e}");
                std::process::exit(1);
            }
        };
        println!("listening on http://{}", l.local_addr().unwrap());
        loop {
            match l.accept() {
                Ok((c, _)) => drop(gort::go(move || serve(c, sleep))),
                Err(e) => {
                    // EMFILE and friends: report, back off, keep serving.
                    eprintln!("http_server: accept: {e}");
                    gort::time::sleep(Duration::from_millis(10));
                }
            }
        }
    });
}
