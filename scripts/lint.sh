#!/usr/bin/env bash
# Every linter the project uses, over the whole tree; non-zero if any of them complains.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bin=${VENV:-$top/.venv}/bin
status=0
run() { echo "== $*"; "$@" || status=1; }
py_scripts=$(grep -lE '^#!/usr/bin/env python3' scripts/* lab.hosts.py)
run "$bin/ruff" check .
run "$bin/mypy" watcher lab tests collections/ansible_collections/edge/canary/plugins
# Extensionless scripts are each a __main__ module: check them one at a time.
for script in $py_scripts; do run "$bin/mypy" --scripts-are-modules "$script"; done
run "$bin/yamllint" -s .
run "$bin/ansible-lint" --offline -q playbooks roles
# ansible-test sanity on the built collection (its first run makes its virtualenvs: minutes; then ~1 min).
run bash scripts/sanity.sh
exit $status
