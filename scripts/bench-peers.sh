#!/usr/bin/env bash
# gort against its Rust peers (tokio, may) in the shapes of benches/sched.rs:
# channel ping-pong, channel throughput, select (Go's four select
# benchmarks), mutex, 10,000 and 1 sleepers.
#
#   scripts/bench-peers.sh            # 3 interleaved rounds (~6 minutes)
#   ROUNDS=5 scripts/bench-peers.sh
#
# Builds the Rust anchors' tokio_bench/may_bench (shared/anchors/rust, read
# only: into /tmp/rust-anchor-target) and scripts/peer-mutex and
# scripts/peer-select (the anchors have no mutex or select case) with the
# anchors' Cargo.lock, and gort's sched bench;
# then for each round runs every case as gort, then the peers. Every RESULT
# line goes to bench-results/peers-<stamp>/results.tsv; table.md has the
# median over rounds of each figure. docs/perf-peers.md quotes it.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
. "$repo/scripts/bench-lib.sh"
anchor="${RUST_ANCHOR:-$repo/../shared/anchors/rust}"
[ -d "$anchor" ] || anchor=/work/shared/anchors/rust
rounds="${ROUNDS:-3}"
tgt="${PEER_TARGET:-/tmp/rust-anchor-target}"

echo "== peers: tokio_bench, may_bench (anchors), peer-mutex" >&2
(cd "$anchor" && CARGO_TARGET_DIR="$tgt" cargo build --release --locked --bin tokio_bench --bin may_bench)
for peer in peer-mutex peer-select; do
  pm="$(mktemp -d)"
  cp -r "$repo/scripts/$peer/." "$pm/"
  cp "$anchor/Cargo.lock" "$pm/"
  (cd "$pm" && CARGO_TARGET_DIR="$tgt" cargo build --release)
  rm -rf "$pm"
done
T="$tgt/release/tokio_bench"; M="$tgt/release/may_bench"; P="$tgt/release/peer-mutex"
PS="$tgt/release/peer-select"

echo "== gort: cargo bench --bench sched --no-run" >&2
bench_dir "$repo" peers "$rounds"
dir="$DIR"
cp "$(bench_bin "$repo" --bench sched)" "$dir/sched-bin"; S="$dir/sched-bin"
run() { bench_run 300 "$@"; }
for r in $(seq 1 "$rounds"); do
  for w in 1 2; do
    run "$r" gort "$S" --case chan_pingpong --procs $w --n 200000 --reps 3
    # tokio's pingpong_oneshot shape: a fresh reply channel per message.
    run "$r" gort "$S" --case chan_pingpong --shape reply --procs $w --n 200000 --reps 3
    run "$r" tokio "$T" pingpong rounds=200k workers=$w reps=3
    run "$r" may "$M" pingpong rounds=200k workers=$w reps=3
  done
  for w in 1 2; do
    run "$r" gort "$S" --case chan --procs $w --msgs 500000 --reps 3
    run "$r" tokio "$T" chan msgs=500k workers=$w reps=3
  done
  for w in 1 2; do
    run "$r" gort "$S" --case select --procs $w --ops 1000000 --reps 3
    # The tokio stand-in's shape for sync_contended (capacity 1).
    run "$r" gort "$S" --case select --shape sync_contended_cap1 --procs $w --ops 1000000 --reps 3
    run "$r" tokio "$PS" tokio all $w 1000000 3
    run "$r" may "$PS" may all $w 100000 3
  done
  for g in 8 1; do
    run "$r" gort "$S" --case mutex --g $g --ops 2000000 --reps 3
    run "$r" tokio "$P" tokio $g 2000000 3
    run "$r" tokio_std "$P" tokio_std $g 2000000 3
    run "$r" may "$P" may $g 2000000 3
  done
  run "$r" gort "$S" --case timers --g 10000 --dur-ms 1000 --period-us 1000
  run "$r" tokio "$T" timers tasks=10k secs=1 workers=2
  run "$r" may "$M" timers tasks=10k secs=1 workers=2
  run "$r" gort "$S" --case timers --g 1 --dur-ms 1000 --period-us 1000
  run "$r" tokio "$T" timers tasks=1 secs=1 workers=2
  run "$r" may "$M" timers tasks=1 secs=1 workers=2
done
echo "loadavg end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$dir/machine.txt"

# Median over rounds of every (label, metric).
python3 - "$OUT" > "$dir/table.md" <<'PY'
import sys, statistics, collections
v = collections.defaultdict(list)
for line in open(sys.argv[1]):
    r, label, metric, x = line.rstrip("\n").split("\t")
    v[(label, metric)].append(float(x))
print("| who | metric | median | rounds |")
print("|---|---|---:|---|")
for (label, metric), xs in sorted(v.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    print(f"| {label} | {metric} | {statistics.median(xs):.4g} | {' '.join(f'{x:.4g}' for x in xs)} |")
PY
cat "$dir/table.md"
cat "$dir/machine.txt"
echo "raw: $OUT"
