#!/usr/bin/env bash
# Every feature combination a library user can select, at least: each library crate
# with no default features and with all features (the defaults are what
# `cargo clippy --workspace` and scripts/test already build). A crate without a
# [features] table has only one combination and is skipped here.
#
#   scripts/ci/features.sh            # lint (clippy -D warnings) and test each combination
#   scripts/ci/features.sh --no-test  # lint only
set -euo pipefail
cd "$(dirname "$0")/../.."
run_tests=1
[ "${1:-}" = "--no-test" ] && run_tests=0
crates=(${MESHMON_FEATURE_CRATES:-meshmon-core meshmon-prom meshmon-trace meshmon-logs meshmon-alert})
for c in "${crates[@]}"; do
  if ! grep -q '^\[features\]' "$c/Cargo.toml"; then
    echo "== $c: no features, one combination (covered by the workspace runs)"
    continue
  fi
  for flags in "--no-default-features" "--all-features"; do
    t0=$(date +%s)
    echo "== $c $flags: clippy"
    cargo clippy -p "$c" --all-targets $flags --locked -- -D warnings
    if [ "$run_tests" = 1 ]; then
      echo "== $c $flags: test"
      cargo test -p "$c" --all-targets $flags --locked
      cargo test -p "$c" --doc $flags --locked
    fi
    echo "== $c $flags: $(( $(date +%s) - t0 ))s"
  done
done
