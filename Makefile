# gather's everyday commands. `make help` lists them.
.DEFAULT_GOAL := help
GO ?= go
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: ## run the main job: gather demo, the whole system on embedded defaults
	$(GO) run ./cmd/gather demo

# The suites that start a 3-node JetStream cluster: the slowest and most
# load-sensitive, so make test skips them and make test-cluster runs exactly
# them (CI runs both). Liveness bounds of the queue's tests scale with
# GATHER_TEST_SLOW (a factor, default 1) on a slow machine.
CLUSTER_TESTS := Cluster

.PHONY: test
test: ## vet, then every test with the race detector but the cluster suites (CI runs both)
	$(GO) vet ./...
	$(GO) test -race -count=1 -skip '$(CLUSTER_TESTS)' ./...

.PHONY: test-cluster
test-cluster: ## the 3-node JetStream cluster suites with the race detector (about 2 minutes)
	$(GO) test -race -count=1 -run '$(CLUSTER_TESTS)' ./...

.PHONY: lint
lint: ## gofmt, go vet, go mod tidy and staticcheck must have nothing to say (the root module and bench/)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) mod tidy -diff
	cd bench && $(GO) vet ./... && $(GO) mod tidy -diff
	$(STATICCHECK) ./...
	cd bench && $(STATICCHECK) ./...

.PHONY: bench
bench: ## in-package benchmarks, then gather against its peers (bench/, several minutes)
	$(GO) test -run '^$$' -bench . -benchmem ./...
	bench/run.sh

.PHONY: bench-brokers
bench-brokers: ## the queue on JetStream against raw JetStream, asynq on Redis and River on PostgreSQL, in one process (installs both)
	bench/brokers.sh

.PHONY: bench-deployed
bench-deployed: ## the deployed shape: server, workers and producer in separate processes over TCP, against JetStream, asynq, River, Celery, BullMQ
	bench/deployed.sh

.PHONY: bench-load
bench-load: ## issue 14's load test: a million tasks through gather serve and two worker processes over TCP, then overload against a bounded queue (a few minutes)
	bench/httpload.sh

.PHONY: bench-smoke
bench-smoke: ## one iteration of every benchmark, to prove they still run (installs Redis, PostgreSQL, Celery and BullMQ)
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...
	bench/run.sh --smoke
	bench/brokers.sh --smoke
	bench/deployed.sh --smoke
	bench/httpload.sh --smoke
	cd bench && $(GO) test -race -count=1 ./cmd/...

DURATION ?= 10m
CHAOS = $(GO) test -count=1 -timeout 0 -v -run '^TestChaos$$' ./internal/chaos
.PHONY: e2e
e2e: ## the dashboard in a real browser (installs Debian's chromium; screenshots in e2e/screenshots/)
	bash e2e/run.sh

.PHONY: chaos
chaos: ## the chaos test for DURATION (default 10m) per form: workers and the server killed, then one node of three (R3); the history checked
	$(CHAOS) -chaos.duration $(DURATION)
	$(CHAOS) -chaos.duration $(DURATION) -chaos.cluster

.PHONY: chaos-short
chaos-short: ## the chaos test's short form (what CI runs): 25s of faults per form, about a minute and a half in all
	$(CHAOS) -chaos.duration 25s
	$(CHAOS) -chaos.duration 25s -chaos.cluster

.PHONY: fuzz-ci
fuzz-ci: ## every fuzz target for a few seconds from its committed corpus, with the inputs tried (what CI runs, under 3 minutes)
	scripts/fuzz-ci.sh

FUZZTIME ?= 30s
.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME each
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "$$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done
