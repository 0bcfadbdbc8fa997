#!/usr/bin/env bash
# Scheduler benchmarks, gort vs the Go 1.27.3 anchor, on this machine.
#
#   scripts/bench-vs-go.sh              # 3 rounds (about 4-5 minutes on 2 cores)
#   ROUNDS=5 scripts/bench-vs-go.sh     # more rounds
#   SUITE=all scripts/bench-vs-go.sh    # also issue 5's channel, mutex, timer pairs
#                                       # and issue 4's preemption pairs
#   SUITE=preempt scripts/bench-vs-go.sh  # only the preemption pairs
#   SUITE=issue5 scripts/bench-vs-go.sh   # only issue 5's channel, select, mutex, timer pairs
#   STEAL_ITERS=644 scripts/bench-vs-go.sh   # fix the steal task size
#                                            # (default: Go's calibration, once)
#   scripts/bench-vs-go.sh --dry-run    # print the commands, run nothing
#
# What it does:
#  1. installs Go 1.27.3 (shared/anchors/install-go.sh, cached in
#     ~/.cache/go-anchor) and builds the anchor programs into /tmp;
#  2. builds `cargo bench --bench sched` (retrying if the tree is briefly
#     broken by concurrent edits) and runs its binary directly, one case per
#     process (`--case ...`), with the same sizes as the anchor;
#  3. runs every pair interleaved, gort then Go, case after case, and the
#     whole list ROUNDS times (round-major: A B A B ... so both sides see the
#     same machine noise);
#  4. keeps every run's output in bench-results/vs-go-<stamp>/raw/ and writes
#     results.tsv (every RESULT line), table.md (medians over rounds) and
#     machine.txt; prints table.md.
#
# Every program already reports the median of its own repetitions; the table
# shows the median of those per-run figures over the rounds (for parkmem,
# which is one measurement per process, the median of the rounds).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
anchor="${GO_ANCHOR:-$repo/../shared/anchors/go}"
[ -d "$anchor" ] || anchor=/work/shared/anchors/go
anchor="$(cd "$anchor" && pwd)"
rounds="${ROUNDS:-3}"
gobin="${GO_ANCHOR_BIN:-/tmp/goanchor-bin}"
dry=0
[ "${1:-}" = "--dry-run" ] && dry=1

# ------------------------------------------------------------------ build
echo "== Go anchor: install + build into $gobin" >&2
eval "$("$anchor/../install-go.sh")"
mkdir -p "$gobin"
(cd "$anchor" && go build -o "$gobin/" ./cmd/spawn ./cmd/pingpong ./cmd/forkjoin ./cmd/steal ./cmd/parkmem ./cmd/chan ./cmd/mutex ./cmd/timers ./cmd/preempt)
# The anchor has no select case: Go's four select benchmarks (runtime/chan_test.go)
# as a program of ours, built with the anchor's toolchain.
(cd "$repo/scripts/go-select" && go build -o "$gobin/go-select" .)
# Nor a reply-channel ping-pong (a fresh channel per message): ours too.
(cd "$repo/scripts/go-reply" && go build -o "$gobin/go-reply" .)

echo "== gort: cargo bench --bench sched --no-run" >&2
sched=""
for attempt in 1 2 3 4 5; do
  if out="$(cd "$repo" && cargo bench --bench sched --no-run 2>&1)"; then
    sched="$(printf '%s\n' "$out" | sed -n 's/.*Executable benches\/sched.rs (\(.*\)).*/\1/p' | tail -1)"
    [ -n "$sched" ] && break
  fi
  printf '%s\n' "$out" | tail -20 >&2
  echo "build failed (attempt $attempt); the tree may be mid-edit, retrying in 60 s" >&2
  sleep 60
