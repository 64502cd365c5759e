# Shared by the end-to-end scripts (sourced, not run): which meshmon-agent binary they
# drive and how they run a crate's integration tests.
#
# Run on their own, the scripts build only what they need (`cargo build -p meshmon-agent`
# with the features given). scripts/test sets MESHMON_IT_REUSE_BUILD=1: it has just built
# the whole workspace's tests, so the scripts take that build (the agent binary the
# integration tests ran, with the default features) instead of compiling the dependency
# graph again for another feature set. `-p` alone would resolve features differently from
# `--workspace` and rebuild most dependencies: several minutes of a CI run.

# it_agent_bin [cargo build flags...]: prints the path of a built meshmon-agent.
it_agent_bin() {
  local target="${CARGO_TARGET_DIR:-$root/target}"
  if [ "${MESHMON_IT_REUSE_BUILD:-0}" = 1 ]; then
    # No compilation after scripts/test's `cargo test --workspace --all-targets`; it puts
    # back target/debug/meshmon-agent if a build with other features replaced it.
    cargo test --workspace --all-targets --locked --no-run --quiet >&2
  else
    cargo build --quiet --locked -p meshmon-agent "$@" >&2
  fi
  echo "$target/debug/meshmon-agent"
}

# it_crate_tests CRATE [cargo test flags...] -- FILTER...: runs the tests of CRATE
# (its `tests` binary, when run on its own) that match the filters.
it_crate_tests() {
  local crate="$1"; shift
  local flags=()
  while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do flags+=("$1"); shift; done
  [ "${1:-}" = "--" ] && shift
  if [ "${MESHMON_IT_REUSE_BUILD:-0}" = 1 ]; then
    # Exactly scripts/test's build, so nothing is compiled (`--test tests` alone would
    # leave the benches' dev-dependencies out and resolve other features); the filters
    # select CRATE's tests (a test of the same name in another crate would run too).
    cargo test --workspace --all-targets --locked -- "$@"
  else
    cargo test -p "$crate" "${flags[@]}" --locked --test tests -- "$@"
  fi
}
