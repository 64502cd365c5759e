#!/usr/bin/env bash
# Creates (idempotently) the Python venv holding Datadog's check toolkit, the oracle for
# meshmon-prom's mapping. Location: $MESHMON_PROM_VENV or ~/.cache/meshmon/prom-oracle-venv.
set -euo pipefail
venv="${MESHMON_PROM_VENV:-$HOME/.cache/meshmon/prom-oracle-venv}"
want="datadog-checks-base[deps]==38.5.0"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import datadog_checks.base, prometheus_client, requests' 2>/dev/null \
   && "$venv/bin/pip" show datadog-checks-base 2>/dev/null | grep -q '^Version: 38.5.0$'; then
  echo "prom-oracle venv ready: $venv"
  exit 0
fi
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
# [deps] pulls prometheus-client and the rest of what the OpenMetrics V2 base check
# imports; its HTTP wrapper needs requests (the [http] extra would also build kerberos).
"$venv/bin/pip" install --quiet "$want" requests requests-toolbelt requests-unixsocket2
"$venv/bin/python" -c 'import datadog_checks.base; print("datadog_checks_base", datadog_checks.base.__version__)'
echo "prom-oracle venv ready: $venv"
