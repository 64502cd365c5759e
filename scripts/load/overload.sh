#!/usr/bin/env bash
# Full-length overload runs of meshmon-agent (issue 14, "Overload", bullets 2 and 3):
# the tests of examples/meshmon-agent/tests/overload.rs, which the README's test command
# runs shortened, run here at full length with their figures printed.
#
#   scripts/load/overload.sh [dogstatsd|logs|export|all]      (root, cgroup v1)
#
# Each test starts the real agent binary, moves it into a cgroup v1 CPU group
# (/sys/fs/cgroup/cpu/meshmon-overload-*, created and removed by the test) allowed
# MESHMON_OVERLOAD_CPU_PCT % of one CPU (default 10), measures the agent's capacity
# there and then drives it at 10x:
#
# - dogstatsd: seeded Istio/app DogStatsD datagrams; capacity = datagrams/s parsed while
#   saturated; then MESHMON_OVERLOAD_DSD_SECS (here 60) s at 10x. Prints capacity,
#   offered, sent = received + udp_drops, received = parsed + queue_dropped, the run's
#   marker as aggregated, RSS steady/peak and the RSS curve.
# - logs: seeded CRI lines; capacity = lines/s tailed from a backlog; a burst at 10x for
#   MESHMON_OVERLOAD_LOG_BURST_SECS (here 8) s with a kubelet rotation in the middle.
#   Prints lines written/read, the largest lag, RSS steady/peak, the catch-up time.
# - export: a remote-write target down (connection refused) MESHMON_OVERLOAD_DOWN_SECS
#   (here 180), slower than the timeout MESHMON_OVERLOAD_SLOW_SECS (here 120), then
#   healthy MESHMON_OVERLOAD_HEALTHY_SECS (here 60), scraping MESHMON_OVERLOAD_EXPORT_SERIES
#   (here 2000) series a second into two exports (remote write, Datadog) each bounded at
#   MESHMON_OVERLOAD_EXPORT_QUEUE (here 50000) metrics. Prints scrapes per phase, offered /
#   sent / failed / dropped / queued, queue bound vs RSS. (No CPU quota for this one.)
#
# Under MESHMON_REQUIRE_CORPUS=1 (set here) a missing cgroup fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/../.."
which="${1:-all}"
export MESHMON_REQUIRE_CORPUS=1
export MESHMON_OVERLOAD_DSD_SECS="${MESHMON_OVERLOAD_DSD_SECS:-60}"
export MESHMON_OVERLOAD_LOG_BURST_SECS="${MESHMON_OVERLOAD_LOG_BURST_SECS:-8}"
export MESHMON_OVERLOAD_DOWN_SECS="${MESHMON_OVERLOAD_DOWN_SECS:-180}"
export MESHMON_OVERLOAD_SLOW_SECS="${MESHMON_OVERLOAD_SLOW_SECS:-120}"
export MESHMON_OVERLOAD_HEALTHY_SECS="${MESHMON_OVERLOAD_HEALTHY_SECS:-60}"
export MESHMON_OVERLOAD_EXPORT_SERIES="${MESHMON_OVERLOAD_EXPORT_SERIES:-2000}"
export MESHMON_OVERLOAD_EXPORT_QUEUE="${MESHMON_OVERLOAD_EXPORT_QUEUE:-50000}"
case "$which" in
  dogstatsd) filter=overload::dogstatsd ;;
  logs) filter=overload::log ;;
  export) filter=overload::export ;;
  all) filter=overload:: ;;
  *) echo "usage: $0 [dogstatsd|logs|export|all]" >&2; exit 2 ;;
esac
cargo test -p meshmon-agent --test tests "$filter" -- --nocapture --test-threads=1 2>&1 \
  | grep -E "^(DOGSTATSD|LOGS|EXPORT|RSS curve|  |test |test result|thread '|failures:)|panicked" 
