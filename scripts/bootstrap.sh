#!/usr/bin/env bash
# Set up what the lab and the tests need on a Debian machine: the Debian packages, then the
# project's virtual environment. Each half is skipped when it is already there.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$top/.venv}
python=${PYTHON:-python3}
# haproxy/prometheus/supervisor run the lab; iproute2/procps for lab-status and clean-up; openssh-server
# (and its client) for the hosts-mode lab, where every node runs an sshd of its own; nftables for its
# partition drill that cuts the watcher off from Prometheus; systemd for `systemd-analyze verify` of the
# production unit (it runs offline: systemd need not be PID 1); prometheus-alertmanager routes the deploy's
# notifications in the lab.
packages=${EDGE_CANARY_DEB_PACKAGES:-haproxy prometheus supervisor iproute2 procps openssh-server openssh-client nftables systemd prometheus-alertmanager}

missing=()
for pkg in $packages; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done

if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: missing Debian packages; run: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The lab runs these under its own supervisord: keep the packaged services from starting.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp=$venv/.installed
want=$(sha256sum "$top/pyproject.toml" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "bootstrap: installing the Python environment in $venv"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -e "$top[dev]" >"$venv/pip-install.log" 2>&1 \
  || { cat "$venv/pip-install.log" >&2; echo "bootstrap: pip install failed (log above)" >&2; exit 1; }
echo "$want" >"$stamp"
