# herald — see README.md. `make help` lists the targets.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# The commit's time, not the clock's: images built twice from one commit
# have the same digests.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
export SOURCE_DATE_EPOCH
LDFLAGS := -s -w -X github.com/heraldlb/herald/internal/version.Version=$(VERSION) -X github.com/heraldlb/herald/internal/version.Revision=$(REVISION)
# Release builds: static, no local paths, no VCS stamp beyond the ldflags
# (a dirty tree must not change the bytes of a binary built from a commit).
GOBUILD := CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags '$(LDFLAGS)'
IMAGE_PLATFORMS := linux/amd64 linux/arm64
CTL_PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
DIST ?= dist
GOLANGCI_LINT := go tool -modfile=hack/tools/go.mod golangci-lint
# Tests that need root (network namespaces, raw sockets) carry the
# `privileged` build tag; they are compiled in only when we are root, and
# the test run says loudly when they were left out.
IS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo yes)
TEST_TAGS := $(if $(IS_ROOT),privileged,)
FUZZTIME ?= 30s
BENCHTIME ?= 1s
GO_MODULES := . e2e/k8sbin e2e/k8sbin-min e2e/etcdbin e2e/containerdbin hack/tools

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: ## Regenerate deepcopy, clientset, listers, informers, CRDs, RBAC roles and manifests/install.yaml.
	hack/update-codegen.sh

.PHONY: manifests
manifests: ## Render manifests/install.yaml from config/default (part of generate).
	hack/update-manifests.sh

.PHONY: verify
verify: ## Fail if generated files or go.mod/go.sum are stale.
	hack/verify.sh

.PHONY: lint
lint: ## Run golangci-lint (staticcheck, revive, errcheck, depguard layering).
	$(GOLANGCI_LINT) run ./...

.PHONY: fmt
fmt: ## gofmt every Go file.
	gofmt -w $$(git ls-files '*.go')

##@ Test

.PHONY: k8sbin
k8sbin: ## Build (once, cached) etcd, the Kubernetes binaries and containerd for the tests and the lab.
	hack/k8sbin.sh

.PHONY: k8sbin-min
k8sbin-min: ## Build (once, cached) the kube-apiserver of the oldest supported Kubernetes, for `make test`.
	hack/k8sbin-min.sh

.PHONY: test
test: k8sbin k8sbin-min ## Unit, integration (real API server) and, as root, privileged and lab tests.
	@if [ -z "$(IS_ROOT)" ]; then echo "WARNING: not root: privileged tests (network namespaces, raw sockets, the lab) are NOT compiled in and do NOT run"; else hack/lab-deps.sh; fi
	HERALD_K8S_BIN_DIR="$$(hack/k8sbin.sh | tail -n1)" HERALD_K8S_MIN_BIN_DIR="$$(hack/k8sbin-min.sh | tail -n1)" go test -tags '$(TEST_TAGS)' -timeout 40m -count=1 ./...

.PHONY: test-race
test-race: k8sbin k8sbin-min ## The test suite under the race detector.
	HERALD_K8S_BIN_DIR="$$(hack/k8sbin.sh | tail -n1)" HERALD_K8S_MIN_BIN_DIR="$$(hack/k8sbin-min.sh | tail -n1)" go test -race -tags '$(TEST_TAGS)' -timeout 60m -count=1 ./...

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME (default 30s) each.
	@for pkg in $$(go list ./...); do \
	  for f in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f ($(FUZZTIME))"; \
	    go test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

.PHONY: bench
bench: k8sbin ## Run the benchmarks (BENCHTIME, default 1s).
	HERALD_K8S_BIN_DIR="$$(hack/k8sbin.sh | tail -n1)" go test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -timeout 60m ./...

##@ Build

.PHONY: build
build: ## Build the binaries into bin/ (VERSION=v0.1.0 stamps that version).
	$(GOBUILD) -o bin/ ./cmd/...

