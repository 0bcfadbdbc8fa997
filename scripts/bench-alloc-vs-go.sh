#!/usr/bin/env bash
# gort-alloc against the Go 1.27.3 allocator and the malloc floors, on this
# machine, interleaved (issue 3's table in docs/performance.md).
#
#   scripts/bench-alloc-vs-go.sh          # 3 rounds (~10 minutes on 2 cores)
#   ROUNDS=5 scripts/bench-alloc-vs-go.sh
#
# Each round runs, one after the other:
#   gort:  cargo bench -p gort-alloc --bench alloc -- only=gc reps=5
#   Go:    GOMAXPROCS=2 GOGC=3200 alloc -n 10000000 -bytes 1073741824 -reps 5
#          GOMAXPROCS=2 GOGC=100  (same)
#   floor: floor_alloc (glibc malloc and mimalloc, rings of 64)
# and keeps every RESULT line in bench-results/alloc-<stamp>/results.tsv;
# table.md has the median over rounds, gort's gogc_equiv=N beside Go's GOGC=N.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
. "$repo/scripts/bench-lib.sh"
goanchor="${GO_ANCHOR:-$repo/../shared/anchors/go}"
[ -d "$goanchor" ] || goanchor=/work/shared/anchors/go
rsanchor="${RUST_ANCHOR:-$repo/../shared/anchors/rust}"
[ -d "$rsanchor" ] || rsanchor=/work/shared/anchors/rust
rounds="${ROUNDS:-3}"
gobin="${GO_ANCHOR_BIN:-/tmp/goanchor-bin}"
tgt="${PEER_TARGET:-/tmp/rust-anchor-target}"

echo "== Go anchor alloc, floor_alloc, gort-alloc bench" >&2
eval "$("$goanchor/../install-go.sh")"
mkdir -p "$gobin"
(cd "$goanchor" && go build -o "$gobin/" ./cmd/alloc)
(cd "$rsanchor" && CARGO_TARGET_DIR="$tgt" cargo build --release --locked --bin floor_alloc)
bench_dir "$repo" alloc "$rounds" "go: $(go version)"
dir="$DIR"
cp "$(bench_bin "$repo" -p gort-alloc --bench alloc)" "$dir/alloc-bin"; A="$dir/alloc-bin"
run() { bench_run 900 "$@"; }
for r in $(seq 1 "$rounds"); do
  run "$r" gort "$A" only=gc reps=5
  run "$r" go GOMAXPROCS=2 GOGC=3200 "$gobin/alloc" -n 10000000 -bytes 1073741824 -reps 5
  run "$r" go GOMAXPROCS=2 GOGC=100 "$gobin/alloc" -n 10000000 -bytes 1073741824 -reps 5
  run "$r" floor "$tgt/release/floor_alloc" rings=64
done
echo "loadavg end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$dir/machine.txt"

python3 - "$OUT" > "$dir/table.md" <<'PY'
import sys, re, statistics, collections
v = collections.defaultdict(list)
for line in open(sys.argv[1]):
    r, label, metric, x = line.rstrip("\n").split("\t")
    v[metric].append(float(x))
med = {k: statistics.median(xs) for k, xs in v.items()}
def get(k):
    return med.get(k)
print("| size | kind | gort ns @3200 | Go ns @3200 | gort/Go | gort ns @100 | Go ns @100 | gort/Go | gort HeapSys/HeapAlloc @3200 / @100 |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---|")
for size in (16, 64, 256, 4096, 65536):
    for kind in ("noscan", "pointers"):
        row = [str(size), kind]
        for g in (3200, 100):
            a = get(f"gort.alloc_ns[size={size},kind={kind},gogc_equiv={g}]")
            b = get(f"alloc_ns[size={size},kind={kind},gogc={g},procs=2]")
            row += [f"{a:.1f}" if a else "–", f"{b:.1f}" if b else "–",
                    f"{a/b:.2f}" if a and b else "–"]
        h = [get(f"gort.heap_sys_over_heap_alloc[size={size},kind={kind},gogc_equiv={g}]") for g in (3200, 100)]
        row.append(" / ".join(f"{x:.2f}" if x else "–" for x in h))
        print("| " + " | ".join(row) + " |")
print()
print("Floors (malloc+free pairs, ring 64) and every other figure: medians over rounds")
print()
print("| metric | median | rounds |")
print("|---|---:|---|")
for k in sorted(v):
    if k.startswith("gort.alloc_ns") or k.startswith("alloc_ns["):
        continue
    print(f"| {k} | {med[k]:.4g} | {' '.join(f'{x:.4g}' for x in v[k])} |")
PY
cat "$dir/table.md"; cat "$dir/machine.txt"; echo "raw: $OUT"