done
[ -n "$sched" ] || { echo "could not build benches/sched.rs" >&2; exit 1; }
case "$sched" in /*) ;; *) sched="$repo/$sched" ;; esac
# Copy the binary so a concurrent rebuild cannot swap it mid-run.
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out_dir="$repo/bench-results/vs-go-$stamp"
mkdir -p "$out_dir/raw"
cp "$sched" "$out_dir/sched-bin"
sched="$out_dir/sched-bin"

# -------------------------------------------------------- steal task size
if [ -z "${STEAL_ITERS:-}" ]; then
  STEAL_ITERS="$(GOMAXPROCS=1 "$gobin/steal" -tasks 1000 -task-ns 1000 -reps 1 -procs 1 |
    awk '/^RESULT steal_task_iters/ {print $3}')"
fi
echo "== steal: $STEAL_ITERS xorshift iterations per task on both sides" >&2

# ----------------------------------------------------------------- pairs
# name | gort command | Go command   (both run from $out_dir; G=$gobin, S=$sched)
pairs=(
  "spawn-1e5-p1|S --case spawn --procs 1 --n 100000 --reps 5|GOMAXPROCS=1 G/spawn -n 100000 -reps 5"
  "spawn-1e5-p2|S --case spawn --procs 2 --n 100000 --reps 5|GOMAXPROCS=2 G/spawn -n 100000 -reps 5"
  "spawn-1e6-p1|S --case spawn --procs 1 --n 1000000 --reps 5|GOMAXPROCS=1 G/spawn -n 1000000 -reps 5"
  "spawn-1e6-p2|S --case spawn --procs 2 --n 1000000 --reps 5|GOMAXPROCS=2 G/spawn -n 1000000 -reps 5"
  "pingpong-gosched|S --case pingpong --n 1000000 --reps 5|GOMAXPROCS=1 G/pingpong -mode gosched -n 1000000 -reps 5"
  "forkjoin|S --case forkjoin --n 36 --cutoff 10 --reps 3|GOMAXPROCS=2 G/forkjoin -n 36 -cutoff 10 -reps 3 -procs 1,2"
  "steal|S --case steal --tasks 1000000 --iters $STEAL_ITERS --reps 3|GOMAXPROCS=2 G/steal -tasks 1000000 -iters $STEAL_ITERS -reps 3 -procs 1,2"
  "parkmem-1e5|S --case parkmem --n 100000|GOMAXPROCS=2 G/parkmem -n 100000"
  "parkmem-1e6|S --case parkmem --n 1000000|GOMAXPROCS=2 G/parkmem -n 1000000"
)
# SUITE=all adds issue 5's channel, mutex and timer pairs (SUITE=issue5: only them).
issue5_pairs=(
    "chan-pingpong-p1|S --case chan_pingpong --procs 1 --n 1000000 --reps 5|GOMAXPROCS=1 G/pingpong -mode chan -n 1000000 -reps 5"
    "chan-pingpong-p2|S --case chan_pingpong --procs 2 --n 1000000 --reps 5|GOMAXPROCS=2 G/pingpong -mode chan -n 1000000 -reps 5"
    "chan-reply-p1|S --case chan_pingpong --shape reply --procs 1 --n 300000 --reps 5|GOMAXPROCS=1 G/go-reply -n 300000 -reps 5"
    "chan-reply-p2|S --case chan_pingpong --shape reply --procs 2 --n 300000 --reps 5|GOMAXPROCS=2 G/go-reply -n 300000 -reps 5"
    "chan-p1|S --case chan --procs 1 --msgs 2000000 --reps 3|GOMAXPROCS=1 G/chan -msgs 2000000 -reps 3 -pc 1x1,4x4 -caps 1024,0"
    "chan-p2|S --case chan --procs 2 --msgs 2000000 --reps 3|GOMAXPROCS=2 G/chan -msgs 2000000 -reps 3 -pc 1x1,4x4 -caps 1024,0"
    "select-p1|S --case select --procs 1 --ops 2000000 --reps 5|GOMAXPROCS=1 G/go-select -ops 2000000 -reps 5"
    "select-p2|S --case select --procs 2 --ops 2000000 --reps 5|GOMAXPROCS=2 G/go-select -ops 2000000 -reps 5"
    "mutex-8|S --case mutex --g 8 --ops 10000000 --reps 5|GOMAXPROCS=2 G/mutex -g 8 -ops 10000000 -reps 5"
    "mutex-1|S --case mutex --g 1 --ops 10000000 --reps 5|GOMAXPROCS=2 G/mutex -g 1 -ops 10000000 -reps 5"
    "timers-10k|S --case timers --g 10000 --dur-ms 2000 --period-us 1000|GOMAXPROCS=2 G/timers -g 10000 -dur 2s -period 1ms"
    "timers-1|S --case timers --g 1 --dur-ms 2000 --period-us 1000|GOMAXPROCS=2 G/timers -g 1 -dur 2s -period 1ms"
)
if [ "${SUITE:-issue2}" = all ]; then
  pairs+=("${issue5_pairs[@]}")
elif [ "${SUITE:-issue2}" = issue5 ]; then
  pairs=("${issue5_pairs[@]}")
fi

# Issue 4: lateness of a 1 ms sleeper beside 2 call-free spinners on 2 Ps,
# with and without asynchronous preemption (and the idle baseline).
preempt_pairs=(
  "preempt-idle|S --case preempt --spinners 0 --dur-ms 2000|GOMAXPROCS=2 G/preempt -dur 2s -period 1ms -spinners 0"
  "preempt-2|S --case preempt --spinners 2 --dur-ms 2000|GOMAXPROCS=2 G/preempt -dur 2s -period 1ms -spinners 2"
  "preempt-2-off|GODEBUG=asyncpreemptoff=1 S --case preempt --spinners 2 --dur-ms 2000|GOMAXPROCS=2 GODEBUG=asyncpreemptoff=1 G/preempt -dur 2s -period 1ms -spinners 2"
)
if [ "${SUITE:-issue2}" = all ]; then
  pairs+=("${preempt_pairs[@]}")
elif [ "${SUITE:-issue2}" = preempt ]; then
  pairs=("${preempt_pairs[@]}")
fi

expand() { # S/G placeholders -> paths
  local c="$1"
  c="${c/#S /$sched }"
  c="${c// S / $sched }"
  c="${c// G\// $gobin/}"
  printf '%s' "$c"
}

if [ "$dry" = 1 ]; then
  for p in "${pairs[@]}"; do
    IFS='|' read -r name a b <<<"$p"
    echo "# $name"; echo "gort: $(expand "$a")"; echo "go:   $(expand "$b")"
  done
  rm -rf "$out_dir"
  exit 0
fi

load() { cut -d' ' -f1-3 /proc/loadavg; }
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "kernel: $(uname -srm)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
  echo "mem: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "go: $(go version)"
  echo "rustc: $(rustc --version)"
  echo "gort: $(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- runtime src benches alloc 2>/dev/null || echo ' + uncommitted changes in the tree')"
  echo "rounds: $rounds   steal iters/task: $STEAL_ITERS"
  echo "loadavg start: $(load)"
} >"$out_dir/machine.txt"
cat "$out_dir/machine.txt" >&2

printf 'side\tround\tpair\tmetric\tvalue\tunit\n' >"$out_dir/results.tsv"
t_start=$(date +%s)
run() { # side round name cmd
  local side="$1" round="$2" name="$3" cmd="$4" raw t0 rc
  raw="$out_dir/raw/$name.$side.txt"
  t0=$(date +%s.%N)
  echo "### round $round $ $cmd" >>"$raw"
  set +e
  (cd "$out_dir" && if [ "$side" = gort ]; then env -u GOMAXPROCS bash -c "$cmd"; else bash -c "$cmd"; fi) >>"$raw.tmp" 2>&1
  rc=$?
  set -e
  cat "$raw.tmp" >>"$raw"
  printf '### exit %s, wall %.2f s, loadavg %s\n\n' "$rc" "$(echo "$(date +%s.%N) - $t0" | bc)" "$(load)" >>"$raw"
  awk -v s="$side" -v r="$round" -v p="$name" '/^RESULT / {printf "%s\t%s\t%s\t%s\t%s\t%s\n", s, r, p, $2, $3, $4}' "$raw.tmp" >>"$out_dir/results.tsv"
  rm -f "$raw.tmp"
  if [ "$rc" != 0 ]; then echo "FAILED ($rc): $cmd" | tee -a "$out_dir/failures.txt" >&2; fi
}
for round in $(seq 1 "$rounds"); do
  for p in "${pairs[@]}"; do
    IFS='|' read -r name a b <<<"$p"
    echo "== round $round/$rounds $name (load $(load))" >&2
    run gort "$round" "$name" "$(expand "$a")"
    run go "$round" "$name" "$(expand "$b")"
  done
done
echo "loadavg end: $(load)" >>"$out_dir/machine.txt"
echo "wall: $(( $(date +%s) - t_start )) s" >>"$out_dir/machine.txt"

# ----------------------------------------------------------------- table
python3 - "$out_dir" >"$out_dir/table.md" <<'EOF'
import sys, csv, statistics, collections
d = sys.argv[1]
vals = collections.defaultdict(list)  # (side, metric) -> [values over rounds]
by_round = collections.defaultdict(dict)  # (side, metric) -> {round: value}
units = {}
for r in csv.DictReader(open(f"{d}/results.tsv"), delimiter="\t"):
    vals[(r["side"], r["metric"])].append(float(r["value"]))
    by_round[(r["side"], r["metric"])][r["round"]] = float(r["value"])
    units[r["metric"]] = r["unit"]
def paired(m):
    """Median over rounds of the round's gort/Go ratio (the two ran back to
    back, so a host phase that lasts a round hits both)."""
    a, b = by_round.get(("gort", m), {}), by_round.get(("go", m), {})
    rs = [a[k] / b[k] for k in a if k in b and b[k]]
    return statistics.median(rs) if rs else None
def med(side, m):
    xs = vals.get((side, m))
    return statistics.median(xs) if xs else None
def fmt(x):
    if x is None: return "–"
    return f"{x:.3g}" if abs(x) < 10 else f"{x:,.0f}"
# metric, label, better ("lower"/"higher"), target kind
S = lambda n, p: f"spawn_ns_per_goroutine[n={n},procs={p}]"
rows = [
    (S(100000, 1), "spawn ns/goroutine n=1e5 P=1", "lower", "go"),
    (S(100000, 2), "spawn ns/goroutine n=1e5 P=2", "lower", "go"),
    (S(1000000, 1), "spawn ns/goroutine n=1e6 P=1", "lower", "go"),
    (S(1000000, 2), "spawn ns/goroutine n=1e6 P=2", "lower", "go"),
    ("spawn_ns_per_goroutine_cold[n=1000000,procs=1]", "spawn cold (1st rep) n=1e6 P=1", "lower", None),
    ("spawn_ns_per_goroutine_cold[n=1000000,procs=2]", "spawn cold (1st rep) n=1e6 P=2", "lower", None),
    ("pingpong_gosched_ns_per_switch[procs=1]", "yield switch ns (pingpong gosched)", "lower", "go"),
    ("pingpong_gosched_alternation[procs=1]", "yield alternation", "higher", None),
    ("forkjoin_time[n=36,cutoff=10,procs=1]", "forkjoin fib(36) ms P=1", "lower", "go"),
    ("forkjoin_time[n=36,cutoff=10,procs=2]", "forkjoin fib(36) ms P=2", "lower", "go"),
    ("forkjoin_speedup[n=36,cutoff=10,procs=2/1]", "forkjoin speed-up P2/P1", "higher", None),
    ("forkjoin_serial_fib[n=36,procs=2]", "serial fib(36) ms (compute only)", "lower", None),
    ("steal_task_serial_ns[tasks=1000000,procs=2]", "steal task, serial ns", "lower", None),
    ("steal_time[tasks=1000000,procs=1]", "steal 1M tasks ms P=1", "lower", None),
    ("steal_time[tasks=1000000,procs=2]", "steal 1M tasks ms P=2", "lower", None),
    ("steal_scaling[tasks=1000000,procs=2/1]", "steal scaling time1/time2", "higher", "go"),
    ("parkmem_rss_bytes_per_goroutine[n=100000,procs=2]", "RSS B/parked G n=1e5", "lower", None),
    ("parkmem_rss_bytes_per_goroutine[n=1000000,procs=2]", "RSS B/parked G n=1e6", "lower", 5120),
    ("parkmem_pagetable_bytes_per_goroutine[n=1000000,procs=2]", "page tables B/parked G n=1e6", "lower", None),
    ("RSS+PT", "RSS + page tables B/G n=1e6", "lower", 5120),
    ("parkmem_spawn_ns_per_goroutine[n=1000000,procs=2]", "parkmem spawn ns/G n=1e6", "lower", None),
    # issue 5 (SUITE=all)
    ("pingpong_chan_ns_per_roundtrip[procs=1]", "chan ping-pong ns/round trip P=1", "lower", "go"),
    ("pingpong_chan_ns_per_roundtrip[procs=2]", "chan ping-pong ns/round trip P=2", "lower", "go"),
    # Not an issue 5 row (no target): a fresh capacity-1 reply channel per message.
    ("pingpong_chan_ns_per_roundtrip[procs=1,shape=reply]", "reply-channel ping-pong ns/round trip P=1", "lower", None),
    ("pingpong_chan_ns_per_roundtrip[procs=2,shape=reply]", "reply-channel ping-pong ns/round trip P=2", "lower", None),
] + [
    (f"chan_msgs_per_s[cap={c},prod={n},cons={n},procs={p}]", f"chan msgs/s cap={c} {n}x{n} P={p}", "higher", "go")
    for p in (1, 2) for c in (1024, 0) for n in (1, 4)
] + [
    (f"select_ns_per_op[shape={sh},procs={p}]", f"select {sh} ns/op P={p}", "lower", "go")
    for p in (1, 2) for sh in ("uncontended", "sync_contended", "async_contended", "nonblock")
] + [
    ("mutex_ns_per_op[g=8,procs=2]", "Mutex ns/op, 8 goroutines", "lower", "go"),
    ("mutex_ns_per_op[g=1,procs=2]", "Mutex ns/op, uncontended", "lower", "go"),
    ("timers_wakeups_per_s[g=10000,period=1ms,procs=2]", "timers 10k x 1ms wake-ups/s", "higher", "go"),
    ("timers_lateness_p50[g=10000,period=1ms,procs=2]", "timers 10k lateness p50 us", "lower", "go"),
    ("timers_lateness_p99[g=10000,period=1ms,procs=2]", "timers 10k lateness p99 us", "lower", "go"),
    ("timers_lateness_p50[g=1,period=1ms,procs=2]", "timer 1 sleeper lateness p50 us", "lower", "go"),
    ("timers_lateness_p99[g=1,period=1ms,procs=2]", "timer 1 sleeper lateness p99 us", "lower", "go"),
] + [
    (f"preempt_lateness_{q}[spinners={sp},asyncpreempt={a},period=1ms,procs=2]",
     f"preempt lateness {q} us, {sp} spinners, async {a}", "lower", "go" if sp == 2 and a == "on" else None)
    for sp, a in ((0, "on"), (2, "on"), (2, "off")) for q in ("p50", "p99", "max")
] + [
    (f"preempt_samples[spinners={sp},asyncpreempt={a},period=1ms,procs=2]",
     f"preempt samples (ideal 2000), {sp} spinners, async {a}", "higher", None)
    for sp, a in ((2, "on"), (2, "off"))
]
k = "[n=1000000,procs=2]"
for side in ("gort", "go"):
    r = vals.get((side, "parkmem_rss_bytes_per_goroutine" + k), [])
    p = vals.get((side, "parkmem_pagetable_bytes_per_goroutine" + k), [0.0] * len(r))
    if r: vals[(side, "RSS+PT")] = [a + b for a, b in zip(r, p)]
print("| metric | gort | Go 1.27.3 | gort/Go | paired | better | target |")
print("|---|---:|---:|---:|---:|---|---|")
for m, label, better, target in rows:
    a, b = med("gort", m), med("go", m)
    if a is None and b is None:
        continue  # not in this suite
    ratio = f"{a / b:.2f}" if a is not None and b else "–"
    pr = paired(m)
    pratio = f"{pr:.2f}" if pr is not None else "–"
    t = ""
    if target == "go" and a is not None and b is not None:
        # Judged on the paired ratio when there is one.
        if pr is not None:
            ok = pr <= 1 if better == "lower" else pr >= 1
        else:
            ok = a <= b if better == "lower" else a >= b
        t = ("met" if ok else "NOT met") + (" (≤ Go)" if better == "lower" else " (≥ Go)")
    elif isinstance(target, (int, float)) and a is not None:
        t = ("met" if a <= target else "NOT met") + f" (≤ {target} B)"
    print(f"| {label} | {fmt(a)} | {fmt(b)} | {ratio} | {pratio} | {better} | {t} |")
n = max((len(v) for v in vals.values()), default=0)
print(f"\nMedians over {n} rounds of each program's own median; gort/Go < 1 is better for "
      "'lower' rows, > 1 for 'higher' rows. 'paired': the median over rounds of each "
      "round's gort/Go ratio (the pair ran back to back); the target is judged on it. "
      "Per-round values: results.tsv.")
EOF
{
  echo; cat "$out_dir/table.md"; echo
  cat "$out_dir/machine.txt"
  echo "raw output: $out_dir"
  if [ -f "$out_dir/failures.txt" ]; then echo "FAILURES:"; cat "$out_dir/failures.txt"; fi
} | tee "$out_dir/report.txt"
if [ -f "$out_dir/failures.txt" ]; then exit 1; fi
