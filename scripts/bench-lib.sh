# Shared by scripts/bench-peers.sh and scripts/bench-alloc-vs-go.sh (sourced,
# not run): building a bench binary, the results folder, and one run.

# bench_bin REPO CARGO-ARGS... : builds with `cargo bench ... --no-run` and
# prints the absolute path of the bench executable it reports.
bench_bin() {
  local repo=$1; shift
  local out path
  out="$(cd "$repo" && cargo bench "$@" --no-run 2>&1)"
  path="$(printf '%s\n' "$out" | sed -n 's/.*Executable benches\/[a-z_]*\.rs (\(.*\)).*/\1/p' | tail -1)"
  [ -n "$path" ] || { printf '%s\n' "$out" | tail -20 >&2; echo "bench build failed" >&2; return 1; }
  case "$path" in /*) ;; *) path="$repo/$path" ;; esac
  printf '%s\n' "$path"
}

# bench_dir REPO PREFIX ROUNDS [EXTRA-LINE...] : makes
# bench-results/PREFIX-<stamp>/, writes its machine.txt (plus any extra
# lines), sets DIR and OUT (results.tsv, emptied).
bench_dir() {
  local repo=$1 prefix=$2 rounds=$3; shift 3
  DIR="$repo/bench-results/$prefix-$(date -u +%Y%m%dT%H%M%SZ)"
  mkdir -p "$DIR"
  OUT="$DIR/results.tsv"; : > "$OUT"
  {
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
    echo "gort: $(git -C "$repo" rev-parse --short HEAD)"
    for line in "$@"; do echo "$line"; done
    echo "rounds: $rounds"
    echo "loadavg start: $(cut -d' ' -f1-3 /proc/loadavg)"
  } > "$DIR/machine.txt"
}

# bench_run SECS ROUND LABEL CMD... : runs CMD (env assignments allowed) for
# at most SECS and appends its RESULT lines to $OUT as
# round<TAB>label<TAB>metric<TAB>value.
bench_run() {
  local secs=$1 r=$2 l=$3; shift 3
  echo "# round $r $l: $* (load $(cut -d' ' -f1 /proc/loadavg))" >&2
  timeout "$secs" env "$@" 2>&1 | awk -v r="$r" -v l="$l" '/^RESULT /{print r"\t"l"\t"$2"\t"$3}' >> "$OUT"
}