.PHONY: images
images: ## Build the controller and speaker images (linux/amd64, linux/arm64) as OCI archives into $(DIST)/, and check them.
	@case "$(VERSION)" in v[0-9]*.[0-9]*.[0-9]*) ;; *) echo "images: VERSION=$(VERSION) is not a release version; using v0.0.0-dev"; $(MAKE) --no-print-directory images VERSION=v0.0.0-dev; exit 0;; esac; \
	rm -rf $(DIST)/bin $(DIST)/oci; mkdir -p $(DIST)/oci; \
	for p in $(IMAGE_PLATFORMS); do \
	  GOOS=$${p%/*} GOARCH=$${p#*/} $(GOBUILD) -o $(DIST)/bin/$${p%/*}-$${p#*/}/ ./cmd/herald-controller ./cmd/herald-speaker; \
	done; \
	go run ./hack/release images -version $(VERSION) -revision $(REVISION) -bin $(DIST)/bin -dist $(DIST); \
	go run ./hack/release check -version $(VERSION) $(DIST)/herald-controller-$(VERSION).oci.tar $(DIST)/herald-speaker-$(VERSION).oci.tar

.PHONY: release
release: ## Everything a release ships into $(DIST)/ (VERSION=vX.Y.Z required): images, pinned install.yaml, heraldctl, notes, SHA256SUMS.
	@case "$(VERSION)" in v[0-9]*.[0-9]*.[0-9]*) ;; *) echo "release: set VERSION=vX.Y.Z (got $(VERSION))"; exit 2;; esac
	rm -rf $(DIST)
	$(MAKE) --no-print-directory images VERSION=$(VERSION)
	for p in $(CTL_PLATFORMS); do \
	  GOOS=$${p%/*} GOARCH=$${p#*/} $(GOBUILD) -o $(DIST)/heraldctl-$(VERSION)-$${p%/*}-$${p#*/} ./cmd/heraldctl; \
	done
	go run ./hack/release finish -version $(VERSION) -dist $(DIST)
	cd $(DIST) && sha256sum -c --quiet SHA256SUMS && ls -l

##@ Lab (network namespaces; needs root)
# Kubelet nodes unless HERALD_LAB_MODE=process (see e2e/lab/README.md).

LAB := bin/herald-lab
BENCH_LAB_OUT ?= e2e/lab/bench-failover.txt
BENCH_ROLLING_OUT ?= e2e/lab/bench-rolling.txt
BENCH_ETP_OUT ?= e2e/lab/bench-etp-move.txt

.PHONY: lab-bin
lab-bin:
	CGO_ENABLED=0 go build -trimpath -o $(LAB) ./e2e/lab

.PHONY: demo
demo: k8sbin lab-bin ## Bring up the layer-2 lab (kubelet nodes, herald from install.yaml), give a Service an address, show a client reaching it and a failover.
	$(LAB) demo

.PHONY: demo-down
demo-down: lab-bin ## Tear down what `make demo` left running.
	$(LAB) down l2

.PHONY: e2e
e2e: k8sbin ## Lab scenarios (e2e/scenarios, tag privileged, root): ETP Cluster/Local, dual-stack, failover, graceful restart, 60 s API outage.
	HERALD_K8S_BIN_DIR="$$(hack/k8sbin.sh | tail -n1)" go test -tags privileged -count=1 -timeout 30m -v ./e2e/scenarios/

.PHONY: bench-lab
bench-lab: k8sbin lab-bin ## L2 failover (20 trials), rolling speaker restart and ETP Local move, each table appended to $(BENCH_LAB_OUT), $(BENCH_ROLLING_OUT), $(BENCH_ETP_OUT).
	$(LAB) bench-failover -trials 20 -out $(BENCH_LAB_OUT)
	$(LAB) bench-rolling -rounds 3 -out $(BENCH_ROLLING_OUT)
	$(LAB) bench-etp-move -trials 10 -out $(BENCH_ETP_OUT)
