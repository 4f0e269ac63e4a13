#!/usr/bin/env bash
# ansible-test sanity on the collection edge.canary, as `ansible-galaxy collection build` ships it.
#
# ansible-test wants the collection at .../ansible_collections/edge/canary in a real directory (it
# resolves the collections/ link back to the repository), so the built tarball is unpacked into a
# temp dir and tested there. Each sanity test runs in a virtualenv of its own that ansible-test
# makes and pip-installs from PyPI; they live in $VENV/ansible-test (its HOME here), made on the
# first run and reused after. SANITY_ARGS adds ansible-test options (e.g. --test pylint).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$top/.venv}
bin=$venv/bin
home=$venv/ansible-test

# Every sanity test of ansible-core runs (ansible-test sanity --list-tests). Two need tools that are
# not installed, pslint (pwsh) and shellcheck; they pass with nothing to check because the tarball has
# no PowerShell and no shell script. compile and import run on Python 3.11 only: the one Python here
# (no other interpreter, and no --docker: Docker Hub is out of reach).

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dest=$work/ansible_collections/edge/canary
mkdir -p "$dest"
"$bin/ansible-galaxy" collection build "$top" --output-path "$work" >/dev/null
tar -xzf "$work"/edge-canary-*.tar.gz -C "$dest"

# ansible-test bootstraps pip in each new virtualenv with a get-pip.py it downloads from
# ci-files.testing.ansible.com, which this network does not reach. This stand-in does the same job
# with the pip the Python standard library bundles (ensurepip), then installs what ansible-test asks
# for from PyPI. Named for the pip version ansible-test wants, found in its own sources.
pip_version=$("$bin/python" -c 'from ansible_test._internal.python_requirements import PIP_VERSION; print(PIP_VERSION)' 2>/dev/null || echo 24.2)
mkdir -p "$home/.ansible/test/cache"
cat >"$home/.ansible/test/cache/get_pip_${pip_version//./_}.py" <<'PY'
"""Stand-in for get-pip.py: pip from ensurepip, then `pip install <the arguments>`."""
import importlib
import runpy
import subprocess
import sys

# In a process of its own: ensurepip turns pip's configuration off (PIP_CONFIG_FILE=/dev/null) in the
# process that calls it, and the install below needs it (the certificate authority, the index).
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
importlib.invalidate_caches()
# --no-setuptools and --no-wheel are get-pip.py's own options, not pip's.
sys.argv = ["pip", "install", *(a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel"))]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
PY

cd "$dest"
export PIP_CACHE_DIR=${PIP_CACHE_DIR:-$HOME/.cache/pip}
# shellcheck disable=SC2086  # SANITY_ARGS is a list of options
HOME=$home PATH=$bin:$PATH "$bin/ansible-test" sanity --python 3.11 --color no ${SANITY_ARGS:-}
