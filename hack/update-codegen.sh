#!/usr/bin/env bash
# Regenerates everything derived from internal/apis: deepcopy functions and
# CRD manifests (controller-gen), and the typed clientset, listers and
# informers (code-generator); the RBAC roles from the +kubebuilder:rbac
# markers; and, last, manifests/install.yaml from config/ (which includes
# the CRDs and roles). Tools are pinned by the tool directives in
# go.mod. Run from the repository root: bash hack/update-codegen.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

module=github.com/heraldlb/herald
boilerplate=hack/boilerplate.go.txt
apis_pkg="${module}/internal/apis"
client_dir=internal/client
client_pkg="${module}/${client_dir}"
groups=herald/v1alpha1

# Deepcopy: controller-gen is the only deepcopy generator (no deepcopy-gen).
go tool controller-gen object:headerFile="${boilerplate}" paths=./internal/apis/...

# CRDs: stale files are removed first so a renamed kind leaves nothing behind.
rm -f config/crd/bases/*.yaml
go tool controller-gen crd paths=./internal/apis/... output:crd:artifacts:config=config/crd/bases

# RBAC: one ClusterRole (and one Role for herald's namespace) per binary,
# from the +kubebuilder:rbac markers in each package's rbac.go.
rm -f config/rbac/controller_role.yaml config/rbac/speaker_role.yaml
go tool controller-gen rbac:roleName=herald-controller,fileName=controller_role.yaml,headerFile=hack/boilerplate.rbac.yaml.txt \
	paths=./internal/controller/... output:rbac:artifacts:config=config/rbac
go tool controller-gen rbac:roleName=herald-speaker,fileName=speaker_role.yaml,headerFile=hack/boilerplate.rbac.yaml.txt \
	paths=./internal/speaker/... output:rbac:artifacts:config=config/rbac

# Clients: generated from scratch each time so deleted types leave nothing
# behind.
rm -rf "${client_dir}/clientset" "${client_dir}/listers" "${client_dir}/informers"

go tool client-gen \
	--go-header-file "${boilerplate}" \
	--clientset-name versioned \
	--input-base "${apis_pkg}" \
	--input "${groups}" \
	--output-dir "${client_dir}/clientset" \
	--output-pkg "${client_pkg}/clientset"

go tool lister-gen \
	--go-header-file "${boilerplate}" \
	--output-dir "${client_dir}/listers" \
	--output-pkg "${client_pkg}/listers" \
	"${apis_pkg}/${groups}"

go tool informer-gen \
	--go-header-file "${boilerplate}" \
	--versioned-clientset-package "${client_pkg}/clientset/versioned" \
	--listers-package "${client_pkg}/listers" \
	--single-directory \
	--output-dir "${client_dir}/informers" \
	--output-pkg "${client_pkg}/informers" \
	"${apis_pkg}/${groups}"

# The install manifest embeds the CRDs and roles generated above.
hack/update-manifests.sh
