#!/usr/bin/env bash
# Every test gort has, in one command (what CI runs through .ci/run):
#   1. the workspace's unit, integration, stress, crash and doc tests;
#   2. the loom models of the scheduler protocols (runtime/src/sched/parkword.rs,
#      runtime/src/sched/loom_wakeup.rs, runtime/src/sched/loom_pslot.rs), built
#      with --cfg loom;
#   3. Miri on the pure-logic modules, when a nightly toolchain with Miri is
#      installed (it cannot be fetched on every machine; the step says so and
#      is skipped otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."

# Every test guards itself with a watchdog, but a hang that slips past one
# must fail this script, never run CI into its own limit: each step is
# bounded (the whole run takes ~4 minutes on a 2-core machine).
bounded() {
  local secs=$1; shift
  local rc=0
  timeout --kill-after=30 "$secs" "$@" || rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "error: step did not finish within ${secs} s (hung test?): $*" >&2
  fi
  return "$rc"
}

echo "== cargo test --workspace --release"
bounded 1800 cargo test --workspace --release

echo "== loom models (RUSTFLAGS=--cfg loom)"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  bounded 900 cargo test -p gort-runtime --release --lib loom_

if cargo +nightly miri --version >/dev/null 2>&1; then
  echo "== Miri (strict provenance): gort-alloc, gort-runtime pure-logic modules"
  export MIRIFLAGS="-Zmiri-strict-provenance"
  CARGO_TARGET_DIR=target/miri bounded 1200 cargo +nightly miri test -p gort-alloc --lib
  CARGO_TARGET_DIR=target/miri bounded 1200 cargo +nightly miri test -p gort-runtime --lib -- \
    task:: parkword runq env:: cgroup:: overflow:: glocal:: sched::timer:: chan::select::tests:: sched::g::tests:: \
    landing:: chan::chan::tests:: spinlock:: sync::mutex::tests::
else
  echo "== Miri skipped: no nightly toolchain with Miri here" \
       "(rustup component add --toolchain nightly miri rust-src)"
fi
