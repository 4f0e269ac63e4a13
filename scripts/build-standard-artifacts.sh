#!/usr/bin/env bash
# Build the standard set of edge binaries a drill or a demo needs, and print their paths.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
py=${PY:-$top/.venv/bin/python}
out=${1:?usage: build-standard-artifacts.sh DIR}
mkdir -p "$out"
while read -r name version fault; do
  "$py" -m edge_canary build-artifact --version "$version" ${fault:+--fault "$fault"} --out "$out/$name"
  echo "$out/$name"
done <<'LIST'
edge-v1 v1
edge-v2 v2
edge-v2-errors v2-errors errors=0.2:502
edge-v2-slow v2-slow latency=0.6
edge-v2-unhealthy v2-unhealthy health=fail
edge-v2-crash v2-crash crash=start
LIST
