SHELL := /bin/bash

# tend: the two commands a newcomer needs are `make demo` (arrives with the
# CLI) and `make test`. Everything else here supports those.

GO          ?= go
# Data dir of the cluster `make test` and `make cluster-up` run. Outside the
# work tree so that `git clean` never touches a running cluster.
CLUSTER_DIR ?= $(or $(XDG_STATE_HOME),$(HOME)/.local/state)/tend/cluster/make
CLUSTER     := $(GO) run -C tools/cluster .
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# controller-gen writes api/v1alpha1/zz_generated.deepcopy.go and config/crd.
# Run with `go run pkg@version` so that controller-tools stays out of go.mod.
CONTROLLER_GEN := sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0
# Build tags of every tend binary. kustomize_disable_go_plugin_support drops
# kustomize's Go-plugin loader: importing Go's plugin package makes the linker
# export and keep every symbol (120 MB instead of 94 MB, about 19 MiB more
# RSS at start). tend never loads Go plugins.
GO_TAGS     := kustomize_disable_go_plugin_support
# The Argo CD and Flux CRDs `tend install --compat` installs (config/compat):
# generated from tend's Argo CD types and Flux's own API modules, for the
# kinds tend reconciles only.
COMPAT_PATHS := paths=./internal/argocd/... paths=github.com/fluxcd/source-controller/api/v1 paths=github.com/fluxcd/kustomize-controller/api/v1 paths=github.com/fluxcd/helm-controller/api/v2 paths=github.com/fluxcd/notification-controller/api/v1beta3 paths=github.com/fluxcd/notification-controller/api/v1
COMPAT_DROP  := source.toolkit.fluxcd.io_buckets.yaml source.toolkit.fluxcd.io_externalartifacts.yaml
TEST_FLAGS  ?= -timeout 30m
# Fuzzing (hack/fuzz, docs/development.md): each target's time in `make
# test`, and for `make fuzz` by hand.
FUZZ_SMOKE_TIME ?= 3s
FUZZTIME    ?= 10m
FUZZ_PARALLEL ?= 1
# Stamped into tend binaries (`tend version`, the tend_build_info metric,
# the install manifests' version label and image tag).
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS     := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# The scale benchmark runs on a control plane of its own (not the one
# `make test` uses), stopped afterwards. BENCH_FLAGS are passed to
# `go run ./bench -mode scale`, e.g. BENCH_FLAGS="-scale 100,500,1000,2000".
BENCH_CLUSTER_DIR ?= $(or $(XDG_STATE_HOME),$(HOME)/.local/state)/tend/cluster/bench
BENCH_FLAGS ?=

.PHONY: demo test lint generate check-generated unit fuzz-smoke fuzz cluster-build test-cluster integration cluster-up cluster-down cluster-status build bench release image

## demo: run examples/homelab on a local control plane (first run builds
## Kubernetes, ~10 minutes; later runs start in seconds). Ctrl-C stops it.
demo:
	$(GO) build -tags $(GO_TAGS) -ldflags "$(LDFLAGS)" -o bin/tend ./cmd/tend
	bin/tend demo

## test: lint, unit tests, a few seconds of each fuzz target, a build of the
## local control plane (with progress; about 10 minutes the first time,
## cached afterwards), its own tests, then every integration test against
## one shared local control plane.
test: lint unit fuzz-smoke cluster-build test-cluster integration

