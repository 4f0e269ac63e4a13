#!/usr/bin/env bash
# Bring the lab up: check the settings, run playbooks/lab.yml, record what was brought up.
# A lab that was not running before and fails to come up is taken down again: no half-up lab.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
py=${PY:-$top/.venv/bin/python}
lab_dir=${LAB_DIR:-$top/.lab}

was_up=no
supervisorctl -c "$lab_dir/supervisord.conf" pid 2>/dev/null | grep -qE '^[0-9]+$' && was_up=yes
# After a crash (supervisord gone, its children orphaned) the leftovers hold the lab's ports: stop them.
[ "$was_up" = yes ] || [ ! -d "$lab_dir" ] || "$py" -m edge_canary lab-reap "$lab_dir"
"$py" -m edge_canary lab-check

if ! "$(dirname "$py")/ansible-playbook" "$top/playbooks/lab.yml" ${ANSIBLE_ARGS:-}; then
  if [ "$was_up" = no ]; then
    echo "lab-up: failed (see above); stopping what it started" >&2
    "$top/scripts/lab-down.sh" >&2 || true
  else
    echo "lab-up: failed (see above); the lab that was already running is left as it is" >&2
  fi
  exit 1
fi
"$py" -m edge_canary lab-check --record
echo "lab-up: the lab is up; 'make lab-status' shows it, 'make lab-down' stops it"
