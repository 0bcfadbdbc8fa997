#!/usr/bin/env bash
# Hunts an intermittent hang: runs a test binary again and again beside two
# CPU-burning processes (the load that exposes most races on 2 cores) and,
# when a run outlives LIMIT seconds, dumps every thread's stack with gdb
# before killing it.
#
#   scripts/hunt-hang.sh target/release/deps/net_tcp-<hash> [RUNS] [FILTER]
#   LIMIT=40 OUT=/tmp/hunt scripts/hunt-hang.sh ...
#
# Build the binary first (`cargo test --release --test net_tcp --no-run`).
# Failing runs leave OUT/run.N.out (the test output) and OUT/run.N.gdb (the
# stacks); OUT/summary lists them. Add GODEBUG=schedtrace=1000,scheddetail=1
# to the environment to get the scheduler's view in run.N.out too.
# This is how the net tests' hang (a poller left in epoll_wait at shutdown)
# was found: docs/design/net.md.
set -uo pipefail

bin="${1:?usage: hunt-hang.sh TEST_BINARY [RUNS] [FILTER]}"
runs="${2:-40}"
filter="${3:-}"
limit="${LIMIT:-40}"
out="${OUT:-/tmp/hunt-hang}"
mkdir -p "$out"
command -v gdb >/dev/null || echo "hunt-hang: gdb not found: hung runs are killed without stacks" >&2

sh -c 'while :; do :; done' &
hog1=$!
sh -c 'while :; do :; done' &
hog2=$!
trap 'kill $hog1 $hog2 2>/dev/null' EXIT

fails=0
for i in $(seq 1 "$runs"); do
    # shellcheck disable=SC2086 # the filter is one optional word
    "$bin" -q $filter >"$out/run.$i.out" 2>&1 &
    pid=$!
    t=0
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        t=$((t + 1))
        if [ "$t" -eq "$limit" ]; then
            if command -v gdb >/dev/null; then
                gdb -p "$pid" -batch -ex "set pagination off" -ex "thread apply all bt 30" \
                    >"$out/run.$i.gdb" 2>&1
            fi
            kill -9 "$pid" 2>/dev/null
        fi
    done
    wait "$pid"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        fails=$((fails + 1))
        echo "run $i: exit $rc (after ${t}s)" >>"$out/summary"
    else
        rm -f "$out/run.$i.out"
    fi
done
echo "$fails of $runs runs failed or hung (details in $out/summary)" | tee -a "$out/summary"
