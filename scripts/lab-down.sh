#!/usr/bin/env bash
# Stop every lab process (supervisord and its children, and anything a crash left behind).
# Node files, artifacts and Prometheus data stay in the lab folder; `make lab-clean` removes them.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
py=${PY:-$top/.venv/bin/python}
lab_dir=${LAB_DIR:-$top/.lab}
[ -d "$lab_dir" ] || { echo "lab-down: no lab in $lab_dir"; exit 0; }

conf=$lab_dir/supervisord.conf
if [ -f "$conf" ] && pid=$(supervisorctl -c "$conf" pid 2>/dev/null) && [[ $pid =~ ^[0-9]+$ ]]; then
  echo "lab-down: stopping supervisord ($pid) and its programs"
  supervisorctl -c "$conf" shutdown >/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
fi
"$py" -m edge_canary lab-reap "$lab_dir"
# Hosts mode: the namespaces and links the lab made (and whatever still runs in them), from its record.
[ ! -f "$lab_dir/hosts/network.json" ] || "$py" -m edge_canary lab-netns down
rm -f "$lab_dir/supervisor.sock" "$lab_dir/supervisord.pid"
echo "lab-down: no lab process left"
