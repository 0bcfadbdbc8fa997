#!/usr/bin/env python3
"""sched_trace.py — the seed article's go_sched_trace.py, for gort.

Builds examples/http_server.rs, starts it with GODEBUG=schedtrace=500 and
GOMAXPROCS=4, fires 4000 requests from 200 client threads at 127.0.0.1,
parses the SCHED lines with the article's regex and prints its table
(time, idle Ps, Ms, idle Ms, global queue). Runs twice: with the handler's
2 ms sleep parking the goroutine (P-bound) and with --thread-sleep, where it
blocks its thread (M-bound).

    python3 examples/sched_trace.py            # from the repository root
"""
import os, pathlib, re, signal, subprocess, sys, time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

ROOT = pathlib.Path(__file__).resolve().parent.parent
PORT = 18090

subprocess.check_call(["cargo", "build", "--release", "--example", "http_server"], cwd=ROOT)
BIN = ROOT / "target" / "release" / "examples" / "http_server"

trace_re = re.compile(r"SCHED\s+(\d+)ms:\s+gomaxprocs=(\d+)\s+idleprocs=(\d+)\s+threads=(\d+)\s+spinningthreads=(\d+)\s+needspinning=(\d+)\s+idlethreads=(\d+)\s+runqueue=(\d+)")


def hit():
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{PORT}/", timeout=2).read()
        return True
    except Exception:
        return False


def run(label, extra):
    env = {**os.environ, "GODEBUG": "schedtrace=500", "GOMAXPROCS": "4"}
    proc = subprocess.Popen([str(BIN), "--port", str(PORT), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.4)  # let the server bind
    t0 = time.time()
    with ThreadPoolExecutor(max_workers=200) as pool:
        ok = sum(pool.map(lambda _: hit(), range(4000)))
    took = time.time() - t0
    time.sleep(2.5)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate()[1].decode()
    print(f"\n== {label}: {ok}/4000 requests ok in {took:.2f} s")
    print(f"{'time_ms':>8s} {'idleP':>6s} {'M':>4s} {'idleM':>6s} {'globalQ':>8s}")
    for m in trace_re.finditer(err):
        t, gp, idleP, M, _, _, idleM, runq = (int(m.group(i)) for i in (1, 2, 3, 4, 5, 6, 7, 8))
        print(f"{t:>8d} {idleP:>6d} {M:>4d} {idleM:>6d} {runq:>8d}")


run("parking sleep (gort::time::sleep, P-bound)", [])
run("thread sleep (std::thread::sleep, M-bound)", ["--thread-sleep"])
