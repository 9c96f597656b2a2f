#!/usr/bin/env bash
# Renders manifests/install.yaml from the kustomize bases in config/default
# with sigs.k8s.io/kustomize/api (the library behind `kubectl apply -k`), so
# no kustomize binary is needed. Run by hack/update-codegen.sh (and so by
# `make generate` and `make verify`) after the CRDs and RBAC roles it
# includes have been regenerated. Run from anywhere:
# bash hack/update-manifests.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

mkdir -p manifests
go run ./internal/install/render -dir config/default -out manifests/install.yaml
