#!/usr/bin/env bash
# make demo: bring the lab up, show it serving traffic, then a real canary deploy of a good release
# (promoted and rolled to every node) and a real one of a bad release (reverted by the SLI watcher).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
py=${PY:-$top/.venv/bin/python}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Bringing the lab up (HAProxy, Prometheus, supervisord, edge nodes, background traffic)"
bash scripts/lab-up.sh >/tmp/edge-canary-demo-lab-up.log 2>&1 || { cat /tmp/edge-canary-demo-lab-up.log; exit 1; }
"$py" -m edge_canary lab-status

say "Building the demo releases (v1, v2 and faulty v2s) into artifacts/"
bash scripts/build-standard-artifacts.sh "$top/artifacts" | grep -v '^built'

port=$("$py" -c 'from edge_canary.lab.settings import load; print(load().haproxy_port)')
say "5 s of traffic through HAProxy (127.0.0.1:$port)"
"$py" -m edge_canary loadgen --url "http://127.0.0.1:$port/" --rps 40 --duration 5

say "Canary deploy of a good release (v2): canary, SLI watch, then the peers"
ARTIFACT="$top/artifacts/edge-v2" "$py" -m edge_canary deploy-canary

say "Canary deploy of a bad release (v2-errors, 20 % of answers 502): the watcher reverts the canary"
if ARTIFACT="$top/artifacts/edge-v2-errors" CANARY_NODE=edge-2 "$py" -m edge_canary deploy-canary; then
  echo "demo: the bad release was promoted — that is a bug" >&2
  exit 1
fi

say "The fleet now"
"$py" -m edge_canary lab-status
echo
echo "demo: done. The lab keeps running: 'make lab-status', 'make rollback', 'make lab-down'."
