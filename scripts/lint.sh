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
# modules, reached through the collection's path so their ansible_collections imports resolve.
run "$bin/mypy" watcher edge_canary lab tests lab.hosts.py collections/ansible_collections/edge/canary/plugins
run "$bin/yamllint" -s .
run "$bin/ansible-lint" --offline -q playbooks roles
# ansible-test sanity on the built collection (its first run makes its virtualenvs: minutes; then ~1 min).
run bash scripts/sanity.sh
exit $status
