#!/usr/bin/env bash
# HTTP server benchmark: gort's examples/http_server vs Go net/http (the
# anchor's cmd/httpserver), the seed article's handler, wrk -t2 -c200 on
# 127.0.0.1, with the 2 ms sleep and without, GOMAXPROCS=2, interleaved
# (gort, Go, gort, Go, ...) for ROUNDS rounds; prints medians of req/s and
# p99 latency.
#
#   scripts/bench-http.sh                 # 3 rounds of 10 s runs
#   ROUNDS=1 DUR=3s scripts/bench-http.sh # quick look
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
anchor=/work/shared/anchors/go
rounds="${ROUNDS:-3}"; dur="${DUR:-10s}"
"$repo/scripts/install-wrk.sh" >/dev/null
eval "$("$anchor/../install-go.sh")"
mkdir -p /tmp/goanchor-bin
(cd "$anchor" && go build -o /tmp/goanchor-bin/ ./cmd/httpserver)
(cd "$repo" && cargo build --release --example http_server 2>/dev/null)
out="$(mktemp -d)"
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
one() { # side sleep round
  local side=$1 sl=$2 r=$3 port=$((18100 + RANDOM % 800)) pid
  if [ "$side" = gort ]; then
    if [ "$sl" = 2ms ]; then extra=(); else extra=(--no-sleep); fi
    GOMAXPROCS=2 "$repo/target/release/examples/http_server" --port "$port" "${extra[@]}" >/dev/null 2>&1 & pid=$!
  else
    GOMAXPROCS=2 /tmp/goanchor-bin/httpserver -addr 127.0.0.1:$port -sleep "$sl" -payload 4096 >/dev/null 2>&1 & pid=$!
  fi
  wait_port "$port"
  wrk -t2 -c200 -d2s http://127.0.0.1:$port/ >/dev/null 2>&1 || true   # warm-up
  wrk -t2 -c200 -d"$dur" --latency http://127.0.0.1:$port/ > "$out/$side.$sl.$r.txt" 2>&1 || true
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  rps=$(awk '/Requests\/sec/ {print $2}' "$out/$side.$sl.$r.txt")
  p99=$(awk '$1=="99%" {print $2}' "$out/$side.$sl.$r.txt")
  echo -e "$side\t$sl\t$r\t$rps\t$p99" | tee -a "$out/results.tsv"
}
for r in $(seq 1 "$rounds"); do
  for sl in 2ms 0s; do one gort $sl $r; one go $sl $r; done
done
python3 - "$out/results.tsv" <<'PY'
import sys, statistics, collections
def ms(v):
    v = v.strip()
    for suf, k in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(suf): return float(v[:-len(suf)]) * k
    return float(v)
d = collections.defaultdict(lambda: ([], []))
for line in open(sys.argv[1]):
    side, sl, r, rps, p99 = line.rstrip("\n").split("\t")
    d[(side, sl)][0].append(float(rps)); d[(side, sl)][1].append(ms(p99))
print("\n| handler sleep | gort req/s | Go req/s | gort/Go | gort p99 ms | Go p99 ms |")
print("|---|---:|---:|---:|---:|---:|")
for sl in ("2ms", "0s"):
    g, o = d[("gort", sl)], d[("go", sl)]
    gr, orr = statistics.median(g[0]), statistics.median(o[0])
    print(f"| {sl} | {gr:,.0f} | {orr:,.0f} | {gr/orr:.2f} | {statistics.median(g[1]):.2f} | {statistics.median(o[1]):.2f} |")
PY
echo "raw: $out"
