#!/usr/bin/env bash
# Every linter the project uses, over the whole tree; non-zero if any of them complains.
set -uo pipefail
shopt -s nullglob
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bin=${VENV:-$top/.venv}/bin
status=0
run() { echo "== $*"; "$@" || status=1; }
run "$bin/ruff" check .
# One mypy run over all the Python: the packages, the tests, the lab's inventory script and the Ansible
# modules (plugins/, or roles/*/library/ where they still are).
mypy_paths=(watcher edge_canary lab tests lab.hosts.py)
[ ! -d plugins ] || mypy_paths+=(plugins)
mypy_paths+=(roles/*/library/*.py)
run "$bin/mypy" "${mypy_paths[@]}"
run "$bin/yamllint" -s .
run "$bin/ansible-lint" --offline -q playbooks roles
exit $status
