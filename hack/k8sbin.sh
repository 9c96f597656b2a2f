#!/usr/bin/env bash
# Builds the pinned binaries that herald's tests and labs run from the Go
# module proxy and caches them in a directory named after their versions:
# the control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler), kube-proxy, kubectl, and the kubelet lab's node runtime
# (kubelet, containerd, containerd-shim-runc-v2, ctr).
#
# Usage: hack/k8sbin.sh            # prints the bin dir as its last stdout line
#   HERALD_K8S_BIN_DIR=/some/dir   # overrides the cache dir
#
# A binary that is already cached and answers --version with the pinned
# version is not rebuilt, so a warm run costs well under a second. The
# versions below must match e2e/k8sbin/go.mod, e2e/etcdbin/go.mod,
# e2e/containerdbin/go.mod and internal/testcluster (which finds the same
# dir); the script checks the go.mod files and the Go package has a test
# for its side.
set -euo pipefail

K8S_VERSION=v1.37.2
ETCD_VERSION=v3.6.16
CONTAINERD_VERSION=v2.4.2

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin_dir=${HERALD_K8S_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/herald/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}}

log() { echo "k8sbin: $*" >&2; }
die() { log "$*"; exit 1; }

# A version bump in go.mod without one here would cache new binaries under
# the old name, and tests would keep running whichever came first.
grep -Eq "^[[:space:]]*(require )?k8s.io/kubernetes ${K8S_VERSION}( |$)" "$root/e2e/k8sbin/go.mod" ||
	die "e2e/k8sbin/go.mod does not pin k8s.io/kubernetes ${K8S_VERSION}"
grep -Eq "^[[:space:]]*(require )?go.etcd.io/etcd/server/v3 ${ETCD_VERSION}( |$)" "$root/e2e/etcdbin/go.mod" ||
	die "e2e/etcdbin/go.mod does not pin go.etcd.io/etcd/server/v3 ${ETCD_VERSION}"
grep -Eq "^[[:space:]]*(require )?github.com/containerd/containerd/v2 ${CONTAINERD_VERSION}( |$)" "$root/e2e/containerdbin/go.mod" ||
	die "e2e/containerdbin/go.mod does not pin github.com/containerd/containerd/v2 ${CONTAINERD_VERSION}"

mkdir -p "$bin_dir"

# Two test runs may warm the cache at the same time; the lock keeps them
# from both spending minutes on the same build.
if command -v flock >/dev/null; then
	exec 9>"$bin_dir/.lock"
	flock 9
fi

# Without these -X flags the binaries call themselves v0.0.0-master, which
# breaks anything that reads the server version (and our cache check).
minor=${K8S_VERSION#v1.}
minor=${minor%%.*}
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	kube_ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION}"
	kube_ldflags+=" -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
	kube_ldflags+=" -X ${pkg}.gitTreeState=clean"
	kube_ldflags+=" -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
done

tmp=""
trap '[[ -z "$tmp" ]] || rm -f "$tmp"' EXIT

# build NAME MODULE_DIR PACKAGE WANT_VERSION_TEXT [LDFLAGS [VERSION_ARGS]]
# VERSION_ARGS (default --version) is split into words.
build() {
	local name=$1 dir=$2 pkg=$3 want=$4 ldflags=${5:-"-s -w"} vflag=${6:---version}
	local dst="$bin_dir/$name" out
	if [[ -x "$dst" ]] && out=$("$dst" $vflag 2>&1) && [[ "$out" == *"$want"* ]]; then
		return
	fi
	log "building $name ($pkg) into $bin_dir"
	local start=$SECONDS
	tmp="$bin_dir/.$name.tmp.$$"
	# -mod=readonly: go.sum must already be complete, so a build never
	# rewrites the committed module files. GOWORK=off: a go.work at the
	# top would pull herald's own module graph into these builds.
	(cd "$root/$dir" &&
		CGO_ENABLED=0 GOWORK=off go build -mod=readonly -trimpath \
			-ldflags "$ldflags" -o "$tmp" "$pkg")
	out=$("$tmp" $vflag 2>&1) || die "$name $vflag failed: $out"
	[[ "$out" == *"$want"* ]] || die "$name $vflag says '$out', want '$want'"
	mv -f "$tmp" "$dst"
	tmp=""
	log "built $name in $((SECONDS - start))s"
}

# One after another: two parallel links of kube-apiserver on a 2-core
# machine take longer than two in a row and risk running out of memory.
build etcd e2e/etcdbin go.etcd.io/etcd/server/v3 "etcd Version: ${ETCD_VERSION#v}"
build kube-apiserver e2e/k8sbin k8s.io/kubernetes/cmd/kube-apiserver "Kubernetes ${K8S_VERSION}" "$kube_ldflags"
build kube-controller-manager e2e/k8sbin k8s.io/kubernetes/cmd/kube-controller-manager "Kubernetes ${K8S_VERSION}" "$kube_ldflags"
build kube-proxy e2e/k8sbin k8s.io/kubernetes/cmd/kube-proxy "Kubernetes ${K8S_VERSION}" "$kube_ldflags"
build kube-scheduler e2e/k8sbin k8s.io/kubernetes/cmd/kube-scheduler "Kubernetes ${K8S_VERSION}" "$kube_ldflags"
build kubelet e2e/k8sbin k8s.io/kubernetes/cmd/kubelet "Kubernetes ${K8S_VERSION}" "$kube_ldflags"
build kubectl e2e/k8sbin k8s.io/kubernetes/cmd/kubectl "Client Version: ${K8S_VERSION}" "$kube_ldflags" "version --client"
containerd_ldflags="-s -w -X github.com/containerd/containerd/v2/version.Version=${CONTAINERD_VERSION}"
build containerd e2e/containerdbin github.com/containerd/containerd/v2/cmd/containerd "$CONTAINERD_VERSION" "$containerd_ldflags"
build containerd-shim-runc-v2 e2e/containerdbin github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 "$CONTAINERD_VERSION" "$containerd_ldflags" -v
build ctr e2e/containerdbin github.com/containerd/containerd/v2/cmd/ctr "$CONTAINERD_VERSION" "$containerd_ldflags"

echo "$bin_dir"