## lint: generated files current, gofmt, go vet and staticcheck over the
## three modules (tend, tools/cluster, bench/gitmeasure).
lint: check-generated
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd tools/cluster && $(GO) vet ./...
	cd bench/gitmeasure && $(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	cd tools/cluster && $(GO) run $(STATICCHECK) ./...
	cd bench/gitmeasure && $(GO) run $(STATICCHECK) ./...

## generate: after changing api/: deepcopy functions and CRDs (controller-gen),
## then the install manifests that embed the CRDs (config/install and the
## kustomize-selfmanaged example's).
generate:
	rm -f config/crd/*.yaml config/compat/*.yaml
	$(GO) run $(CONTROLLER_GEN) object crd paths=./api/... output:crd:dir=config/crd
	$(GO) run $(CONTROLLER_GEN) crd $(COMPAT_PATHS) output:crd:dir=config/compat
	cd config/compat && rm -f $(COMPAT_DROP)
	$(GO) run ./internal/install/gen
	$(GO) run ./internal/install/gen -stdout -cluster-admin > examples/kustomize-selfmanaged/apps/tend/base/install.yaml

## check-generated: fail when the deepcopy functions or the CRDs differ from
## what controller-gen makes of api/ (generated into a temporary directory,
## so it works on a dirty work tree and changes nothing). config/install is
## checked by a unit test in internal/install.
check-generated:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  $(GO) run $(CONTROLLER_GEN) object crd paths=./api/... output:crd:dir=$$tmp/crd output:object:dir=$$tmp/object && \
	  $(GO) run $(CONTROLLER_GEN) crd $(COMPAT_PATHS) output:crd:dir=$$tmp/compat && (cd $$tmp/compat && rm -f $(COMPAT_DROP)) && \
	  if ! diff -ru config/crd $$tmp/crd || ! diff -ru config/compat $$tmp/compat || ! diff -u api/v1alpha1/zz_generated.deepcopy.go $$tmp/object/zz_generated.deepcopy.go; then \
	    echo "generated files are stale: run make generate and commit the result"; exit 1; fi

## unit: fast tests, no cluster (integration tests skip themselves under -short).
unit:
	$(GO) test -short ./...

## fuzz-smoke: every fuzz target (each func FuzzXxx in a _test.go file, found
## by hack/fuzz) for FUZZ_SMOKE_TIME, one after the other on one worker.
## An input that fails is saved in the package's testdata/fuzz/<target>.
fuzz-smoke:
	$(GO) run ./hack/fuzz -tags $(GO_TAGS) -fuzztime $(FUZZ_SMOKE_TIME)

## fuzz: the same for longer, by hand: make fuzz FUZZTIME=10m, FUZZ=SOPS to
## run only the targets whose package/name matches, FUZZ_PARALLEL workers.
## See docs/development.md.
fuzz:
	$(GO) run ./hack/fuzz -tags $(GO_TAGS) -fuzztime $(FUZZTIME) -parallel $(FUZZ_PARALLEL) $(if $(FUZZ),-run '$(FUZZ)')

## cluster-build: build the local control plane's binaries into
## ~/.cache/tend/cluster with progress shown (go test would hide it); a no-op
## when they are cached.
cluster-build:
	$(CLUSTER) build

## test-cluster: bring a control plane up and down, with workloads, crash
## recovery and bad input (tools/cluster's own tests; builds the binaries once).
test-cluster:
	cd tools/cluster && $(GO) test $(TEST_FLAGS) -v -run . ./... 2>&1 | grep -Ev '^=== (RUN|PAUSE|CONT)'; exit $${PIPESTATUS[0]}

## integration: all tests against one shared local control plane, stopped afterwards.
integration:
	$(CLUSTER) up --dir $(CLUSTER_DIR)
	TEND_TEST_KUBECONFIG=$(CLUSTER_DIR)/kubeconfig $(GO) test $(TEST_FLAGS) ./... ; \
	  rc=$$?; $(CLUSTER) down --dir $(CLUSTER_DIR); exit $$rc

## bench: the scale benchmark (docs/benchmark.md): 1,000 Apps x 10 objects
## against a raw server-side apply baseline, on its own local control plane;
## writes bench/RESULTS.md and bench/results.json. Not part of `make test`.
bench:
	$(CLUSTER) up --dir $(BENCH_CLUSTER_DIR)
	$(GO) run ./bench -mode scale -kubeconfig $(BENCH_CLUSTER_DIR)/kubeconfig $(BENCH_FLAGS) ; \
	  rc=$$?; $(CLUSTER) down --dir $(BENCH_CLUSTER_DIR); exit $$rc

## cluster-up: start (or reuse) the local control plane; prints export KUBECONFIG=...
cluster-up:
	$(CLUSTER) up --dir $(CLUSTER_DIR)

cluster-down:
	$(CLUSTER) down --dir $(CLUSTER_DIR)

cluster-status:
	$(CLUSTER) status --dir $(CLUSTER_DIR)

build:
	$(GO) build -tags $(GO_TAGS) -ldflags "$(LDFLAGS)" -o bin/tend ./cmd/tend

## release: dist/tend_<version>_<os>_<arch>.tar.gz for linux and darwin on
## amd64 and arm64, and dist/checksums.txt (internal/release). VERSION=v0.4.0
## to name a release; PLATFORMS=linux/amd64 to build fewer.
release:
	$(GO) run ./hack/release -version $(VERSION) -commit $(COMMIT) -out dist $(if $(PLATFORMS),-platforms $(PLATFORMS))

## image: tend's container image for linux/amd64 and linux/arm64 (one OCI
## index, internal/image), built without a container engine from tend's
## static binary and Debian packages (git, openssh-client, ca-certificates
## and their dependencies), as an OCI layout in dist/image with SPDX SBOMs
## in dist/sbom. PUSH=registry/repo:tag also pushes it (credentials from
## ~/.docker/config.json); PLATFORMS=linux/amd64 to build fewer.
image:
	$(GO) run ./hack/image -version $(VERSION) -commit $(COMMIT) -out dist $(if $(PUSH),-push $(PUSH)) $(if $(PLATFORMS),-platforms $(PLATFORMS))
