# rds-reconcile: build, test and run. `make help` lists the targets.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/rds-reconcile
PKGS     := ./...

.PHONY: help build test test-short lint fmt fuzz demo bench e2e k8s-e2e k8s-node-e2e clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build a static binary into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/rds-reconcile

test: ## go vet, gofmt check, all tests with -race (fuzz seed corpora included)
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

test-short: ## quick tests without -race
	$(GO) test -short -count=1 $(PKGS)

lint: ## go vet, gofmt, go mod tidy and staticcheck
	$(GO) mod tidy -diff
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) run honnef.co/go/tools/cmd/staticcheck@latest $(PKGS)

fmt: ## rewrite files with gofmt
	gofmt -w $$(git ls-files '*.go')

fuzz: ## run every fuzz target for FUZZTIME each (default 60s)
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-60s} $$pkg || exit 1; \
	  done; done

demo: ## walk through apply on the built-in simulator (no root needed)
	./examples/demo.sh

bench: ## run the benchmarks (numbers in README.md come from here)
	$(GO) test -run '^$$' -bench . -benchmem -count=1 -timeout 30m $(PKGS)
	$(GO) run ./internal/benchtable

e2e: ## end to end in a QEMU VM with the real kernel NVMe/TCP stack (root)
	./e2e/run.sh

k8s-e2e: ## a real Kubernetes control plane drives the CSI controller from examples/kubernetes (docs/csi.md)
	./k8s-e2e/run.sh

k8s-node-e2e: ## a kubelet in the e2e VM mounts a PVC through the CSI node plugin (root; docs/csi.md)
	./k8s-e2e/node/run.sh

clean: ## remove build output
	rm -rf bin
