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

echo "== cargo test --workspace --release"
cargo test --workspace --release

echo "== loom models (RUSTFLAGS=--cfg loom)"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  cargo test -p gort-runtime --release --lib loom_

if cargo +nightly miri --version >/dev/null 2>&1; then
  echo "== Miri (strict provenance): gort-alloc, gort-runtime pure-logic modules"
  export MIRIFLAGS="-Zmiri-strict-provenance"
  CARGO_TARGET_DIR=target/miri cargo +nightly miri test -p gort-alloc --lib
  CARGO_TARGET_DIR=target/miri cargo +nightly miri test -p gort-runtime --lib -- \
    task:: parkword runq env:: cgroup:: overflow:: glocal::
else
  echo "== Miri skipped: no nightly toolchain with Miri here" \
       "(rustup component add --toolchain nightly miri rust-src)"
fi
