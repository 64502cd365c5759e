#!/usr/bin/env bash
# Python Drain3 on the same corpus as the meshmon-logs criterion bench (not run by CI).
#
# 1. Write the corpus: MESHMON_LOGS_CORPUS_OUT=/tmp/corpus.txt \
#      cargo bench -p meshmon-benches --no-default-features --features logs --bench logs
# 2. scripts/logs-drain3/run.sh /tmp/corpus.txt [N ...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
corpus="${1:?usage: run.sh CORPUS [N ...]}"
shift
venv="${MESHMON_DRAIN3_VENV:-$HOME/.cache/meshmon/drain3-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "drain3==0.9.11"
fi
exec "$venv/bin/python" "$here/drain3_bench.py" "$corpus" "$@"
