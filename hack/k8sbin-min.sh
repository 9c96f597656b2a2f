#!/usr/bin/env bash
# Builds the kube-apiserver of the oldest Kubernetes release herald
# supports (docs/install.md, "Requirements") from the Go module proxy and
# caches it in a directory named after its version. A test installs the
# CRDs on it (internal/install, TestCRDsOnMinimumKubernetes) with the etcd
# that hack/k8sbin.sh caches.
#
# Usage: hack/k8sbin-min.sh        # prints the bin dir as its last stdout line
#   HERALD_K8S_MIN_BIN_DIR=/some/dir   # overrides the cache dir
#
# It is apart from hack/k8sbin.sh because only `make test` needs it: the
# lab, the demo and the e2e scenarios run the current release and should
# not wait minutes for a cold build of this one. A cached binary that
# answers --version with the pinned version is not rebuilt, so a warm run
# costs well under a second. The version must match e2e/k8sbin-min/go.mod
# (checked below) and internal/testcluster (checked by its tests).
set -euo pipefail

K8S_VERSION=v1.32.13

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin_dir=${HERALD_K8S_MIN_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/herald/k8s-${K8S_VERSION}}

log() { echo "k8sbin-min: $*" >&2; }
die() { log "$*"; exit 1; }

grep -Eq "^[[:space:]]*(require )?k8s.io/kubernetes ${K8S_VERSION}( |$)" "$root/e2e/k8sbin-min/go.mod" ||
	die "e2e/k8sbin-min/go.mod does not pin k8s.io/kubernetes ${K8S_VERSION}"

mkdir -p "$bin_dir"

# Two test runs may warm the cache at the same time; the lock keeps them
# from both spending minutes on the same build.
if command -v flock >/dev/null; then
	exec 9>"$bin_dir/.lock"
	flock 9
fi

dst="$bin_dir/kube-apiserver"
want="Kubernetes ${K8S_VERSION}"
if [[ -x "$dst" ]] && out=$("$dst" --version 2>&1) && [[ "$out" == "$want" ]]; then
	echo "$bin_dir"
	exit 0
fi

# Without these -X flags the binary calls itself v0.0.0-master, which
# breaks anything that reads the server version (and the check above).
minor=${K8S_VERSION#v1.}
minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION}"
	ldflags+=" -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
	ldflags+=" -X ${pkg}.gitTreeState=clean"
	ldflags+=" -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
done

log "building kube-apiserver ${K8S_VERSION} into $bin_dir"
start=$SECONDS
tmp="$bin_dir/.kube-apiserver.tmp.$$"
trap 'rm -f "$tmp"' EXIT
# -mod=readonly: go.sum must already be complete, so a build never
# rewrites the committed module files. GOWORK=off: a go.work at the top
# would pull herald's own module graph into this build.
(cd "$root/e2e/k8sbin-min" &&
	CGO_ENABLED=0 GOWORK=off go build -mod=readonly -trimpath \
		-ldflags "$ldflags" -o "$tmp" k8s.io/kubernetes/cmd/kube-apiserver)
out=$("$tmp" --version 2>&1) || die "kube-apiserver --version failed: $out"
[[ "$out" == "$want" ]] || die "kube-apiserver --version says '$out', want '$want'"
mv -f "$tmp" "$dst"
log "built kube-apiserver in $((SECONDS - start))s"

echo "$bin_dir"
