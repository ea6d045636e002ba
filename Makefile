GO ?= go
BIN := bin/tollgate
CONFIG ?= configs/tollgate.yaml
# Where `make install` puts tollgate: $(GOBIN) if set, else $(PREFIX)/bin.
PREFIX ?= /usr/local
GOBIN ?= $(shell $(GO) env GOBIN)
INSTALL_DIR := $(if $(GOBIN),$(GOBIN),$(PREFIX)/bin)
# `tollgate version` reads the VCS revision Go stamps into the binary; where
# Go cannot (a git worktree, GOFLAGS=-buildvcs=false) this names the commit.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
LDFLAGS := $(if $(VERSION),-X main.version=$(VERSION))
# The demo's data directory (store.data_dir of configs/tollgate.yaml).
DEMO_DATA ?= data

.PHONY: build install run reset-demo test test-short bench fuzz vet fmt clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/tollgate

# Copies bin/tollgate to $(GOBIN) or $(PREFIX)/bin (default /usr/local/bin),
# so `tollgate` is on PATH: make install PREFIX=$$HOME/.local
install: build
	install -d $(INSTALL_DIR)
	install -m 0755 $(BIN) $(INSTALL_DIR)/tollgate
	@echo "installed $(INSTALL_DIR)/tollgate"

# The demo admin token; set TOLLGATE_ADMIN_TOKEN yourself outside a demo.
export TOLLGATE_ADMIN_TOKEN ?= demo-admin-token-change-me

run: build
	./$(BIN) serve -c $(CONFIG)

# The config file's plans, tenants and tokens seed the store on the first
# start only; afterwards the store wins. This wipes the demo's store (and
# its embedded NATS data, under it) so that the next `make run` seeds
# again from $(CONFIG). Stop the gateway first. Everything the demo
# recorded (usage, audit log, events) is lost.
reset-demo:
	@case "$(DEMO_DATA)" in ""|/|.|..) echo "refusing to remove DEMO_DATA=$(DEMO_DATA)"; exit 1;; esac
	rm -rf -- "$(DEMO_DATA)"
	@echo "removed $(DEMO_DATA)/: the next make run seeds the store from $(CONFIG)"

# Every test: unit, in-process SIP integration, SIPp end to end (testbed/).
# Each package prints its result as it finishes; a heartbeat line every
# 30 s shows the run is alive while the slow packages (SIPp) work.
test: build
	@echo "--- go vet ./..."
	$(GO) vet ./...
	@echo "--- go test -race ./third_party/sipgo/sip (tests of tollgate's sipgo patches)"
	cd third_party/sipgo && $(GO) test -race -count=1 ./sip/
	@echo "--- go test ./cluster -run TestChaosRoutes (route partitions: nats-server races inside itself under -race)"
	$(GO) test -count=1 -run TestChaosRoutes ./cluster/
	@echo "--- go test -race ./... (packages report as they finish)"
	@start=$$(date +%s); \
	( while sleep 30; do echo "make test: $$(( $$(date +%s) - start )) s elapsed, tests still running"; done ) & hb=$$!; \
	$(GO) test -race -count=1 -timeout 12m ./...; rc=$$?; \
	kill $$hb 2>/dev/null; echo "make test: done in $$(( $$(date +%s) - start )) s (exit $$rc)"; exit $$rc

test-short:
	$(GO) test -short -count=1 ./...

# Heavy benchmarks: not run by CI.
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./admission/
	$(GO) test -run '^$$' -bench BenchmarkAllow -benchmem -cpu 1,2 ./internal/pike/
	TOLLGATE_CUTOFF_BENCH=1 $(GO) test -count=1 -run TestCutOffError -v ./sip/
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./store/
	$(GO) test -run '^$$' -bench . -benchtime 5000x ./bus/
	$(GO) test -run '^$$' -bench . -benchtime 2s ./cluster/
	TOLLGATE_STORE_SIZE_CALLS=1000000 $(GO) test -count=1 -run TestStoreSizePerCall -v ./store/
	PERSIST=on ./testbed/bench.sh
	PERSIST=off ./testbed/bench.sh
	MODE=compare ./testbed/bench.sh
	./testbed/flood.sh
	./testbed/media-bench.sh
	./testbed/events-bench.sh
	./testbed/cluster-bench.sh

# Fuzz each edge target for FUZZTIME (default 5m; CI runs only the checked-in
# corpora, as regression tests). New interesting inputs land in the Go build
# cache; copy them into sip/testdata/fuzz/<target>/ to keep them.
FUZZTIME ?= 5m
fuzz:
	@for f in FuzzFrontDoor FuzzClassifyURI FuzzInDialogTarget FuzzClassify FuzzDialogRecord; do \
		echo "--- $$f ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) ./sip/ || exit 1; \
	done
	@for f in FuzzRewriteSDP FuzzIngestRTP; do \
		echo "--- $$f ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) ./meter/ || exit 1; \
	done

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
