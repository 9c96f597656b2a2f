#!/usr/bin/env bash
# Builds MetalLB's controller and speaker, at the release pinned in
# e2e/metallbbin/go.mod, from the Go module proxy, and caches them with
# MetalLB's CRDs in a directory named after the version. The migration lab
# (e2e/scenarios, TestMetalLBCutover) runs them beside herald.
#
# Usage: hack/metallbbin.sh        # prints the cache dir as its last stdout line
#   HERALD_METALLB_BIN_DIR=/some/dir  # overrides the cache dir
#
# The dir holds controller, speaker, crds/*.yaml and a VERSION stamp; a
# cache whose stamp names the pinned version is not rebuilt (a cold build
# takes about three minutes on two cores).
set -euo pipefail

METALLB_VERSION=v0.15.2

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin_dir=${HERALD_METALLB_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/herald/metallb-${METALLB_VERSION}}

log() { echo "metallbbin: $*" >&2; }
die() { log "$*"; exit 1; }

grep -Eq "^[[:space:]]*(require )?go.universe.tf/metallb ${METALLB_VERSION}( |$)" "$root/e2e/metallbbin/go.mod" ||
	die "e2e/metallbbin/go.mod does not pin go.universe.tf/metallb ${METALLB_VERSION}"

mkdir -p "$bin_dir"
if command -v flock >/dev/null; then
	exec 9>"$bin_dir/.lock"
	flock 9
fi

if [[ -x "$bin_dir/controller" && -x "$bin_dir/speaker" && -f "$bin_dir/crds/metallb.io_bgppeers.yaml" &&
	"$(cat "$bin_dir/VERSION" 2>/dev/null)" == "$METALLB_VERSION" ]]; then
	echo "$bin_dir"
	exit 0
fi

log "building MetalLB ${METALLB_VERSION} into $bin_dir"
start=$SECONDS
rm -f "$bin_dir/VERSION"
# -mod=readonly: go.sum must already be complete. GOWORK=off keeps
# herald's own module graph out of this build.
(cd "$root/e2e/metallbbin" &&
	CGO_ENABLED=0 GOWORK=off go build -mod=readonly -trimpath -ldflags "-s -w" -o "$bin_dir/" \
		go.universe.tf/metallb/controller go.universe.tf/metallb/speaker)
src=$(cd "$root/e2e/metallbbin" && GOWORK=off go list -mod=readonly -m -f '{{.Dir}}' go.universe.tf/metallb)
[[ -d "$src/config/crd/bases" ]] || die "no CRDs in $src/config/crd/bases"
rm -rf "$bin_dir/crds"
mkdir -p "$bin_dir/crds"
cp "$src"/config/crd/bases/*.yaml "$bin_dir/crds/"
chmod -R u+w "$bin_dir/crds"
echo "$METALLB_VERSION" > "$bin_dir/VERSION"
log "built MetalLB in $((SECONDS - start))s"

echo "$bin_dir"
