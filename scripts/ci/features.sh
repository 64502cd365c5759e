#!/usr/bin/env bash
# Every feature combination a library user can select, at least: each library crate
# with no default features and with all features (the defaults are what
# `cargo clippy --workspace` and scripts/test already build), then the agent's one-group
# builds (lint only). A crate without a [features] table has only one combination and
# is skipped here.
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
# The agent's smaller builds that the README documents, one command group each
# (`--no-default-features --features prom`). The end-to-end scripts in scripts/test run
# the default build, so these two are linted (and so compiled) here, library and binary.
for f in prom trace; do
  t0=$(date +%s)
  echo "== meshmon-agent --no-default-features --features $f: clippy"
  cargo clippy -p meshmon-agent --no-default-features --features "$f" --lib --bins --locked -- -D warnings
  echo "== meshmon-agent --no-default-features --features $f: $(( $(date +%s) - t0 ))s"
done
