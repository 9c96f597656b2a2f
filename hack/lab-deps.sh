#!/usr/bin/env bash
# Installs the Debian packages the network lab (e2e/lab) runs: routers
# (FRR, BIRD2), nftables for kube-proxy, runc and the CNI plugins for the
# kubelet nodes' containerd, and the client tools (arping, ndisc6, curl,
# conntrack, sysctl). Only what is missing is installed, so a run on a
# ready machine costs a few dpkg queries; `apt-get update` runs only when an
# install is needed.
#
# Usage: hack/lab-deps.sh        (as root)
set -euo pipefail

log() { echo "lab-deps: $*" >&2; }

# package -> a file it installs, to check cheaply without apt.
declare -A probe=(
	[frr]=/usr/lib/frr/bgpd
	[bird2]=/usr/sbin/bird
	[nftables]=/usr/sbin/nft
	[iputils-arping]=/usr/bin/arping
	[ndisc6]=/usr/bin/ndisc6
	[iproute2]=/usr/sbin/ip
	[curl]=/usr/bin/curl
	[conntrack]=/usr/sbin/conntrack
	[procps]=/usr/sbin/sysctl
	[runc]=/usr/sbin/runc
	[containernetworking-plugins]=/usr/lib/cni/bridge
)

missing=()
for pkg in "${!probe[@]}"; do
	if [[ ! -e "${probe[$pkg]}" ]] && ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$pkg")
	fi
done
if ((${#missing[@]} == 0)); then
	exit 0
fi
if [[ $(id -u) != 0 ]]; then
	log "missing packages ${missing[*]}; run this script as root to install them"
	exit 1
fi
log "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# The package lists may be absent (slim images) or stale; one update is
# enough for this run.
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
# The Debian packages start system-wide daemons; the lab runs its own
# instances inside namespaces and must not share the host's.
for svc in frr bird; do
	if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
		systemctl disable --now "$svc" >/dev/null 2>&1 || true
	fi
done
log "done"
